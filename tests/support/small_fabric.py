"""The unit labs' small fabric: a fabric switch, an access switch, two servers behind it.

    F1 (fabric) port 1 -- port 1 A1 (access) ports 2, 3 -- UPLINK of S11, S12 (servers)
"""

from __future__ import annotations

from typing import Callable, Iterable

from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import PortRef, Role
from ryu_apps.core.flow_plan import Plan

F1, A1 = 0x100, 0x201
S11, S12 = 0x1101, 0x1102
#: Each server's port toward A1.
UPLINK = 10


def _nothing_held(dpid: int) -> Iterable:
    return []


def bring_up(engine: ProvisioningEngine, apply: Callable[[Plan], object],
             held: Callable[[int], Iterable] = _nothing_held) -> None:
    """Connect the four switches and their links at time 0, each switch holding
    ``held(dpid)`` (a restart), passing each plan to ``apply``."""
    for dpid, role in ((F1, Role.FABRIC), (A1, Role.ACCESS),
                       (S11, Role.SERVER), (S12, Role.SERVER)):
        apply(engine.switch_up(dpid, role, hex(dpid), held(dpid), now=0.0))
    for a, b in (((A1, 1), (F1, 1)), ((S11, UPLINK), (A1, 2)), ((S12, UPLINK), (A1, 3))):
        apply(engine.link_seen(PortRef(*a), PortRef(*b), now=0.0))
