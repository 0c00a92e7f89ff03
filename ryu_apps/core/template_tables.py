"""A template's ACLs, compiled once per server bridge and shared by its VMs there (pure).

Each VM's classifier flow writes its template tag into the pipeline metadata
(:func:`~ryu_apps.core.pipeline.from_vm_metadata`), and each delivery toward
a VM writes the VM's port and tag (:func:`~ryu_apps.core.pipeline.to_vm_metadata`);
the flows here match that tag, so a server holds each template's rules once
whatever the number of its VMs:

- ANTI_SPOOF: DHCP and ARP probes from 0.0.0.0 pass; IPv4 and ARP of a VM
  whose address is not bound yet (the learn bit) go to the controller; other
  IPv4 and ARP are dropped (the VM's own flows allow its bound address); the
  rest passes (templates that do not bind the IP: everything passes); a
  template with ``bind_ipv6`` adds the IPv6 guard (:mod:`~ryu_apps.core.ipv6_guard`),
  one that is no ``dhcp_server`` the rogue-server guard (:mod:`~ryu_apps.core.address_guard`).
- FROM_VM_ACL / TO_VM_ACL: the template's virtual-switch ACL; a stateful one
  with its connection-tracking flows (:mod:`~ryu_apps.core.conntrack`).
- FROM_VM_PORT_ACL / TO_VM_PORT_ACL: tag with the VLAN on the way out and
  pass on the way in, or, where the template merge moved the port-side rules
  to the server (``merged``), the template's port-side ACL.

The flows exist while a VM of the template that needs them is on the server
(:class:`SharedDesired` counts them), and **linger** after its last VM there left
(at most :data:`MAX_IDLE_PER_SERVER` templates per server, each for
:data:`LINGER_SECONDS` after the first tick that saw it idle): a VM that moves
away and back, or leaves and another of its template arrives, then costs only its
own flows, not the template's 60-odd. A lingering flow matches a template tag that
no VM's classifier on that server writes, so it passes nothing. Their cookie kind
is TEMPLATE.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Set, Tuple

from ryu_apps.core import address_guard, ipv6_guard
from ryu_apps.core.conntrack import stateful_acl_flows
from ryu_apps.core.cookies import CookieKind, Owner, template_owner
from ryu_apps.core.flow_compiler import Entry, Placement, acl_flows, needs_template
from ryu_apps.core.flow_plan import DesiredFlows, Plan, Recipe, diff_flows
from ryu_apps.core.flowspec import (
    OFPP_CONTROLLER,
    Output,
    PushVlan,
    SetField,
    flow,
    make_match,
    tagged,
)
from ryu_apps.core.pipeline import (
    PACKET_IN_METER,
    Priority,
    Table,
    template_metadata_match,
)
from ryu_apps.core.switch_flows import PACKET_IN_BYTES
from ryu_apps.core.template_model import ETH_ARP, ETH_IPV4, Direction, Template

#: (server bridge, template id)
TemplateKey = Tuple[int, int]
#: A VM's use of shared flows: its key, whether its port-side rules moved, its template.
Use = Tuple[TemplateKey, bool, Template]

#: How long a template's shared flows stay on a server after its last VM there left.
LINGER_SECONDS = 60.0
#: At most this many unused templates' shared flows linger on one server (oldest go first).
MAX_IDLE_PER_SERVER = 4


def template_flows(dpid: int, template: Template, merged: bool) -> Set[Entry]:
    """A template's shared flows on one server bridge.

    ``merged``: its port-side rules sit on the server (the template merge;
    a port-side limit is then counted per VM, by the VM's own meter:
    :func:`~ryu_apps.core.flow_compiler.vm_limit`).
    """
    return vswitch_flows(dpid, template) | merge_flows(dpid, template, merged)


def vswitch_flows(dpid: int, template: Template) -> Set[Entry]:
    """The template's virtual-switch ACL (FROM_VM_ACL, TO_VM_ACL): the same whether
    merged or not, so a merge flip leaves them alone."""
    cookie = template_owner(template.template_id).cookie
    return _vswitch_acl(dpid, template, cookie)


def merge_flows(dpid: int, template: Template, merged: bool) -> Set[Entry]:
    """The shared flows that depend on the template merge (ANTI_SPOOF and the port-side
    tables; no table in common with :func:`vswitch_flows`)."""
    cookie = template_owner(template.template_id).cookie
    tag = {"metadata": template_metadata_match(template.template_id)}
    side = template.access_port
    entries = _anti_spoof(dpid, template, cookie)
    push = (PushVlan(), SetField("vlan_vid", tagged(template.vlan)))
    if not merged:
        match = make_match(**tag)
        entries.add(flow(dpid, Table.FROM_VM_PORT_ACL, Priority.BINDING, match, cookie,
                         actions=push, goto=Table.FORWARD))
        entries.add(flow(dpid, Table.TO_VM_PORT_ACL, Priority.BINDING, match, cookie,
                         goto=Table.OUTPUT))
        return entries
    entries |= acl_flows(dpid, Table.FROM_VM_PORT_ACL, tag, cookie, side.acl,
                         Direction.FROM_VM, side.default_action,
                         allow=dict(actions=push, goto=Table.FORWARD))
    entries |= acl_flows(dpid, Table.TO_VM_PORT_ACL, tag, cookie, side.acl,
                         Direction.TO_VM, side.default_action,
                         allow=dict(goto=Table.OUTPUT))
    return entries


def _vswitch_acl(dpid: int, template: Template, cookie: int) -> Set[Entry]:
    """The virtual-switch ACL in FROM_VM_ACL and TO_VM_ACL (stateful: core/conntrack.py)."""
    vswitch = template.virtual_switch
    tag = template_metadata_match(template.template_id)
    entries: Set[Entry] = set()
    for table, direction, next_table in (
            (Table.FROM_VM_ACL, Direction.FROM_VM, Table.FROM_VM_PORT_ACL),
            (Table.TO_VM_ACL, Direction.TO_VM, Table.TO_VM_PORT_ACL)):
        if direction is Direction.FROM_VM:   # the IPv6 guard's NS/NA, normalised
            entries |= ipv6_guard.normalise_flows(dpid, template.template_id, vswitch, cookie)
        if vswitch.stateful:
            entries |= stateful_acl_flows(dpid, table, tag, cookie, template.template_id,
                                          vswitch, direction, next_table)
        else:
            entries |= acl_flows(dpid, table, {"metadata": tag}, cookie, vswitch.acl,
                                 direction, vswitch.default_action,
                                 allow=dict(goto=next_table))
    return entries


def _anti_spoof(dpid: int, template: Template, cookie: int) -> Set[Entry]:
    """The anti-spoofing every VM of the template shares (see the module's docstring)."""
    template_id = template.template_id
    table, goto = Table.ANTI_SPOOF, Table.FROM_VM_ACL
    tag = template_metadata_match(template_id)
    entries: Set[Entry] = set()
    entries.add(flow(dpid, table, Priority.BINDING, make_match(metadata=tag), cookie,
                     goto=goto))
    entries |= address_guard.prefix_flows(dpid, template_id, template.virtual_switch, cookie)
    entries |= ipv6_guard.template_flows(dpid, template_id, template.virtual_switch, cookie)
    entries |= address_guard.template_flows(dpid, template_id, template.virtual_switch, cookie)
    if not template.virtual_switch.bind_ip:
        return entries
    if template.virtual_switch.binds_from_dhcp:
        return entries | address_guard.dhcp_template_flows(dpid, template_id, cookie)
    # DHCP and ARP probes carry 0.0.0.0 before the VM has an address.
    entries.add(flow(dpid, table, Priority.SPOOF_ALLOW,
                     make_match(metadata=tag, eth_type=ETH_IPV4, ipv4_src="0.0.0.0",
                                ip_proto=17, udp_src=68, udp_dst=67), cookie, goto=goto))
    entries.add(flow(dpid, table, Priority.SPOOF_ALLOW,
                     make_match(metadata=tag, eth_type=ETH_ARP, arp_spa="0.0.0.0"), cookie,
                     goto=goto))
    learning = template_metadata_match(template_id, learn_ip=True)
    bound = template_metadata_match(template_id, learn_ip=False)
    to_controller = (Output(OFPP_CONTROLLER, PACKET_IN_BYTES),)
    for ethertype in (ETH_IPV4, ETH_ARP):
        entries.add(flow(dpid, table, Priority.SPOOF_LEARN,
                         make_match(metadata=learning, eth_type=ethertype), cookie,
                         meter=PACKET_IN_METER, actions=to_controller))
        entries.add(flow(dpid, table, Priority.SPOOF_LEARN,
                         make_match(metadata=bound, eth_type=ethertype), cookie))
    return entries


class TemplateUse:
    """Which VMs use each template's shared flows on each server, and what those flows
    are compiled from (kept instead of the flows, like a VM's placement)."""

    def __init__(self) -> None:
        #: key -> [its VMs, those of them whose port-side rules moved to the server]
        self.count: Dict[TemplateKey, List[int]] = {}
        #: key -> the template object its VMs were last placed with
        self.template: Dict[TemplateKey, Template] = {}
        #: server -> template id -> (template, merged) its shared flows compile from
        self.compiled: Dict[int, Dict[int, Tuple[Template, bool]]] = {}
        #: keys whose flows may have to change
        self.dirty: Set[TemplateKey] = set()
        #: keys whose flows linger with no VM (oldest first) -> the first tick that saw
        #: them idle (None until a tick does)
        self.idle: Dict[TemplateKey, Optional[float]] = {}

    def change(self, old: Optional[Use], new: Optional[Use]) -> None:
        """A VM's use of shared flows went from ``old`` to ``new`` (None: no use)."""
        if old is not None and (new is None or old[:2] != new[:2]):
            self._count(old[0], old[1], -1)
        if new is None:
            return
        if old is None or old[:2] != new[:2]:
            self._count(new[0], new[1], +1)
        if self.template.get(new[0]) is not new[2]:
            self.template[new[0]] = new[2]
            self.dirty.add(new[0])

    def _count(self, key: TemplateKey, moved: bool, delta: int) -> None:
        counts = self.count.setdefault(key, [0, 0])
        counts[0] += delta
        counts[1] += delta if moved else 0
        if not counts[0]:
            del self.count[key]
        self.dirty.add(key)

    def refresh(self, plan: Plan) -> None:
        """Recompile the dirty keys whose inputs changed; their changes into ``plan``.
        A key that lost its last VM lingers (:meth:`expire` removes it later)."""
        for key in sorted(self.dirty):
            counts = self.count.get(key)
            if not counts:
                self.template.pop(key, None)
                if key[1] in self.compiled.get(key[0], {}):
                    self._linger(key, plan)
                continue
            self.idle.pop(key, None)
            self._compile(key, (self.template[key], counts[1] > 0), plan)
        self.dirty.clear()

    def _compile(self, key: TemplateKey, wanted: Optional[Tuple[Template, bool]],
                 plan: Plan) -> None:
        """Bring one key's flows from what they were compiled from to ``wanted``."""
        dpid, template_id = key
        on_switch = self.compiled.setdefault(dpid, {})
        done = on_switch.get(template_id)
        if done is not None and wanted is not None and done[0] is wanted[0]:
            if done[1] != wanted[1]:      # a merge flip: the vswitch ACL stays as it is
                diff_flows(merge_flows(dpid, *done), merge_flows(dpid, *wanted), plan)
        elif not _same_recipe(done, wanted):
            diff_flows(template_flows(dpid, *done) if done else (),
                       template_flows(dpid, *wanted) if wanted else (), plan)
        if wanted is None:
            on_switch.pop(template_id, None)
        else:
            on_switch[template_id] = wanted
        if not on_switch:
            del self.compiled[dpid]

    def _linger(self, key: TemplateKey, plan: Plan) -> None:
        """Keep an unused key's flows; the server's oldest lingering key beyond the
        bound goes now."""
        if key in self.idle:
            return
        self.idle[key] = None
        idle_here = [held for held in self.idle if held[0] == key[0]]
        for oldest in idle_here[:max(0, len(idle_here) - MAX_IDLE_PER_SERVER)]:
            self._drop(oldest, plan)

    def _drop(self, key: TemplateKey, plan: Plan) -> None:
        del self.idle[key]
        self._compile(key, None, plan)

    def expire(self, now: float, plan: Plan) -> None:
        """Time passed: lingering keys idle for :data:`LINGER_SECONDS` go."""
        for key, since in list(self.idle.items()):
            if since is None:
                self.idle[key] = now
            elif now - since >= LINGER_SECONDS:
                self._drop(key, plan)

    def drop_idle(self, template_ids: Set[int], plan: Plan) -> None:
        """Lingering keys of these templates go now (the library changed them)."""
        for key in [key for key in self.idle if key[1] in template_ids]:
            self._drop(key, plan)

    def adopt_idle(self, other: "TemplateUse") -> None:
        """Take over ``other``'s lingering keys (a rebuild keeps what is on the switches)."""
        for key, since in other.idle.items():
            dpid, template_id = key
            self.idle[key] = since
            self.compiled.setdefault(dpid, {})[template_id] = \
                other.compiled[dpid][template_id]

    def idle_flows_on(self, dpid: int) -> Set[Entry]:
        """The lingering shared flows on one server (no VM uses them)."""
        found: Set[Entry] = set()
        for key in self.idle:
            if key[0] == dpid:
                found |= template_flows(dpid, *self.compiled[dpid][key[1]])
        return found

    def flows_on(self, dpid: int, template_id: Optional[int] = None) -> Set[Entry]:
        """The shared flows on one server (of one template, if given)."""
        found: Set[Entry] = set()
        for held, recipe in self.compiled.get(dpid, {}).items():
            if template_id is None or held == template_id:
                found |= template_flows(dpid, *recipe)
        return found


class SharedDesired(DesiredFlows):
    """Desired flows that also keep each template's shared flows on each server in step
    with the VMs placed there: added with a template's first VM on a server, removed
    a while after its last (they linger: :class:`TemplateUse`), rewritten once per
    server when the template changes (:meth:`refresh_templates`, once per event,
    after the placements). Like a VM's,
    they are compiled again when needed, not stored."""

    def __init__(self) -> None:
        super().__init__()
        self.templates = TemplateUse()

    def place(self, owner: Owner, recipe: Recipe, plan: Plan) -> None:
        old = self._recipes.get(owner.cookie)
        super().place(owner, recipe, plan)
        if owner.kind is CookieKind.BINDING:
            self.templates.change(_use(old), _use(recipe))

    def replace(self, owner: Owner, flows: Iterable[Entry], plan: Plan,
                dpid: int | None = None) -> None:
        old = self._recipes.get(owner.cookie)
        super().replace(owner, flows, plan, dpid)
        if owner.kind is CookieKind.BINDING:   # a VM's flows are set: no recipe any more
            self.templates.change(_use(old), None)

    def refresh_templates(self, plan: Plan) -> None:
        """Bring the templates' shared flows in step with the placed VMs."""
        self.templates.refresh(plan)

    def expire_templates(self, now: float, plan: Plan) -> None:
        """Remove the shared flows that lingered long enough unused."""
        self.templates.expire(now, plan)

    def owners(self) -> List[Owner]:
        shared = {template_owner(template_id) for held in self.templates.compiled.values()
                  for template_id in held}
        return sorted(set(super().owners()) | shared)

    def flows_of(self, owner: Owner) -> Set[Entry]:
        if owner.kind is not CookieKind.TEMPLATE:
            return super().flows_of(owner)
        found: Set[Entry] = set()
        for dpid in self.templates.compiled:
            found |= self.templates.flows_on(dpid, owner.template_id)
        return found

    def on_switch(self, dpid: int) -> Set[Entry]:
        return super().on_switch(dpid) | self.templates.flows_on(dpid)


def _same_recipe(done: Optional[Tuple[Template, bool]],
                 wanted: Optional[Tuple[Template, bool]]) -> bool:
    if done is None or wanted is None:
        return done is wanted
    return done[0] is wanted[0] and done[1] == wanted[1]


def _use(recipe: Optional[Recipe]) -> Optional[Use]:
    """What a VM's placement uses: its server and template, whether merged, the template."""
    if not isinstance(recipe, Placement) or not needs_template(recipe.binding):
        return None
    binding = recipe.binding
    return ((binding.dpid, binding.template_id), recipe.port_rules_on_vswitch, recipe.template)
