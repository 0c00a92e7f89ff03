"""A migration notice pre-provisions on its own, without the destination's OVSDB (pure).

When a notice names server S and no OVSDB row says which port of S the VM
will use, the destination picks the VM's *likely port*: the free VM port of S
added or come up last (a hypervisor creates the destination port shortly
before the guest resumes, often with its link down until then), else S's only
free VM port; a port added or coming up on S later, while the VM is still
expected there, takes over. The VM is pre-provisioned there the usual way
(:func:`~ryu_apps.core.binding_ops.pre_provision`: its port's entries,
both-ways delivery on the path), so its first frame at S is forwarded at wire
speed; that frame, or the port's link coming up, activates it. The notice
also makes the VM's frames believed at any other free port of S (provisioned
there after one controller round trip). An OVSDB row arriving later narrows
it to the row's port (the ordinary path).

Bounds: a port bound to another VM, holding a quarantine, or named by OVSDB
for another VM is never picked (a frame with the VM's MAC from such a port
stays a refused spoof); a notice no OVSDB row confirmed expires after
:data:`NOTICE_HOLD_SECONDS` if the VM never shows up: its pre-provisioning
goes, leaving no flow, its frames on S are no longer believed, and the
source is active again.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Optional

from ryu_apps.core import binding_ops
from ryu_apps.core.arrival_probe import free_port
from ryu_apps.core.binding import Binding, VmState
from ryu_apps.core.flow_plan import Plan

if TYPE_CHECKING:
    from ryu_apps.core.engine_state import EngineState

#: Seconds a notice-only pre-provisioning waits for the VM before it is removed.
NOTICE_HOLD_SECONDS = 60.0


def likely_port(st: "EngineState", server: int, mac: str) -> Optional[int]:
    """The free VM port of ``server`` that came up last, else its only free port."""
    free = [p for p in sorted(st.ports.present.get(server, ()))
            if free_port(st, server, p, mac, down_too=True)]
    recent = [p for p in free if (server, p) in st.ports.up_since]
    if recent:
        return max(recent, key=lambda p: (st.ports.up_since[(server, p)], p))
    return free[0] if len(free) == 1 else None


def expect(st: "EngineState", source: Binding, server: int, now: float, plan: Plan) -> None:
    """Pre-provision VM ``source`` on ``server`` at its likely port, if there is one."""
    port = likely_port(st, server, source.mac)
    if port is None:
        st.ports.notice_expiry[source.mac] = now + NOTICE_HOLD_SECONDS
        plan.notes.append(f"VM {source.mac} expected on {st.name(server)}: no free port "
                          "to pre-provision yet (a port coming up there, or the VM's first "
                          "frame at a free port, will do)")
        return
    _pre_provision(st, source, server, port, now, plan)


def _pre_provision(st: "EngineState", source: Binding, server: int, port: int, now: float,
                   plan: Plan) -> None:
    binding_ops.pre_provision(st, source, server, port, plan,
                              "migration notice (no OVSDB row: the likely port)")
    if st.table.incoming.get(source.mac) is not None:
        st.ports.notice_expiry[source.mac] = now + NOTICE_HOLD_SECONDS


def port_came_up(st: "EngineState", dpid: int, port: int, now: float, plan: Plan) -> None:
    """A port came up on a server a notice named: the VMs expected there move to it."""
    for mac, server in sorted(st.ports.notified.items()):
        if server != dpid or mac not in st.ports.notice_expiry:
            continue   # another server, or no longer pending (arrived, OVSDB, expired)
        source = st.table.bindings.get(mac)
        if source is None or not source.state.forwards or source.dpid == dpid or \
                not free_port(st, dpid, port, mac, down_too=True):
            continue
        _pre_provision(st, source, dpid, port, now, plan)


def expire(st: "EngineState", now: float, plan: Plan) -> None:
    """Notice-only pre-provisionings whose VM never came: removed; source active again."""
    for mac, deadline in sorted(st.ports.notice_expiry.items()):
        if now < deadline:
            continue
        del st.ports.notice_expiry[mac]
        server = st.ports.notified.pop(mac, None)
        binding_ops.drop_incoming(st, mac, plan)
        source = st.table.bindings.get(mac)
        if source is not None and source.state is VmState.MIGRATING_OUT:
            st.table.add(replace(source, state=VmState.ACTIVE))
        where = st.name(server) if server is not None else "its destination"
        plan.notes.append(f"VM {mac} never came to {where} within "
                          f"{NOTICE_HOLD_SECONDS:g} s of the notice: notice forgotten, "
                          "pre-provisioning removed")
