"""The hand-off reducer's side of the engine (pure): what it sees, what it commands.

:func:`view_of` turns the engine's bindings into an
:class:`~ryu_apps.core.handoff_values.EngineView`; :func:`run_command` runs
one engine command and returns its plan and log notes. The store's I/O side
and the unit tests use the same two functions.
"""

from __future__ import annotations

from typing import AbstractSet, Dict, List, Mapping, Optional, Tuple

from ryu_apps.core.binding import Binding, Detection, VmState
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.handoff_values import (
    BindingRecord,
    Cede,
    Command,
    EngineView,
    ExpectArrival,
    HandOver,
    HeldBinding,
    LeaseEnds6,
    Note,
    StopHandingOver,
)
from ryu_apps.core.lifecycle import Notice
from ryu_apps.core.notification_errors import NotificationError

#: A binding's DHCP lease end and DHCPv6 lease ends (``engine.lease_ends``).
Leases = Tuple[Optional[float], LeaseEnds6]

_STATES = {VmState.PRE_PROVISIONED: "pre-provisioned", VmState.MIGRATING_OUT: "migrating",
           VmState.SUSPENDED: "suspended", VmState.RESTARTING: "suspended"}


def binding_record(engine, binding: Binding, leases: Optional[Leases] = None
                   ) -> BindingRecord:
    """What the store holds about a binding of this engine (``leases``: its
    ``engine.lease_ends``, when the caller has them)."""
    domain = engine.domain_of_server(binding.dpid)
    info = engine.fabric.switches.get(binding.dpid)
    lease_end, lease6_ends = engine.lease_ends(binding) if leases is None else leases
    return BindingRecord(binding.mac, binding.template_id,
                         "" if domain is None or domain.templates is None else domain.name,
                         info.name if info else f"{binding.dpid:016x}", binding.port,
                         binding.ip, _STATES.get(binding.state, "active"), binding.ipv6,
                         binding.ip_source if binding.ip else None, lease_end, lease6_ends)


def view_of(engine, ports: Mapping[int, AbstractSet[int]]) -> EngineView:
    """The engine's bindings now; ``ports``: the ports each switch has (by datapath id)."""
    return EngineViewer().view(engine, ports)


class EngineViewer:
    """:func:`view_of`, read again and again: the record of a binding the engine still
    holds as the same object, with the same lease ends (a renewal changes only
    them), is not built again."""

    def __init__(self) -> None:
        self._records: Dict[str, Tuple[Binding, Leases, BindingRecord]] = {}

    def view(self, engine, ports: Mapping[int, AbstractSet[int]]) -> EngineView:
        records: Dict[str, Tuple[Binding, Leases, BindingRecord]] = {}
        bindings: Dict[str, HeldBinding] = {}
        for mac, binding in engine.bindings.items():
            cached = self._records.get(mac)
            leases = engine.lease_ends(binding)
            record = (cached[2] if cached is not None and cached[0] is binding
                      and cached[1] == leases else binding_record(engine, binding, leases))
            records[mac] = (binding, leases, record)
            bindings[mac] = HeldBinding(binding.binding_id, record,
                                        binding.detected_by is Detection.RESTORED,
                                        binding.port in ports.get(binding.dpid, ()))
        self._records = records
        devices = tuple(sorted(info.name for info in engine.fabric.switches.values()))
        return EngineView(bindings, frozenset(engine.incoming), devices)


def run_command(engine, command: Command, now: float) -> Tuple[List[Plan], List[Note]]:
    """Run one of the reducer's commands on the engine: the plans to send (in order),
    what to log."""
    if isinstance(command, HandOver):
        return [engine.handing_over(command.mac)], []
    if isinstance(command, StopHandingOver):
        return [engine.stop_handing_over(command.mac)], []
    if isinstance(command, Cede):
        binding = engine.bindings.get(command.mac)
        if binding is None or binding.binding_id != command.binding_id:
            return [], []   # gone, or provisioned here again since
        return [engine.cede(command.mac)], []
    return _expect_arrival(engine, command, now)


def _expect_arrival(engine, command: ExpectArrival,
                    now: float) -> Tuple[List[Plan], List[Note]]:
    """Pre-provision a VM a source process hands to us, its bound IP kept."""
    mac, server = command.mac, command.server
    plans = [engine.expect_ip(mac, command.ip, command.ipv6, command.ip_source,
                              lease_end=command.lease_end,
                              lease6_ends=command.lease6_ends)]
    try:
        ack = engine.notify(Notice.STARTED, mac, server, now=now)
    except NotificationError as error:
        return plans, [Note("warning", f"store: hand-off of VM {mac} to server {server}: "
                                       f"{error}")]
    return plans + [ack.plan], [Note("info", f"store: hand-off of VM {mac} to server "
                                             f"{server}: {ack.message} (received at "
                                             f"{command.received:.6f})")]
