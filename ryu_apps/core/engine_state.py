"""Everything one engine knows, as typed parts, and the lookups across them (pure).

Handlers (:mod:`~ryu_apps.core.binding_ops`, :mod:`~ryu_apps.core.admission`,
:mod:`~ryu_apps.core.vm_events`, :mod:`~ryu_apps.core.vm_identity`,
:mod:`~ryu_apps.core.lifecycle`, :mod:`~ryu_apps.core.shared_fabric`,
:mod:`~ryu_apps.core.topology_events`) are functions of an
:class:`EngineState`, an event and a plan. They change the state parts and
mark derived owners dirty in ``state.dirty``; :func:`~ryu_apps.core.derived.flush`
recomputes those once per event.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple, cast

from ryu_apps.core.access_groups import AccessGroups
from ryu_apps.core.binding import Binding
from ryu_apps.core.binding_table import BindingTable
from ryu_apps.core.datapath_support import DatapathSupport
from ryu_apps.core.derived import Dirty
from ryu_apps.core.domains import Domain, DomainMap
from ryu_apps.core.flow_compiler import Placement
from ryu_apps.core.flow_plan import Recipe
from ryu_apps.core.identifiers import IdentifierScheme
from ryu_apps.core.identity import MOVE_HOLD_SECONDS, IdentityPolicy, MoveGuard
from ryu_apps.core.port_state import PortState
from ryu_apps.core.quarantine import Quarantine
from ryu_apps.core.routes import Routes
from ryu_apps.core.template_model import Template, TemplateLibrary
from ryu_apps.core.server_flood import ServerFloods, delivery
from ryu_apps.core.template_tables import SharedDesired
from ryu_apps.core.topology_state import Topology


class Libraries:
    """The main template library, the mobility domains and their own libraries."""

    def __init__(self, main: TemplateLibrary, domains: DomainMap,
                 of_domain: Dict[str, TemplateLibrary]) -> None:
        self.main = main
        self.domains = domains
        self.of_domain = of_domain


class EngineState:
    """Bindings, ports, topology, quarantine, moves, desired flows and dirty owners."""

    def __init__(self, library: TemplateLibrary, scheme: IdentifierScheme,
                 domains: Optional[DomainMap] = None,
                 domain_libraries: Optional[Dict[str, TemplateLibrary]] = None,
                 identity: IdentityPolicy = IdentityPolicy.AUTO,
                 move_hold: float = MOVE_HOLD_SECONDS,
                 datapaths: Optional[DatapathSupport] = None) -> None:
        self.libraries = Libraries(library, domains or DomainMap(()),
                                   dict(domain_libraries or {}))
        self.scheme = scheme
        #: Whom to believe about a port's VM where the domain does not say.
        self.identity_default = identity
        self.move_hold = move_hold
        self.dirty = Dirty()
        self.table = BindingTable(self._member)
        self.ports = PortState()
        self.topo = Topology()
        #: Each VLAN's forwarding VMs per server, as FLOOD chunks
        self.floods = ServerFloods()
        self.quarantine = Quarantine()
        self.moves = MoveGuard(hold=move_hold)
        self.groups = AccessGroups()
        self.routes = Routes()
        self.desired = SharedDesired()
        #: What the switches' datapaths lack (connection tracking), from their probes
        self.datapaths = datapaths or DatapathSupport()
        #: server -> the flows it reported when its mobility domain was not known yet
        #: (bindings are restored from them once its access switch is)
        self.unrestored: Dict[int, Tuple[List, float]] = {}

    def _member(self, binding: Binding, delta: int) -> None:
        """A binding joins (+1) or leaves (-1) its VLAN on its server: mark what to redo."""
        dirty = self.dirty.vlans.setdefault(binding.vlan, set())
        dirty.add(binding.dpid)
        if binding.state.forwards:
            dirty |= self.topo.member(binding.vlan, binding.dpid, delta)
            self.floods.change(binding.vlan, binding.dpid, delivery(binding), delta)

    # -- libraries and domains -------------------------------------------------------
    def domain_of_server(self, server: int) -> Optional[Domain]:
        """The mobility domain of a server, through its access switch."""
        domains = self.libraries.domains
        if not domains.explicit:
            return domains.of_switch("")
        access = self.topo.access_switch_of(server)
        if access is None:
            return None
        return domains.of_switch(self.topo.fabric.switches[access.dpid].name)

    def library_of_switch(self, server: int) -> Optional[TemplateLibrary]:
        """The library of the mobility domain a server belongs to (None: no domain)."""
        return self.library_of_domain(self.domain_of_server(server))

    def library_of_domain(self, domain: Optional[Domain]) -> Optional[TemplateLibrary]:
        """The library of a mobility domain (None: no domain)."""
        if domain is None:
            return None
        if domain.templates is None:
            return self.libraries.main
        return self.libraries.of_domain.get(domain.name, self.libraries.main)

    def template_of(self, binding: Binding) -> Optional[Template]:
        """The template in force for a binding (from its domain's library)."""
        library = self.library_of_switch(binding.dpid) or self.libraries.main
        return library.get(binding.template_id)

    def policy_of(self, server: int) -> IdentityPolicy:
        """The identity policy of the mobility domain the server is in."""
        domain = self.domain_of_server(server)
        if domain is not None and domain.identity is not None:
            return domain.identity
        return self.identity_default

    # -- lookups ---------------------------------------------------------------------
    def placement(self, binding: Binding) -> Recipe:
        """What a binding's flows compile from now (a :class:`Placement`)."""
        template = self.template_of(binding)
        if template is None:
            raise LookupError(f"binding {binding.binding_id} of VM {binding.mac}: template "
                              f"{binding.template_id} is not in its domain's library")
        placement = Placement(binding, template, binding.binding_id in self.table.moved,
                              self.topo.path(binding.dpid))
        # a Placement is a Recipe; flow_plan's protocol spells ``home`` as a settable
        # attribute and ``same_home`` over any Recipe, hence the cast
        return cast(Recipe, placement)

    def name(self, dpid: int) -> str:
        """A switch's name, or its datapath id in hex."""
        return self.topo.name(dpid)
