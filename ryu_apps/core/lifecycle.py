"""VM lifecycle: notifications from the management entity, and migrations (pure).

Mixed into :class:`~ryu_apps.core.engine.ProvisioningEngine`. A notification
names a VM by MAC (and a server by bridge name or datapath id); each is
acknowledged with what was done, refused with a :class:`NotificationError`
that says why, and is idempotent. A migration notice goes from the VM's
network device to the destination's as a
:class:`~ryu_apps.core.device_messages.MigrationNotice`; the destination
pre-provisions, and when the VM shows up there it activates the new side and
sends :class:`~ryu_apps.core.device_messages.MigrationDone` back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Optional

from ryu_apps.core.binding import Binding, VmState
from ryu_apps.core.device_messages import MigrationDone, MigrationNotice
from ryu_apps.core.flow_plan import PacketOut, Plan
from ryu_apps.core.cookies import migration_owner
from ryu_apps.core.notification_errors import (  # noqa: F401 (NotificationError: API)
    MalformedNotification,
    NotApplicable,
    NotificationError,
    UnknownServer,
    UnknownVm,
)
from ryu_apps.core.migration_paths import (
    arrival_announcement_flows,
    both_ways_flows,
    both_ways_to_shared_fabric,
    redirect_flows,
)


class Notice(enum.Enum):
    """What the external management entity can tell about a VM."""

    STARTED = "started"
    SHUTDOWN = "shutdown"
    SUSPENDED = "suspended"
    RESUMED = "resumed"
    RESTARTING = "restarting"
    MIGRATING = "migrating"
    TEMPLATE_CHANGE = "template-change"


@dataclass
class Acknowledgement:
    """What a notification did."""

    plan: Plan
    message: str


class VmLifecycle:
    """Notifications and migrations; expects the engine's state and helpers."""

    def notify(self, notice: Notice, mac: str, server: Optional[str] = None,
               template_id: Optional[int] = None, now: float = 0.0) -> Acknowledgement:
        """Handle one notification; raise NotificationError when it cannot apply."""
        mac = _mac(mac)
        handler = {
            Notice.STARTED: self._notice_started,
            Notice.SHUTDOWN: self._notice_shutdown,
            Notice.SUSPENDED: self._notice_suspended,
            Notice.RESUMED: self._notice_resumed,
            Notice.RESTARTING: self._notice_restarting,
            Notice.MIGRATING: self._notice_migrating,
            Notice.TEMPLATE_CHANGE: self._notice_template_change,
        }[notice]
        plan = Plan()
        message = handler(mac, server, template_id, now, plan)
        plan.notes.append(f"notification {notice.value} for VM {mac}: {message}")
        return Acknowledgement(plan, message)

    def receive(self, message, now: float = 0.0) -> Plan:
        """A message from another network device."""
        plan = Plan()
        if isinstance(message, MigrationNotice):
            self._expect_arrival(message, plan, now)
        elif isinstance(message, MigrationDone):
            source = self.outgoing.pop(message.mac, None)
            if source is not None:
                self._release_source(source, plan)
        return plan

    def handing_over(self, mac: str) -> Plan:
        """Another process takes VM ``mac`` over (a hand-off recorded in the store, or its
        claim seen there) while its port here is still there: deliver its frames at
        that port and toward the shared fabric until the port goes away (the VM may
        not have switched over yet)."""
        plan = Plan()
        binding = self.bindings.get(_mac(mac))
        if binding is None or not binding.state.forwards:
            return plan
        before = plan.flow_count()
        if self._toward_shared_fabric_too(binding, plan) and plan.flow_count() > before:
            plan.notes.append(f"VM {binding.mac} moving to another process: its frames "
                              f"go to port {binding.port} of {self._name(binding.dpid)} and "
                              "to the shared fabric until that port goes away")
        return plan

    def stop_handing_over(self, mac: str) -> Plan:
        """The process VM ``mac`` was being handed to gave it up (it never arrived there):
        its frames go to its port here only again."""
        plan = Plan()
        binding = self.bindings.get(_mac(mac))
        if binding is None or not binding.state.forwards:
            return plan
        before = plan.flow_count()
        self._end_migration_paths(binding, plan)
        if plan.flow_count() > before:
            plan.notes.append(f"VM {binding.mac} stays here: the hand-off to another "
                              "process was withdrawn")
        return plan

    def _toward_shared_fabric_too(self, binding: Binding, plan: Plan,
                                  expected: bool = False) -> bool:
        """Deliver the VM's frames at its port and toward the shared fabric; whether any
        way leads there. ``expected``: the VM is not there yet, and its announcements
        on arrival go straight to the shared fabric too."""
        owner = migration_owner(binding.binding_id, binding.template_id)
        flows = both_ways_to_shared_fabric(self.fabric, binding, owner.cookie)
        if flows and expected:
            flows |= arrival_announcement_flows(self.fabric, binding, owner.cookie)
        self.desired.replace(owner, flows, plan)
        return bool(flows)

    # -- notifications -------------------------------------------------------
    def _notice_started(self, mac, server, template_id, now, plan) -> str:
        dpid = self._server(server)
        current = self.bindings.get(mac)
        if current is not None and current.dpid == dpid and current.state.forwards:
            return f"already provisioned on {self._name(dpid)} port {current.port}"
        port = next((p for (d, p), m in self.attachments.items() if d == dpid and m == mac),
                    None)
        if port is None:
            return (f"will be provisioned when it appears on {self._name(dpid)} "
                    "(its first packet or its OVSDB row)")
        verdict = self.vm_attached(dpid, port, mac, now)
        plan.extend(verdict.plan)
        if verdict.refusal:
            raise NotApplicable(f"VM {mac} refused: {verdict.refusal.reason}")
        expected = self.incoming.get(mac)
        if expected is not None and (expected.dpid, expected.port) == (dpid, port):
            return (f"pre-provisioned on {self._name(dpid)} port {port}; activated when it "
                    "arrives there")
        return f"provisioned on {self._name(dpid)} port {port}"

    def _notice_shutdown(self, mac, server, template_id, now, plan) -> str:
        binding = self._known(mac, allow_gone=True)
        if binding is None:
            return "already deprovisioned"
        self._unbind(binding, plan, "shut down")
        self._drop_incoming(mac, plan)
        return f"deprovisioned from {self._name(binding.dpid)} port {binding.port}"

    def _notice_suspended(self, mac, server, template_id, now, plan) -> str:
        binding = self._known(mac)
        if binding.state is VmState.SUSPENDED:
            return "already suspended"
        if not binding.state.forwards:
            raise NotApplicable(f"VM {mac} is {binding.state.value}: only an active VM "
                                    "can be suspended")
        self._set_state(binding, VmState.SUSPENDED, plan)
        return "traffic stopped, binding kept"

    def _notice_resumed(self, mac, server, template_id, now, plan) -> str:
        binding = self._known(mac)
        if binding.state.forwards:
            return "already active"
        if binding.state is not VmState.SUSPENDED:
            raise NotApplicable(f"VM {mac} is {binding.state.value}: only a suspended VM "
                                    "can be resumed")
        self._set_state(binding, VmState.ACTIVE, plan)
        return "traffic restored"

    def _notice_restarting(self, mac, server, template_id, now, plan) -> str:
        binding = self._known(mac)
        if binding.state is VmState.RESTARTING:
            return "already restarting"
        self._set_state(binding, VmState.RESTARTING, plan)
        return (f"flows removed; template {binding.template_id} kept for when it comes back")

    def _notice_migrating(self, mac, server, template_id, now, plan) -> str:
        binding = self._known(mac)
        dpid = self._server(server)
        if binding.dpid == dpid:
            return f"already on {self._name(dpid)}"
        source_domain = self.domain_of_server(binding.dpid)
        target_domain = self.domain_of_server(dpid)
        if target_domain is None or source_domain is None or \
                target_domain.name != source_domain.name:
            where = f"domain {target_domain.name!r}" if target_domain else "no domain"
            raise NotApplicable(
                f"server {self._name(dpid)} is outside VM {mac}'s mobility domain "
                f"'{source_domain.name if source_domain else '?'}' (it is in {where})")
        destination_device = self._device_of(dpid)
        if destination_device is None:
            raise NotApplicable(f"server {self._name(dpid)} hangs off no known access "
                                    "switch yet")
        if binding.state.forwards and binding.state is not VmState.MIGRATING_OUT:
            # forwarding either way: the same flows (a suspended VM stays suspended; its
            # state must not turn forwarding behind its flows' and groups' back)
            self._store(replace(binding, state=VmState.MIGRATING_OUT))
        plan.messages.append(MigrationNotice(
            mac, binding.binding_id, binding.template_id, binding.ip,
            binding.device if binding.device is not None else -1, destination_device, dpid))
        return (f"destination {self._name(destination_device)} told to pre-provision "
                f"{self._name(dpid)}")

    def _notice_template_change(self, mac, server, template_id, now, plan) -> str:
        binding = self._known(mac)
        if template_id is None:
            raise MalformedNotification("a template change needs the new template id")
        library = self.library_of_switch(binding.dpid) or self.main_library
        template = library.get(template_id)
        if template is None:
            raise NotApplicable(f"template {template_id} (0x{template_id:04X}) is not in "
                                    f"the library of VM {mac}'s domain")
        if template_id == binding.template_id:
            return f"already on template {template_id} '{template.name}'"
        self._rebind(binding, replace(binding, template_id=template_id,
                                      template_name=template.name, vlan=template.vlan), plan)
        return f"re-provisioned in place with template {template_id} '{template.name}'"

    # -- migration -------------------------------------------------------------
    def _expect_arrival(self, notice: MigrationNotice, plan: Plan, now: float = 0.0) -> None:
        """Destination side: pre-provision now if the VM's new port is known.

        Otherwise the port's OVSDB row, or the VM's first frame there (believed:
        the notice named this server), will do it.
        """
        self._notice_names(notice.mac, notice.destination_server, now, plan)
        source = self.bindings.get(notice.mac)
        port = next((p for (d, p), m in self.attachments.items()
                     if d == notice.destination_server and m == notice.mac), None)
        if source is not None and port is not None:
            self._pre_provision(source, notice.destination_server, port, plan,
                                "migration notice")

    def _pre_provision(self, source: Binding, dpid: int, port: int, plan: Plan,
                       why: str) -> None:
        """Get the destination port ready for a VM that still runs elsewhere."""
        pending = self.incoming.get(source.mac)
        if pending is not None and (pending.dpid, pending.port) == (dpid, port):
            return
        self._drop_incoming(source.mac, plan)
        holder = self._by_port.get((dpid, port))
        if holder is not None:
            plan.notes.append(f"cannot pre-provision VM {source.mac} on port {port}: "
                              f"port bound to VM {holder.mac}")
            return
        incoming = replace(source, binding_id=self._allocate_binding_id(), dpid=dpid,
                           port=port, state=VmState.PRE_PROVISIONED,
                           device=self._device_of(dpid))
        self._store(incoming)
        self._apply_binding(incoming, plan)
        if source.state.forwards:
            self._both_ways(source, incoming, plan)
        self._refresh_group(self._group_key(incoming), plan)
        self._refresh_vlans({incoming.vlan}, plan)
        self._lift_quarantine(incoming, plan)
        plan.notes.append(f"pre-provisioned VM {source.mac} on {self._name(dpid)} port {port} "
                          f"(binding {incoming.binding_id}): {why}")

    def _activate(self, incoming: Binding, plan: Plan, why: str) -> None:
        """The VM is at its destination: make its new side whole; tell the source.

        The source side stays (as this VM's outgoing binding) until the source
        device receives MigrationDone and releases it: make-before-break across
        devices, and the only thing devices share is the message.
        """
        source = self.bindings.get(incoming.mac)
        self._drop(incoming)
        active = replace(incoming, state=VmState.PROVISIONING)
        if source is not None and source.binding_id != active.binding_id:
            self.outgoing[source.mac] = replace(source, state=VmState.MIGRATING_OUT)
        self._store(active)
        self._apply_binding(active, plan)
        if source is not None and source.binding_id != active.binding_id:
            self._redirect(source, active, plan)
        else:
            self._end_migration_paths(active, plan)
        self._refresh_group(self._group_key(active), plan)
        self._refresh_vlans({active.vlan}, plan)
        self._lift_quarantine(active, plan)
        plan.confirms.append(active.mac)
        # the pre-provisioned port's entries already deliver its frames: no need to wait
        self._announce(active, plan, at_once=True)
        plan.notes.append(f"activated VM {active.mac} on {self._name(active.dpid)} port "
                          f"{active.port} (binding {active.binding_id}): {why}")
        if source is not None and source.binding_id != active.binding_id:
            plan.messages.append(MigrationDone(active.mac, source.device or -1,
                                               active.device or -1))

    def _release_source(self, source: Binding, plan: Plan) -> None:
        """Source device: remove what a VM that migrated away left behind."""
        if self._by_port.get((source.dpid, source.port)) is source:
            del self._by_port[(source.dpid, source.port)]
        if not self._holds_binding_id(source.binding_id):
            self._ids_in_use.discard(source.binding_id)
        self.desired.replace(source.owner, set(), plan)
        self._end_migration_paths(self.bindings.get(source.mac), plan)
        self._refresh_group(self._group_key(source), plan)
        self._refresh_vlans({source.vlan}, plan)
        plan.notes.append(f"deprovisioned VM {source.mac} (binding {source.binding_id}) on "
                          f"{self._name(source.dpid)}: migrated away")

    def _come_back(self, binding: Binding, dpid: int, port: int, data: bytes,
                   plan: Plan) -> Binding:
        """A restarting VM is back: provision it with the template it had."""
        self._drop(binding)
        back = replace(binding, dpid=dpid, port=port, state=VmState.PROVISIONING,
                       device=self._device_of(dpid))
        self._bind(back, plan)
        self.desired.replace(binding.owner, set(), plan) if binding.owner != back.owner else None
        if data:
            plan.packet_outs.append(PacketOut(dpid, port, data))
        plan.notes.append(f"VM {binding.mac} back from restart on {self._name(dpid)} port "
                          f"{port}: template {binding.template_id} kept")
        return back

    def _vm_port_gone(self, dpid: int, port: int, why: str, plan: Plan) -> None:
        """A VM's port vanished: if it was migrating, its destination takes over."""
        binding = self._by_port.get((dpid, port))
        if binding is None:
            return
        outgoing = self.outgoing.get(binding.mac)
        if outgoing is not None and outgoing.binding_id == binding.binding_id:
            self._release_source(self.outgoing.pop(binding.mac), plan)
            return
        if binding.state is VmState.PRE_PROVISIONED:
            self._drop(binding)
            self.desired.replace(binding.owner, set(), plan)
            self._end_migration_paths(binding, plan)
            self._refresh_group(self._group_key(binding), plan)
            self._refresh_vlans({binding.vlan}, plan)
            return
        incoming = self.incoming.get(binding.mac)
        if incoming is not None:
            self._activate(incoming, plan, f"its old port went away ({why})")
            return
        self._unbind(binding, plan, why)

    def _both_ways(self, source: Binding, incoming: Binding, plan: Plan) -> None:
        """Deliver frames for the VM at its current port and at ``incoming``'s."""
        owner = migration_owner(incoming.binding_id, incoming.template_id)
        self.desired.replace(owner, both_ways_flows(self.fabric, source, incoming,
                                                    owner.cookie), plan)

    def _redirect(self, source: Binding, active: Binding, plan: Plan) -> None:
        """The VM is active at ``active``: its old server sends its frames there."""
        owner = migration_owner(active.binding_id, active.template_id)
        self.desired.replace(owner, redirect_flows(self.fabric, source, active,
                                                   owner.cookie), plan)

    def _end_migration_paths(self, binding: Optional[Binding], plan: Plan) -> None:
        """Remove the both-ways or redirect entries a destination binding owns."""
        if binding is not None:
            self.desired.replace(migration_owner(binding.binding_id, binding.template_id),
                                 set(), plan)

    def _drop_incoming(self, mac: str, plan: Plan) -> None:
        pending = self.incoming.get(mac)
        if pending is not None:
            self._drop(pending)
            self.desired.replace(pending.owner, set(), plan)
            self._end_migration_paths(pending, plan)
            self._refresh_group(self._group_key(pending), plan)
            self._refresh_vlans({pending.vlan}, plan)

    def _set_state(self, binding: Binding, state: VmState, plan: Plan) -> None:
        self._rebind(binding, replace(binding, state=state), plan)

    # -- lookups -------------------------------------------------------------
    def _known(self, mac: str, allow_gone: bool = False) -> Optional[Binding]:
        binding = self.bindings.get(mac)
        if binding is not None:
            return binding
        if allow_gone and mac in self.history:
            return None
        raise UnknownVm(f"unknown VM {mac}: no binding and never seen by this "
                                "controller")

    def _server(self, server: Optional[str]) -> int:
        if server is None:
            raise MalformedNotification("this notification needs the server (bridge name or "
                                    "datapath id)")
        for dpid, info in self.fabric.switches.items():
            if server in (info.name, f"{dpid:016x}", f"{dpid:x}", str(dpid)):
                if not info.role.hosts_vms:
                    raise NotApplicable(f"{server} is a {info.role.value} switch, not a "
                                            "server's virtual switch")
                return dpid
        raise UnknownServer(f"unknown server {server!r}: no connected server bridge has "
                                "that name or datapath id")


def _mac(text: str) -> str:
    from ryu_apps.core.identifiers import IdentifierError, format_mac, parse_mac
    try:
        return format_mac(parse_mac(text))
    except IdentifierError as error:
        raise MalformedNotification(str(error)) from None
