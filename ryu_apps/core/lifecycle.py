"""VM lifecycle: notifications from the management entity, and migrations (pure).

A notification names a VM by MAC (and a server by bridge name or datapath id);
each is acknowledged with what was done, refused with a
:class:`NotificationError` that says why, and is idempotent. A migration
notice goes from the VM's network device to the destination's as a
:class:`~ryu_apps.core.device_messages.MigrationNotice`; the destination
pre-provisions, and when the VM shows up there it activates the new side and
sends :class:`~ryu_apps.core.device_messages.MigrationDone` back
(:mod:`~ryu_apps.core.binding_ops`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Dict, Optional

from ryu_apps.core import arrival_notice, binding_ops, vm_events, vm_identity
from ryu_apps.core.binding import Binding, VmState
from ryu_apps.core.device_messages import MigrationDone, MigrationNotice
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.identifiers import IdentifierError, normalise_mac
from ryu_apps.core.notification_errors import (  # noqa: F401 (NotificationError: API)
    MalformedNotification,
    NotApplicable,
    NotificationError,
    UnknownServer,
    UnknownVm,
)

if TYPE_CHECKING:
    from ryu_apps.core.engine_state import EngineState


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


#: A notice's handler: (state, MAC, server, template id, now, plan) -> what was done.
Handler = Callable[["EngineState", str, Optional[str], Optional[int], float, Plan], str]


def notify(st: "EngineState", notice: Notice, mac: str, server: Optional[str],
           template_id: Optional[int], now: float, plan: Plan) -> str:
    """Handle one notification; raise NotificationError when it cannot apply."""
    mac = _mac(mac)
    message = _HANDLERS[notice](st, mac, server, template_id, now, plan)
    plan.notes.append(f"notification {notice.value} for VM {mac}: {message}")
    return message


def receive(st: "EngineState", message: object, now: float, plan: Plan) -> None:
    """A message from another network device."""
    if isinstance(message, MigrationNotice):
        expect_arrival(st, message, now, plan)
    elif isinstance(message, MigrationDone):
        binding_ops.release_source(st, message.mac, plan)


# -- notifications -----------------------------------------------------------------------
def _started(st: "EngineState", mac: str, server: Optional[str], template_id: Optional[int],
             now: float, plan: Plan) -> str:
    dpid = _server(st, server)
    current = st.table.bindings.get(mac)
    if current is not None and current.dpid == dpid and current.state.forwards:
        return f"already provisioned on {st.name(dpid)} port {current.port}"
    port = st.ports.port_of(dpid, mac)
    if port is None:
        return (f"will be provisioned when it appears on {st.name(dpid)} "
                "(its first packet or its OVSDB row)")
    verdict = vm_events.vm_attached(st, dpid, port, mac, now, None)
    plan.extend(verdict.plan)
    if verdict.refusal:
        raise NotApplicable(f"VM {mac} refused: {verdict.refusal.reason}")
    expected = st.table.incoming.get(mac)
    if expected is not None and (expected.dpid, expected.port) == (dpid, port):
        return (f"pre-provisioned on {st.name(dpid)} port {port}; activated when it "
                "arrives there")
    return f"provisioned on {st.name(dpid)} port {port}"


def _shutdown(st: "EngineState", mac: str, server: Optional[str],
              template_id: Optional[int], now: float, plan: Plan) -> str:
    binding = _known(st, mac, allow_gone=True)
    if binding is None:
        return "already deprovisioned"
    binding_ops.unbind(st, binding, plan, "shut down")
    binding_ops.drop_incoming(st, mac, plan)
    return f"deprovisioned from {st.name(binding.dpid)} port {binding.port}"


def _suspended(st: "EngineState", mac: str, server: Optional[str],
               template_id: Optional[int], now: float, plan: Plan) -> str:
    binding = _bound(st, mac)
    if binding.state is VmState.SUSPENDED:
        return "already suspended"
    if not binding.state.forwards:
        raise NotApplicable(f"VM {mac} is {binding.state.value}: only an active VM "
                            "can be suspended")
    binding_ops.set_state(st, binding, VmState.SUSPENDED, plan)
    if mac in st.table.incoming:   # a live migration of a suspended VM is off
        binding_ops.drop_incoming(st, mac, plan)
        return "traffic stopped, binding kept, its pre-provisioned port released"
    return "traffic stopped, binding kept"


def _resumed(st: "EngineState", mac: str, server: Optional[str], template_id: Optional[int],
             now: float, plan: Plan) -> str:
    binding = _bound(st, mac)
    if binding.state.forwards:
        return "already active"
    if binding.state is not VmState.SUSPENDED:
        raise NotApplicable(f"VM {mac} is {binding.state.value}: only a suspended VM "
                            "can be resumed")
    binding_ops.set_state(st, binding, VmState.ACTIVE, plan)
    return "traffic restored"


def _restarting(st: "EngineState", mac: str, server: Optional[str],
                template_id: Optional[int], now: float, plan: Plan) -> str:
    binding = _bound(st, mac)
    if binding.state is VmState.RESTARTING:
        return "already restarting"
    binding_ops.set_state(st, binding, VmState.RESTARTING, plan)
    return f"flows removed; template {binding.template_id} kept for when it comes back"


def _migrating(st: "EngineState", mac: str, server: Optional[str],
               template_id: Optional[int], now: float, plan: Plan) -> str:
    binding = _bound(st, mac)
    dpid = _server(st, server)
    if binding.dpid == dpid:
        return f"already on {st.name(dpid)}"
    source_domain = st.domain_of_server(binding.dpid)
    target_domain = st.domain_of_server(dpid)
    if target_domain is None or source_domain is None or \
            target_domain.name != source_domain.name:
        where = f"domain {target_domain.name!r}" if target_domain else "no domain"
        raise NotApplicable(
            f"server {st.name(dpid)} is outside VM {mac}'s mobility domain "
            f"'{source_domain.name if source_domain else '?'}' (it is in {where})")
    destination_device = st.topo.device_of(dpid)
    if destination_device is None:
        raise NotApplicable(f"server {st.name(dpid)} hangs off no known access "
                            "switch yet")
    if binding.state.forwards and binding.state is not VmState.MIGRATING_OUT:
        # forwarding either way: the same flows (a suspended VM stays suspended; its
        # state must not turn forwarding behind its flows' and groups' back)
        st.table.add(replace(binding, state=VmState.MIGRATING_OUT))
    plan.messages.append(MigrationNotice(
        mac, binding.binding_id, binding.template_id, binding.ip,
        binding.device if binding.device is not None else -1, destination_device, dpid,
        ipv6=binding.ipv6))
    return (f"destination {st.name(destination_device)} told to pre-provision "
            f"{st.name(dpid)}")


def _template_change(st: "EngineState", mac: str, server: Optional[str],
                     template_id: Optional[int], now: float, plan: Plan) -> str:
    binding = _bound(st, mac)
    if template_id is None:
        raise MalformedNotification("a template change needs the new template id")
    library = st.library_of_switch(binding.dpid) or st.libraries.main
    template = library.get(template_id)
    if template is None:
        raise NotApplicable(f"template {template_id} (0x{template_id:04X}) is not in "
                            f"the library of VM {mac}'s domain")
    if template_id == binding.template_id:
        return f"already on template {template_id} '{template.name}'"
    binding_ops.rebind(st, binding, replace(binding, template_id=template_id,
                                            template_name=template.name,
                                            vlan=template.vlan), plan)
    return f"re-provisioned in place with template {template_id} '{template.name}'"


_HANDLERS: Dict[Notice, Handler] = {
    Notice.STARTED: _started,
    Notice.SHUTDOWN: _shutdown,
    Notice.SUSPENDED: _suspended,
    Notice.RESUMED: _resumed,
    Notice.RESTARTING: _restarting,
    Notice.MIGRATING: _migrating,
    Notice.TEMPLATE_CHANGE: _template_change,
}


# -- migration ---------------------------------------------------------------------------
def expect_arrival(st: "EngineState", notice: MigrationNotice, now: float,
                   plan: Plan) -> None:
    """Destination side: pre-provision now, at the port OVSDB names or, without
    OVSDB, at the likely port (:mod:`~ryu_apps.core.arrival_notice`).

    Otherwise a port coming up there, the port's OVSDB row, or the VM's first
    frame there (believed: the notice named this server) will do it.
    """
    vm_identity.notice_names(st, notice.mac, notice.destination_server, now, plan)
    source = st.table.bindings.get(notice.mac)
    port = st.ports.port_of(notice.destination_server, notice.mac)
    if source is None:
        return
    if port is not None:
        binding_ops.pre_provision(st, source, notice.destination_server, port, plan,
                                  "migration notice")
    elif source.state.forwards and \
            st.ports.notified.get(notice.mac) == notice.destination_server:
        arrival_notice.expect(st, source, notice.destination_server, now, plan)


# -- lookups -------------------------------------------------------------------------------
def _known(st: "EngineState", mac: str, allow_gone: bool = False) -> Optional[Binding]:
    binding = st.table.bindings.get(mac)
    if binding is not None:
        return binding
    if allow_gone and mac in st.table.history:
        return None
    raise UnknownVm(f"unknown VM {mac}: no binding and never seen by this controller")


def _bound(st: "EngineState", mac: str) -> Binding:
    binding = _known(st, mac)
    assert binding is not None   # _known raises unless allow_gone
    return binding


def _server(st: "EngineState", server: Optional[str]) -> int:
    if server is None:
        raise MalformedNotification("this notification needs the server (bridge name or "
                                    "datapath id)")
    for dpid, info in st.topo.fabric.switches.items():
        if server in (info.name, f"{dpid:016x}", f"{dpid:x}", str(dpid)):
            if not info.role.hosts_vms:
                role = info.role.value   # access or fabric
                article = "an" if role[:1] in ("a", "e", "i", "o", "u") else "a"
                raise NotApplicable(f"{server} is {article} {role} switch, not a "
                                    "server's virtual switch")
            return dpid
    raise UnknownServer(f"unknown server {server!r}: no connected server bridge has "
                        "that name or datapath id")


def _mac(text: str) -> str:
    try:
        return normalise_mac(text, "mac")
    except IdentifierError as error:
        raise MalformedNotification(str(error)) from None
