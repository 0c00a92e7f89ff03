"""A VM binding: one VM, identified by its MAC, provisioned on one port."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ryu_apps.core.cookies import Owner, binding_owner


class VmState(enum.Enum):
    """Where a VM is in its life, as its network device sees it.

    detected -> provisioning -> active; active <-> suspended;
    active -> restarting -> provisioning (same template, same binding);
    source side of a migration: active -> migrating-out -> deprovisioned;
    destination side: pre-provisioned -> active; any -> deprovisioned.
    """

    DETECTED = "detected"
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    RESTARTING = "restarting"
    MIGRATING_OUT = "migrating-out"
    PRE_PROVISIONED = "pre-provisioned"
    DEPROVISIONED = "deprovisioned"

    #: Whether traffic to and from the VM flows in this state (a plain attribute of
    #: each member, set below: it is read for every member of a group per event).
    forwards: bool


for _state in VmState:
    _state.forwards = _state in (VmState.PROVISIONING, VmState.ACTIVE, VmState.MIGRATING_OUT)
del _state


#: The name earlier code used.
BindingState = VmState


#: How a binding's IPv4 address was bound: the first address the VM sent from, a
#: snooped DHCPACK (core/dhcp_snooping.py), or given with the VM from outside the
#: packets (a moved VM's search, a hand-off's store row that does not say how: one an
#: older dynprov wrote; a row that says keeps it).
IP_FIRST_SEEN, IP_DHCP, IP_PINNED = "first_seen", "dhcp", "pinned"
#: Every way an address is bound (what a store row may say).
IP_SOURCES = (IP_FIRST_SEEN, IP_DHCP, IP_PINNED)


class Detection(enum.Enum):
    """How the VM was found."""

    PACKET = "packet"      # its first frame reached the controller
    OVSDB = "ovsdb"        # the server's OVSDB Interface row names its MAC
    RESTORED = "restored"  # read back from a switch's flows after a restart


@dataclass(frozen=True, slots=True)
class Binding:
    """VM ``mac`` on port ``port`` of server bridge ``dpid`` with a template."""

    binding_id: int
    mac: str
    template_id: int
    template_name: str
    vlan: int
    dpid: int
    port: int
    since: float = 0.0
    ip: str | None = None
    detected_by: Detection = Detection.PACKET
    state: VmState = VmState.PROVISIONING
    #: The access switch (network device) the VM's server hangs off, if known.
    device: int | None = None
    #: The IPv4 address its first frame carried (the liveness probe asks for it).
    seen_ip: str | None = None
    #: How ``ip`` was bound: :data:`IP_FIRST_SEEN`, :data:`IP_DHCP` or :data:`IP_PINNED`.
    ip_source: str | None = None
    #: Its bound global IPv6 addresses (``bind_ipv6: first_seen`` or ``dhcpv6``), sorted.
    ipv6: tuple[str, ...] = ()

    @property
    def owner(self) -> Owner:
        """The cookie owner of this binding's flows."""
        return binding_owner(self.binding_id, self.template_id)
