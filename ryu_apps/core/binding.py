"""A VM binding: one VM, identified by its MAC, provisioned on one port."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ryu_apps.core.cookies import Owner, binding_owner


class BindingState(enum.Enum):
    """Where a binding is in its life."""

    ACTIVE = "active"


class Detection(enum.Enum):
    """How the VM was found."""

    PACKET = "packet"      # its first frame reached the controller
    OVSDB = "ovsdb"        # the server's OVSDB Interface row names its MAC
    RESTORED = "restored"  # read back from a switch's flows after a restart


@dataclass(frozen=True)
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
    state: BindingState = BindingState.ACTIVE

    @property
    def owner(self) -> Owner:
        """The cookie owner of this binding's flows."""
        return binding_owner(self.binding_id, self.template_id)
