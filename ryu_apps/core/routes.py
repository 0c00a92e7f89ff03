"""Migration paths and liveness probes in force, kept as records (pure).

Each record says what its owner's flows are computed from (the bindings and
the kind of way), so they can be computed again after a fabric change and from
scratch (:func:`~ryu_apps.core.derived.recompute_all`). A migration path is
owned by :func:`~ryu_apps.core.cookies.migration_owner` of the destination
binding (or of the VM handed to another process); a liveness probe by
:func:`~ryu_apps.core.cookies.liveness_owner` of the probed binding.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, Optional, Set

from ryu_apps.core.binding import Binding
from ryu_apps.core.cookies import Owner, liveness_owner, migration_owner
from ryu_apps.core.fabric import Fabric
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.flowspec import OFPP_CONTROLLER, FlowSpec, Output, flow, make_match
from ryu_apps.core.identity import PROBE_MAC
from ryu_apps.core.migration_paths import (
    arrival_announcement_flows,
    both_ways_flows,
    both_ways_to_shared_fabric,
    redirect_flows,
)
from ryu_apps.core.pipeline import LIVENESS_METER, Priority, Table
from ryu_apps.core.switch_flows import PACKET_IN_BYTES

if TYPE_CHECKING:
    from ryu_apps.core.engine_state import EngineState


class Way(enum.Enum):
    """What a migration path delivers."""

    BOTH_WAYS = "both-ways"          # at the source and at the pre-provisioned destination
    REDIRECT = "redirect"            # the old server sends frames up to the new place
    SHARED = "shared"                # at the VM's port and toward the shared fabric
    SHARED_EXPECTED = "expected"     # the same, and its arrival announcements


@dataclass(frozen=True)
class Route:
    """One migration path: its owner, its kind, the VM's binding and the other end's."""

    owner: Owner
    way: Way
    vm: Binding
    other: Optional[Binding] = None

    def flows(self, fabric: Fabric, cookie: int) -> Set[FlowSpec]:
        """The path's entries on the current fabric."""
        if self.way is Way.BOTH_WAYS and self.other is not None:
            return set(both_ways_flows(fabric, self.vm, self.other, cookie))
        if self.way is Way.REDIRECT and self.other is not None:
            return set(redirect_flows(fabric, self.vm, self.other, cookie))
        flows = set(both_ways_to_shared_fabric(fabric, self.vm, cookie))
        if flows and self.way is Way.SHARED_EXPECTED:
            flows |= arrival_announcement_flows(fabric, self.vm, cookie)
        return flows


def route_owner(binding: Binding) -> Owner:
    """The owner of the migration path a binding owns."""
    return migration_owner(binding.binding_id, binding.template_id)


def probe_flows(binding: Binding) -> Set[FlowSpec]:
    """The entry that brings the VM's answer to a liveness probe to the controller."""
    owner = liveness_owner(binding.binding_id, binding.template_id)
    return {flow(binding.dpid, Table.CLASSIFY, Priority.LIVENESS_REPLY,
                 make_match(in_port=binding.port, eth_src=binding.mac, eth_dst=PROBE_MAC),
                 owner.cookie, meter=LIVENESS_METER,
                 actions=(Output(OFPP_CONTROLLER, PACKET_IN_BYTES),))}


class Routes:
    """Migration paths and liveness probes by owner cookie."""

    def __init__(self) -> None:
        self.paths: Dict[int, Route] = {}
        self.probes: Dict[int, Binding] = {}

    def owners(self) -> Dict[int, Owner]:
        """Every owner with a record, by cookie."""
        found: Dict[int, Owner] = {}
        for route in self.paths.values():
            found[route.owner.cookie] = route.owner
        for probed in self.probes.values():
            owner = liveness_owner(probed.binding_id, probed.template_id)
            found[owner.cookie] = owner
        return found

    def flows(self, cookie: int, fabric: Fabric) -> Set[FlowSpec]:
        """The flows of one owner now."""
        route = self.paths.get(cookie)
        if route is not None:
            return route.flows(fabric, cookie)
        probed = self.probes.get(cookie)
        return probe_flows(probed) if probed is not None else set()


def set_path(st: "EngineState", route: Route, plan: Plan) -> bool:
    """Put a migration path in force (replacing its owner's); whether it has entries."""
    flows = route.flows(st.topo.fabric, route.owner.cookie)
    st.routes.paths[route.owner.cookie] = route
    st.desired.replace(route.owner, flows, plan)
    return bool(flows)


def end_path(st: "EngineState", binding: Optional[Binding], plan: Plan) -> None:
    """Remove the migration path a binding owns (both-ways, redirect or shared)."""
    if binding is not None:
        owner = route_owner(binding)
        st.routes.paths.pop(owner.cookie, None)
        st.desired.replace(owner, set(), plan)


def set_probe(st: "EngineState", binding: Binding, plan: Plan) -> None:
    """Bring the answer to a liveness probe of the VM at ``binding`` to the controller."""
    owner = liveness_owner(binding.binding_id, binding.template_id)
    st.routes.probes[owner.cookie] = binding
    st.desired.replace(owner, probe_flows(binding), plan)


def end_probe(st: "EngineState", binding: Optional[Binding], plan: Plan) -> None:
    """The liveness probe of ``binding`` is over."""
    if binding is not None:
        owner = liveness_owner(binding.binding_id, binding.template_id)
        st.routes.probes.pop(owner.cookie, None)
        st.desired.replace(owner, set(), plan)
