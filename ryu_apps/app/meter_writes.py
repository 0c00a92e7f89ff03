"""Meter writes made idempotent: a meter ADD refused because the meter exists becomes a
MODIFY to what the engine wants now; a MODIFY refused because it is missing, an ADD.

OpenFlow 1.3 has no add-or-replace for meters: an ADD of a flow the switch holds
replaces it, an ADD of a meter it holds fails (``OFPMMFC_METER_EXISTS``). A
read-back's diff is computed when its replies arrive, so a meter that a plan sent
after the read-back's request added is missing from what was read, and the
reconciliation adds it again: link discovery's LLDP meter of a link found while
the switch was being read back (the warm start's end, an audit, a reconnect).
Each plan's writes keep their order, so the switch then holds the meter, perhaps
with older bands: the MODIFY brings it to the engine's desired meter (looked up
when the error arrives, so it is never older than what was sent).

Not hidden: another error, a meter outside dynprov's block, and a refused retry
(each retry is tried once, until its barrier) take the ordinary error path (logged,
the switch reconciled). The retry is logged at DEBUG.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Optional, Set, Tuple

from ryu_apps.app.framework import ofproto_v1_3 as ofp
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.flowspec import MeterSpec
from ryu_apps.core.pipeline import is_dynprov_meter

#: (refused command, error code) -> whether the retry is a MODIFY (else an ADD).
_RETRIES = {(ofp.OFPMC_ADD, ofp.OFPMMFC_METER_EXISTS): True,
            (ofp.OFPMC_MODIFY, ofp.OFPMMFC_UNKNOWN_METER): False}
_METER_MOD = struct.Struct("!BBHIHHI")   # header, command, flags, meter id


def refused_meter_mod(data: bytes) -> Optional[Tuple[int, int]]:
    """(command, meter id) of the meter-mod an error message quotes; None for another
    message or too short a quote."""
    if len(data) < _METER_MOD.size:
        return None
    _version, kind, _length, _xid, command, _flags, meter_id = _METER_MOD.unpack_from(data)
    return (command, meter_id) if kind == ofp.OFPT_METER_MOD else None


def desired_meter(engine: Any, dpid: int, meter_id: int) -> Optional[MeterSpec]:
    """The meter the engine wants on a switch under that id, if any."""
    for entry in engine.desired.on_switch(dpid):
        if isinstance(entry, MeterSpec) and entry.meter_id == meter_id:
            return entry
    return None


class MeterRetries:
    """Turns the two refusals above into the write that succeeds.

    ``wanted(dpid, meter_id)``: the engine's desired meter; ``send(plan, on_confirmed)``:
    the plan sender's ``send`` (so the retry keeps its place among the plans' writes).
    """

    def __init__(self, wanted: Callable[[int, int], Optional[MeterSpec]],
                 send: Callable[..., None], logger: Any) -> None:
        self.wanted, self.send, self.logger = wanted, send, logger
        self._retrying: Set[Tuple[int, int]] = set()

    def error(self, dpid: int, err_type: int, code: int, data: bytes) -> bool:
        """Whether the error was a meter write this class retries (then consumed)."""
        if err_type != ofp.OFPET_METER_MOD_FAILED:
            return False
        refused = refused_meter_mod(data)
        if refused is None or not is_dynprov_meter(refused[1]):
            return False
        command, meter_id = refused
        modify = _RETRIES.get((command, code))
        if modify is None or (dpid, meter_id) in self._retrying:
            return False
        spec = self.wanted(dpid, meter_id)
        what = "existed" if modify else "was missing"
        if spec is None:
            self.logger.debug("switch %016x: meter %#x %s; no longer wanted, left to the "
                              "writes that follow", dpid, meter_id, what)
            return True
        self.logger.debug("switch %016x: meter %#x %s; written again as %s", dpid,
                          meter_id, what, "a modify" if modify else "an add")
        plan = Plan()
        plan.for_switch(dpid).add(spec, replacing=modify)
        key = (dpid, meter_id)
        self._retrying.add(key)
        self.send(plan, on_confirmed=lambda: self._retrying.discard(key))
        return True
