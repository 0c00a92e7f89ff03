"""The cookie scheme: every flow dynprov installs says who made it and why.

Layout of the 64-bit OpenFlow cookie::

    63        56 55  52 51            36 35                               0
    +-----------+------+----------------+----------------------------------+
    | app 0xD9  | kind |  template id   |  owner id                        |
    +-----------+------+----------------+----------------------------------+

- app: 0xD9 marks a flow as dynprov's; flows without it are never touched.
- kind: what produced the flow: a VM binding (1), a VLAN's shared flows (2),
  a VLAN's admission and port ACL on one access port (3), the drop flows of
  MACs quarantined on one port (4), a migrating VM's both-ways delivery (5),
  the capture of a VM's answer to the controller's liveness probe (6), a
  template's ACLs shared by its VMs on one server bridge (7), or the
  switch's infrastructure flows such as LLDP capture and the table miss (15).
- template id: the configuration template of a binding (0 for other kinds).
- owner id: the binding id for BINDING and LIVENESS (for MIGRATION: the
  binding the VM migrates away from), the template id for TEMPLATE (its flows
  are kept per server bridge), the VLAN id for VLAN,
  ``port << 12 | vlan`` for PORT_GROUP, the port for QUARANTINE, 0 for INFRA.

Every delete and stats request carries a mask, so one binding's flows are
removed exactly, and a switch's flows that are not ours survive.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

APP_ID = 0xD9
APP_SHIFT = 56
KIND_SHIFT = 52
TEMPLATE_SHIFT = 36

APP_MASK = 0xFF << APP_SHIFT
KIND_MASK = 0xF << KIND_SHIFT
TEMPLATE_MASK = 0xFFFF << TEMPLATE_SHIFT
OWNER_MASK = (1 << TEMPLATE_SHIFT) - 1
MAX_OWNER_ID = OWNER_MASK

#: Mask that selects an owner's flows whatever template they carry.
OWNER_SELECT_MASK = APP_MASK | KIND_MASK | OWNER_MASK
#: Mask that selects every flow of the app.
APP_SELECT_MASK = APP_MASK


class CookieKind(enum.IntEnum):
    """What produced a flow."""

    BINDING = 1
    VLAN = 2
    PORT_GROUP = 3
    QUARANTINE = 4
    MIGRATION = 5
    LIVENESS = 6
    TEMPLATE = 7
    INFRA = 15


@dataclass(frozen=True, order=True)
class Owner:
    """The producer of a set of flows; flows are added and removed per owner."""

    kind: CookieKind
    owner_id: int
    template_id: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.owner_id <= MAX_OWNER_ID:
            raise ValueError(f"owner id {self.owner_id} outside 0..{MAX_OWNER_ID}")
        if not 0 <= self.template_id <= 0xFFFF:
            raise ValueError(f"template id {self.template_id} outside 0..65535")

    @property
    def cookie(self) -> int:
        """The cookie every flow of this owner carries."""
        return (
            (APP_ID << APP_SHIFT)
            | (int(self.kind) << KIND_SHIFT)
            | (self.template_id << TEMPLATE_SHIFT)
            | self.owner_id
        )

    def describe(self) -> str:
        """Short human label, e.g. ``binding 7 template 250``."""
        if self.kind is CookieKind.BINDING:
            return f"binding {self.owner_id} template {self.template_id}"
        if self.kind is CookieKind.VLAN:
            return f"vlan {self.owner_id}"
        if self.kind is CookieKind.PORT_GROUP:
            port, vlan = divmod(self.owner_id, 1 << 12)
            return f"access port {port} vlan {vlan}"
        if self.kind is CookieKind.QUARANTINE:
            return f"quarantine port {self.owner_id}"
        if self.kind is CookieKind.MIGRATION:
            return f"migration from binding {self.owner_id} template {self.template_id}"
        if self.kind is CookieKind.LIVENESS:
            return f"liveness probe of binding {self.owner_id}"
        if self.kind is CookieKind.TEMPLATE:
            return f"template {self.template_id} (shared)"
        return "infrastructure"


INFRA_OWNER = Owner(CookieKind.INFRA, 0)


def binding_owner(binding_id: int, template_id: int) -> Owner:
    """Owner of the flows of one VM binding."""
    return Owner(CookieKind.BINDING, binding_id, template_id)


def migration_owner(binding_id: int, template_id: int) -> Owner:
    """Owner of the both-ways delivery of a VM migrating away from binding ``binding_id``."""
    return Owner(CookieKind.MIGRATION, binding_id, template_id)


def liveness_owner(binding_id: int, template_id: int) -> Owner:
    """Owner of the flow that brings a probed VM's answer to the controller."""
    return Owner(CookieKind.LIVENESS, binding_id, template_id)


def template_owner(template_id: int) -> Owner:
    """Owner of a template's shared flows on the server bridges that host its VMs."""
    return Owner(CookieKind.TEMPLATE, template_id, template_id)


def vlan_owner(vlan_id: int) -> Owner:
    """Owner of a VLAN's shared flows (flooding, uplink admission)."""
    return Owner(CookieKind.VLAN, vlan_id)


def port_group_owner(port: int, vlan: int) -> Owner:
    """Owner of one VLAN's admission and port ACL on one access-switch port."""
    return Owner(CookieKind.PORT_GROUP, (port << 12) | vlan)


def quarantine_owner(port: int) -> Owner:
    """Owner of the drop flows for refused MACs seen on one port."""
    return Owner(CookieKind.QUARANTINE, port)


def is_ours(cookie: int) -> bool:
    """True when the cookie carries dynprov's app id."""
    return (cookie & APP_MASK) >> APP_SHIFT == APP_ID


def decode_cookie(cookie: int) -> Owner | None:
    """The owner encoded in a cookie, or None when the flow is not ours."""
    if not is_ours(cookie):
        return None
    kind_value = (cookie & KIND_MASK) >> KIND_SHIFT
    try:
        kind = CookieKind(kind_value)
    except ValueError:
        return None
    return Owner(
        kind, cookie & OWNER_MASK, (cookie & TEMPLATE_MASK) >> TEMPLATE_SHIFT
    )
