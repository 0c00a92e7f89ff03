"""Reading a switch back: its description (role), then dynprov's flows, then its meters.

Every repair of a switch is this read-back followed by a diff in the engine
(``ProvisioningEngine.switch_up``): a connect, a reconnect, a restart, the
audit, an OpenFlow error, a handler exception, a library reload and the end of
the warm start all start one, through the app's ``_reconcile_switch(dpid,
why)``. This module keeps one read-back per switch and matches each reply to
it by transaction id, so replies to other requests (the REST API's) or to a
read-back started again in the meantime are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional

from ryu_apps.app import openflow
from ryu_apps.core.fabric import Role, RoleError, parse_description
from ryu_apps.core.flow_plan import Plan


@dataclass
class ReadBack:
    """One switch being read back, and why."""

    datapath: Any
    why: str
    desc_xid: int
    role: Optional[Role] = None
    name: str = ""
    flows_xid: Optional[int] = None
    meters_xid: Optional[int] = None
    #: What the switch reported so far: dynprov's flows, then its meters.
    observed: List[Any] = field(default_factory=list)


#: Why a switch connecting is read back (its reconciliation is logged as "switch ... up").
CONNECTED = ("connected", "reconnected")
#: Why every switch is read back periodically (logged only when it differed).
AUDIT = "audit"


def report(logger, readback: ReadBack, changes: int) -> None:
    """Log a finished reconciliation: a switch up, a switch that differed (with why it
    was read back), or one that held what dynprov wants (audits: debug only)."""
    dpid = readback.datapath.id
    if readback.why in CONNECTED:
        role = readback.role.value if readback.role is not None else "?"
        logger.info("switch %016x up: %s %s, %d dynprov entries found, %d changes",
                    dpid, role, readback.name, len(readback.observed), changes)
    elif changes:
        logger.warning("%s: switch %016x (%s) differed from what dynprov wants: %d "
                       "changes to reconcile it", readback.why, dpid, readback.name, changes)
    else:
        log = logger.debug if readback.why == AUDIT else logger.info
        log("switch %016x (%s) holds what dynprov wants (%s)", dpid, readback.name,
            readback.why)


def send_request(datapath, request) -> int:
    """Send a request with a fresh transaction id; that id."""
    datapath.set_xid(request)
    datapath.send_msg(request)
    return request.xid


class ReadBacks:
    """The read-backs in progress, one per switch at most."""

    def __init__(self, logger) -> None:
        self.logger = logger
        self._pending: Dict[int, ReadBack] = {}

    def start(self, dpid: int, datapath, why: str) -> None:
        """Ask the switch for its description; a read-back already running is replaced."""
        parser = datapath.ofproto_parser
        xid = send_request(datapath, parser.OFPDescStatsRequest(datapath, 0))
        self._pending[dpid] = ReadBack(datapath, why, xid)

    def running(self, dpid: int) -> Optional[ReadBack]:
        """The read-back of this switch in progress, if any."""
        return self._pending.get(dpid)

    def all(self) -> List[ReadBack]:
        """Every read-back in progress."""
        return list(self._pending.values())

    def forget(self, dpid: int) -> None:
        """The switch disconnected: its read-back will never finish."""
        self._pending.pop(dpid, None)

    def described(self, msg) -> None:
        """The switch's description: a dynprov bridge is asked for its flows; any other
        is logged and dropped."""
        dpid = msg.datapath.id
        readback = self._pending.get(dpid)
        if readback is None or msg.xid != readback.desc_xid:
            return
        description = msg.body.dp_desc
        if isinstance(description, bytes):
            description = description.decode("utf-8", "replace")
        try:
            parsed = parse_description(description)
        except RoleError as error:
            self.logger.error("switch %016x not managed: %s", dpid, error)
            parsed = None
        else:
            if parsed is None:
                self.logger.info("switch %016x (%r) is not a dynprov bridge; left alone",
                                 dpid, description)
        if parsed is None:
            del self._pending[dpid]
            return
        readback.role, readback.name = parsed
        datapath = msg.datapath
        readback.flows_xid = send_request(datapath, openflow.our_flows_request(datapath))

    def diff(self, engine, readback: ReadBack, adds_only: bool, now: float) -> Plan:
        """What brings the switch read back to what the engine wants (the engine
        learns from it what it did not know: after a restart, its bindings); logged.
        ``adds_only`` during the warm start: other switches (and links) may not be
        back yet, so what looks stale may still be needed."""
        if readback.role is None:
            raise ValueError(f"switch {readback.datapath.id:016x}: read back before its "
                             "role was known")
        plan = engine.switch_up(readback.datapath.id, readback.role, readback.name,
                                readback.observed, now=now)
        if adds_only:
            plan = plan.without_deletes()
        report(self.logger, readback, plan.flow_count())
        return plan

    def flows(self, msg) -> None:
        """One part of the flow stats; after the last, ask for the meters."""
        readback = self._collect(msg, lambda r: r.flows_xid, lambda dpid, body: [
            openflow.spec_from_stats(dpid, stats) for stats in body])
        if readback is not None:
            datapath = msg.datapath
            readback.meters_xid = send_request(datapath, openflow.meters_request(datapath))

    def meters(self, msg) -> Optional[ReadBack]:
        """One part of the meter configs; after the last, the finished read-back."""
        readback = self._collect(msg, lambda r: r.meters_xid, lambda dpid, body: [
            openflow.meter_from_stats(dpid, stats) for stats in body])
        if readback is not None:
            del self._pending[msg.datapath.id]
        return readback

    def _collect(self, msg, xid_of: Callable[[ReadBack], Optional[int]],
                 entries_of: Callable[[int, Any], Iterable[Any]]) -> Optional[ReadBack]:
        """Add one part of a reply; the read-back once its last part is in."""
        datapath = msg.datapath
        readback = self._pending.get(datapath.id)
        if readback is None or msg.xid != xid_of(readback):
            return None
        readback.observed += [e for e in entries_of(datapath.id, msg.body) if e is not None]
        if msg.flags & datapath.ofproto.OFPMPF_REPLY_MORE:
            return None
        return readback
