"""A VM binding: one VM, identified by its MAC, provisioned on one port."""

from __future__ import annotations

from dataclasses import dataclass

from ryu_apps.core.cookies import Owner, binding_owner


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

    @property
    def owner(self) -> Owner:
        """The cookie owner of this binding's flows."""
        return binding_owner(self.binding_id, self.template_id)
