"""What the engine holds, read by the app, the REST API, the store and the tests (pure).

:class:`EngineViews` is the read side of
:class:`~ryu_apps.core.engine.ProvisioningEngine`: the state's tables and parts
(bindings, desired flows, fabric, quarantine, libraries, ...) and the queries
over them. Nothing here changes the state, except the three settings the app
and the tests set directly (the default identity policy, the main library).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple

from ryu_apps.core.binding import Binding, VmState
from ryu_apps.core.domains import Domain, DomainMap
from ryu_apps.core.engine_state import EngineState
from ryu_apps.core.fabric import Fabric, PortRef
from ryu_apps.core.flow_plan import DesiredFlows
from ryu_apps.core.identifiers import IdentifierScheme
from ryu_apps.core.identity import IdentityPolicy, MoveGuard
from ryu_apps.core.link_guard import LinkGuard
from ryu_apps.core.quarantine import Quarantine
from ryu_apps.core.template_model import Template, TemplateLibrary


class EngineViews:
    """The engine's state, read: its tables, parts, settings and queries."""

    state: EngineState

    # -- state ------------------------------------------------------------------------------
    @property
    def bindings(self) -> Dict[str, Binding]:
        """Where each VM is now, by MAC."""
        return self.state.table.bindings

    @property
    def incoming(self) -> Dict[str, Binding]:
        """Pre-provisioned migration destinations, by MAC."""
        return self.state.table.incoming

    @property
    def outgoing(self) -> Dict[str, Binding]:
        """Migration sources awaiting MigrationDone, by MAC."""
        return self.state.table.outgoing

    @property
    def history(self) -> Dict[str, VmState]:
        """The last state of every VM ever seen."""
        return self.state.table.history

    @property
    def desired(self) -> DesiredFlows:
        """The desired flows of every owner."""
        return self.state.desired

    @property
    def fabric(self) -> Fabric:
        """Switches and links."""
        return self.state.topo.fabric

    @property
    def links(self) -> LinkGuard:
        """Link damping and ageing."""
        return self.state.topo.links

    @property
    def moves(self) -> MoveGuard:
        """Move conflicts and flapping."""
        return self.state.moves

    @property
    def quarantine(self) -> Quarantine:
        """Refused MACs and forged probes."""
        return self.state.quarantine

    @property
    def attachments(self) -> Dict[tuple, str]:
        """(dpid, port) -> MAC, from OVSDB."""
        return self.state.ports.attachments

    @property
    def refused(self) -> Dict:
        """Refused MACs and why (the REST API lists them)."""
        return self.state.quarantine.refused

    @property
    def scheme(self) -> IdentifierScheme:
        """How a MAC selects a template."""
        return self.state.scheme

    @property
    def identity_default(self) -> IdentityPolicy:
        """Whom to believe about a port's VM where the domain does not say."""
        return self.state.identity_default

    @identity_default.setter
    def identity_default(self, policy: IdentityPolicy) -> None:
        self.state.identity_default = policy

    @property
    def domains(self) -> DomainMap:
        """The mobility domains."""
        return self.state.libraries.domains

    @property
    def domain_libraries(self) -> Dict[str, TemplateLibrary]:
        """Libraries of domains that have their own."""
        return self.state.libraries.of_domain

    @property
    def main_library(self) -> TemplateLibrary:
        """The main library (the default domain's)."""
        return self.state.libraries.main

    @main_library.setter
    def main_library(self, library: TemplateLibrary) -> None:
        self.state.libraries.main = library

    @property
    def library(self) -> TemplateLibrary:
        """The main library (the default domain's)."""
        return self.state.libraries.main

    @library.setter
    def library(self, library: TemplateLibrary) -> None:
        self.state.libraries.main = library

    # -- queries -----------------------------------------------------------------------------
    def library_of_switch(self, server_dpid: int) -> Optional[TemplateLibrary]:
        """The library of the mobility domain a server belongs to (None: no domain)."""
        return self.state.library_of_switch(server_dpid)

    def domain_of_server(self, server_dpid: int) -> Optional[Domain]:
        """The mobility domain of a server, through its access switch."""
        return self.state.domain_of_server(server_dpid)

    def template_of(self, binding: Binding) -> Optional[Template]:
        """The template in force for a binding (from its domain's library)."""
        return self.state.template_of(binding)

    def policy_of(self, server: int) -> IdentityPolicy:
        """The identity policy of the mobility domain the server is in."""
        return self.state.policy_of(server)

    def binding_by_id(self, binding_id: int) -> Binding | None:
        """The binding with this id, if any."""
        return self.state.table.index.by_id.get(binding_id)

    def hosts_vm(self, dpid: int, port: int) -> bool:
        """Whether a VM (bound or pre-provisioned) is behind this port, so no switch is."""
        return self.state.table.at_port(dpid, port) is not None

    def access_switch_of(self, server_dpid: int) -> PortRef | None:
        """The access-switch port a server hangs off (on the tree)."""
        return self.state.topo.access_switch_of(server_dpid)

    def access_port_of(self, binding: Binding) -> PortRef | None:
        """The access-switch port the binding's server hangs off (on the tree)."""
        return self.state.topo.access_switch_of(binding.dpid)

    def bindings_of_device(self, device: int) -> List[Binding]:
        """The VMs one network device (access switch) holds, in every state."""
        return self.state.table.of_device(device)

    def lease_ends(self, binding: Binding
                   ) -> Tuple[Optional[float], Tuple[Tuple[str, float], ...]]:
        """When the DHCP lease of the VM's bound IPv4 ends (None: no lease, or one that
        never ends), and the DHCPv6 lease of each bound IPv6 address that has one
        (sorted); wall-clock seconds, as ``now``."""
        ports = self.state.ports
        lease = ports.leases.get(binding.mac)
        end = lease[1] if lease is not None and lease[0] == binding.ip else None
        held6 = ports.leases6.get(binding.mac)
        ends6 = tuple(sorted((address, until) for address, until in held6.items()
                             if address in binding.ipv6)) if held6 else ()
        return end, ends6

    def moved_port_rules(self) -> Set[str]:
        """MACs whose template's port-side rules were moved to their vswitch port."""
        moved = self.state.table.moved
        return {b.mac for b in self.state.table if b.binding_id in moved}
