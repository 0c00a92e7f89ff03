"""The distributed hand-off of VMs between controller processes, as a reducer (pure).

``reduce(state, input, now) -> Step`` mutates a :class:`HandoffState` and
returns store write intents and engine commands (the values are in
:mod:`ryu_apps.core.handoff_values`). The protocol, the way OVN's chassis
share ``Port_Binding`` rows:

- **Publishing**: every VM the engine holds is claimed (``owner`` = this
  process), every VM it no longer holds is released. The reducer diffs the
  engine's bindings (:class:`BindingsChanged`) against what it published.
- **Hand-off with a notice** (:class:`HandOffAsked`): the source names the
  destination process on the row (``requested_owner``); once that committed it
  hands the VM over (frames at the old port and toward the shared fabric).
  The destination sees the row and pre-provisions (:class:`ExpectArrival`);
  the VM arriving there makes it claim the row.
- **Hand-off without a notice** (:class:`Expecting`): the destination, seeing
  the VM's port on its server, asks the owner for it on the row; or it
  simply claims the VM when it arrives.
- **Source clean-up**: a row of ours claimed by another process makes the
  source hand the VM over, and cede it (deprovision here) once its port is gone.
- **Withdrawal**: a hand-off to us whose VM never arrived (its pre-provisioned
  port went away) is withdrawn; the owner then stops handing the VM over.
- **Restart**: after the warm-start grace (:class:`~ryu_apps.core.warm_start.WarmStart`),
  once every server our rows name is back (or the deadline passed), rows of
  VMs the switches did not give back are released and VMs given back without
  a row are adopted (claimed, or ceded if another process owns them now).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Set, Tuple

from ryu_apps.core.handoff_values import (
    Adopt,
    BindingRow,
    BindingsChanged,
    Cede,
    Claim,
    EngineView,
    ExpectArrival,
    Expecting,
    HandOffAsked,
    HandOver,
    HeldBinding,
    Input,
    Release,
    ReportDevices,
    RequestFromOwner,
    RequestOwner,
    RowChanged,
    Step,
    StopHandingOver,
    Tick,
    Withdraw,
    WriteDone,
)
from ryu_apps.core.notification_errors import UnknownServer, UnknownVm
from ryu_apps.core.warm_start import WarmStart


@dataclass
class HandoffState:
    """One process's side of the hand-off protocol."""

    name: str
    warm: WarmStart
    #: Binding rows in our replica (ours, handed to us, and those we watch), by MAC.
    rows: Dict[str, BindingRow] = field(default_factory=dict)
    #: VMs we claimed (or are adopting), as claimed.
    published: Dict[str, HeldBinding] = field(default_factory=dict)
    #: VMs another process claimed: binding id, deprovisioned once their port is gone.
    ceded: Dict[str, int] = field(default_factory=dict)
    releasing: Set[str] = field(default_factory=set)
    #: Rows outside our condition we replicate: VMs we claim or ask for.
    taking: Set[str] = field(default_factory=set)
    #: VMs expected on our servers, to ask their owner for: (server, port).
    expected: Dict[str, Tuple[str, int]] = field(default_factory=dict)
    #: VMs we asked to pre-provision (kept in ``awaiting`` if the engine did).
    arriving: Set[str] = field(default_factory=set)
    #: Hand-offs to us not arrived yet (withdrawn if the VM's port here goes).
    awaiting: Set[str] = field(default_factory=set)
    #: Our VMs named for another process.
    handing: Set[str] = field(default_factory=set)
    reconciled: bool = False
    devices: Optional[Tuple[str, ...]] = None
    view: EngineView = field(default_factory=EngineView)

    def ours(self, mac: str) -> bool:
        """Whether the store lists VM ``mac`` as ours."""
        row = self.rows.get(mac)
        return row is not None and row.owner == self.name


def start(name: str, grace: float, now: float, deadline: Optional[float] = None) -> HandoffState:
    """A process starting at ``now``: its warm-start grace begins."""
    warm = WarmStart(grace) if deadline is None else WarmStart(grace, deadline)
    warm.begin(now)
    return HandoffState(name, warm)


def reduce(state: HandoffState, event: Input, now: float) -> Step:
    """Apply one input to ``state``; what to write and what the engine must do."""
    step = Step()
    before = frozenset(state.taking)
    _HANDLERS[type(event)](state, event, now, step)
    if frozenset(state.taking) != before:
        step.watch = frozenset(state.taking)
    if not state.reconciled:
        step.wake_at = (state.warm.ends_at() if state.warm.adds_only(now)
                        else state.warm.started + state.warm.deadline)
    return step


# -- rows from the store ------------------------------------------------------------
def _row_changed(state: HandoffState, event: RowChanged, now: float, step: Step) -> None:
    mac, row = event.mac, event.row
    was_ours = state.ours(mac)
    if row is None:
        state.rows.pop(mac, None)
        if mac in state.releasing:
            state.releasing.discard(mac)
        elif was_ours and mac in state.published and mac not in state.taking:
            _claimed_elsewhere(state, mac, step)   # it left our condition: not ours now
        return
    state.rows[mac] = row
    if row.owner != state.name and was_ours and mac in state.published:
        _claimed_elsewhere(state, mac, step)
    if mac in state.expected:
        _ask_owner(state, mac, row, step)
    if row.requested_owner == state.name and row.owner != state.name:
        state.arriving.add(mac)
        step.commands.append(ExpectArrival(mac, row.requested_server, row.ip, now,
                                           row.ipv6, row.ip_source, row.lease_end,
                                           row.lease6_ends))
    elif row.owner == state.name and row.requested_owner and mac in state.published:
        state.handing.add(mac)   # another process asked for our VM (its port is there)
        step.commands.append(HandOver(mac))
    elif row.owner == state.name and mac in state.handing:
        state.handing.discard(mac)
        step.note(f"store: hand-off of VM {mac} withdrawn by its destination")
        step.commands.append(StopHandingOver(mac))


def _claimed_elsewhere(state: HandoffState, mac: str, step: Step) -> None:
    """Another process claimed a VM of ours: hand it over, cede it once its port is gone."""
    held = state.published.pop(mac)
    state.ceded[mac] = held.binding_id
    state.handing.discard(mac)
    step.note(f"store: VM {mac} claimed by another process; released here once its port "
              "is gone")
    step.commands.append(HandOver(mac))


def _ask_owner(state: HandoffState, mac: str, row: BindingRow, step: Step) -> None:
    """A VM expected here is another process's: name us on its row."""
    if row.owner == state.name or row.requested_owner == state.name:
        return
    server, port = state.expected.pop(mac)
    step.note(f"store: VM {mac} expected on {server} port {port}: asking its owner "
              f"{row.owner} for it")
    step.writes.append(RequestFromOwner(mac, server, port))
    state.awaiting.add(mac)


def _expecting(state: HandoffState, event: Expecting, now: float, step: Step) -> None:
    """Watch the VM's row (outside our condition); ask its owner once it is here."""
    state.expected[event.mac] = (event.server, event.port)
    state.taking.add(event.mac)
    row = state.rows.get(event.mac)
    if row is not None:
        _ask_owner(state, event.mac, row, step)


# -- hand-offs we start ----------------------------------------------------------------
def _hand_off_asked(state: HandoffState, event: HandOffAsked, now: float, step: Step) -> None:
    mac = event.mac
    if event.destination is None:
        step.refused = UnknownServer(f"unknown server {event.server!r}: neither this process "
                                     "nor any process in the store manages it")
    elif mac not in state.published and mac in state.ceded:
        step.answer = ("already taken over by another process (it saw the VM's port on its "
                       "server); this side is released once the VM's old port is gone")
    elif mac not in state.published:
        step.refused = UnknownVm(f"unknown VM {mac}: this process holds no binding of it")
    else:
        step.writes.append(RequestOwner(mac, event.destination, event.server))


# -- the engine's bindings ---------------------------------------------------------------
def _bindings_changed(state: HandoffState, event: BindingsChanged, now: float,
                      step: Step) -> None:
    view = state.view = event.view
    _withdraw_abandoned(state, step)
    for mac, held in view.bindings.items():
        if state.ceded.get(mac) == held.binding_id or state.published.get(mac) == held:
            continue
        if held.restored and mac not in state.published and not state.ours(mac):
            if state.reconciled:
                _adopt(state, held, step)
            continue   # read back from a switch: ours only if the store agrees
        state.published[mac] = held
        state.ceded.pop(mac, None)
        state.expected.pop(mac, None)
        if not state.ours(mac):
            state.taking.add(mac)   # the row may be another process's: watch it
        step.writes.append(Claim(held.record))
    for mac in [m for m in state.published if m not in view.bindings]:
        del state.published[mac]
        state.releasing.add(mac)
        step.writes.append(Release(mac))
    _finish_ceded(state, step)
    if view.devices != state.devices:
        state.devices = view.devices
        step.writes.append(ReportDevices(view.devices))
    _tick(state, Tick(), now, step)


def _withdraw_abandoned(state: HandoffState, step: Step) -> None:
    """Hand-offs to us whose VM never arrived (its pre-provisioned port is gone)."""
    view = state.view
    state.awaiting |= {mac for mac in state.arriving if mac in view.incoming}
    state.arriving.clear()
    for mac in sorted(state.awaiting):
        if mac in view.bindings:
            state.awaiting.discard(mac)   # arrived: our claim ends the hand-off
        elif mac not in view.incoming:
            state.awaiting.discard(mac)
            step.note(f"store: VM {mac} did not arrive here; hand-off withdrawn")
            step.writes.append(Withdraw(mac))


def _adopt(state: HandoffState, held: HeldBinding, step: Step) -> None:
    """A VM the switches gave back that the store does not list as ours."""
    state.published[held.record.mac] = held
    state.taking.add(held.record.mac)
    step.writes.append(Adopt(held.record, held.binding_id))


def _finish_ceded(state: HandoffState, step: Step) -> None:
    """Deprovision VMs another process claimed once their port here is gone."""
    for mac, binding_id in list(state.ceded.items()):
        held = state.view.bindings.get(mac)
        if held is None or held.binding_id != binding_id:
            del state.ceded[mac]
        elif not held.port_up:   # else the VM may still be here (make before break)
            del state.ceded[mac]
            step.commands.append(Cede(mac, binding_id))


# -- time: the reconciliation after a restart --------------------------------------------
def _tick(state: HandoffState, event: Tick, now: float, step: Step) -> None:
    if state.reconciled:
        return
    servers = {row.server for row in state.rows.values() if row.owner == state.name}
    missing = servers - set(state.view.devices)
    ready, without = state.warm.ready(now, missing)
    if not ready:
        return
    if without:
        step.note(f"store reconcile: servers {sorted(missing)} did not come back within "
                  f"{state.warm.deadline:g} s; their VMs' rows are released", "warning")
    _reconcile(state, step)


def _reconcile(state: HandoffState, step: Step) -> None:
    """Release our rows of VMs the switches did not give back; adopt the unlisted."""
    state.reconciled = True
    current = state.view.bindings
    stale = sorted(mac for mac, row in state.rows.items()
                   if row.owner == state.name and mac not in current)
    for mac in stale:
        state.releasing.add(mac)
        step.writes.append(Release(mac))
    unlisted = [held for mac, held in current.items()
                if held.restored and mac not in state.published and not state.ours(mac)]
    for held in unlisted:
        _adopt(state, held, step)
    step.note(f"store reconcile: {len(current)} bindings restored, {len(stale)} stale rows "
              f"released, {len(unlisted)} restored VMs not listed as ours checked")


# -- results of our writes ---------------------------------------------------------------
def _write_done(state: HandoffState, event: WriteDone, now: float, step: Step) -> None:
    write = event.write
    if isinstance(write, Claim) or (isinstance(write, RequestFromOwner)
                                    and write.mac not in state.published):
        state.taking.discard(write.mac)   # the row names us now: our condition has it
    if isinstance(write, Claim) and not event.ok:
        held = state.published.get(write.mac)
        if held is not None and held.record == write.record:
            del state.published[write.mac]   # claimed again on the next change
        step.note(f"store: claim of VM {write.mac} failed ({event.error}); claimed again "
                  "on the next change", "warning")
    elif isinstance(write, Adopt):
        _adopted(state, event, write, step)
    elif isinstance(write, RequestOwner) and event.ok and event.value is True:
        state.handing.add(write.mac)
        step.commands.append(HandOver(write.mac))


def _adopted(state: HandoffState, event: WriteDone, write: Adopt, step: Step) -> None:
    mac = write.mac
    state.taking.discard(mac)
    if not event.ok:
        state.published.pop(mac, None)   # checked again on the next change
        return
    if event.value is not False:
        return
    state.published.pop(mac, None)
    held = state.view.bindings.get(mac)
    if held is not None and held.binding_id == write.binding_id:
        step.note(f"store reconcile: VM {mac} is another process's now; deprovisioned here")
        step.commands.append(Cede(mac, write.binding_id))


_HANDLERS: Dict[type, Callable] = {
    RowChanged: _row_changed,
    BindingsChanged: _bindings_changed,
    HandOffAsked: _hand_off_asked,
    Expecting: _expecting,
    Tick: _tick,
    WriteDone: _write_done,
}
