"""What the engine answers to a packet or an OVSDB row from a VM port (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ryu_apps.core.binding import Binding
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.quarantine import Refusal


@dataclass
class PacketVerdict:
    """The outcome of a packet from a VM port: a plan and what to log."""

    plan: Plan = field(default_factory=Plan)
    provisioned: Binding | None = None
    refusal: Refusal | None = None
    first_refusal: bool = False
    #: (kind, detail) when the VM's first IPv4 source was not bound (another VM holds
    #: it): the VM stays unbound; the app logs it once per VM and kind.
    address_refused: tuple[str, str] | None = None
