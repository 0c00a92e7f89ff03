"""Which template rule produced an ACL flow (pure).

An ACL flow already says everything needed: its cookie names the template
(or, on an access switch, the port group whose VLAN selects it), its table
the side and direction, its priority the rule (rules count down from
``ACL_TOP_PRIORITY`` in the order of their direction, the default sits at
``ACL_DEFAULT_PRIORITY``: core/acl_compiler.py). So provenance costs nothing
when flows are compiled: it is looked up when a flow is shown or traced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from ryu_apps.core.acl_compiler import ACL_DEFAULT_PRIORITY, ACL_TOP_PRIORITY
from ryu_apps.core.cookies import CookieKind, Owner
from ryu_apps.core.pipeline import Table
from ryu_apps.core.template_model import Direction, Template, TemplateLibrary

#: The side and direction of each ACL table.
ACL_TABLES = {
    Table.FROM_VM_ACL: ("virtual_switch", Direction.FROM_VM),
    Table.TO_VM_ACL: ("virtual_switch", Direction.TO_VM),
    Table.FROM_VM_PORT_ACL: ("access_port", Direction.FROM_VM),
    Table.TO_VM_PORT_ACL: ("access_port", Direction.TO_VM),
}


@dataclass(frozen=True)
class RuleOrigin:
    """A template rule (``index`` None: the side's default action)."""

    template_id: int
    template: str
    side: str
    direction: str
    index: Optional[int]
    rule: str
    source: str
    line: Optional[int]

    @property
    def where(self) -> str:
        """``file:line`` (the file alone when the line is not known)."""
        return f"{self.source}:{self.line}" if self.line is not None else self.source

    def label(self) -> str:
        """``'web' access_port acl[2] (from_vm) templates/web.yaml:17``."""
        rule = f"acl[{self.index}]" if self.index is not None else "default"
        return (f"'{self.template}' {self.side} {rule} ({self.direction}) {self.where}: "
                f"{self.rule}")

    def as_dict(self) -> dict:
        """JSON view."""
        return {"template_id": self.template_id, "template": self.template,
                "side": self.side, "direction": self.direction, "index": self.index,
                "rule": self.rule, "file": self.source, "line": self.line}


def rule_origin(library: TemplateLibrary, template: Template, table_id: int,
                priority: int) -> Optional[RuleOrigin]:
    """The rule of ``template`` an ACL flow at (table, priority) comes from, or None
    when the flow is not an ACL rule's (a pass-through, another table)."""
    found = _side_of(table_id)
    if found is None:
        return None
    side_name, direction = found
    side = getattr(template, side_name)
    if priority == ACL_DEFAULT_PRIORITY:
        return RuleOrigin(template.template_id, template.name, side_name, direction.value,
                          None, f"default {side.default_action.value}", template.source, None)
    position = ACL_TOP_PRIORITY - priority
    if not 0 <= position < ACL_TOP_PRIORITY - ACL_DEFAULT_PRIORITY:
        return None
    indexes = [i for i, rule in enumerate(side.acl) if rule.direction is direction]
    if position >= len(indexes):
        return None
    index = indexes[position]
    line = library.rule_lines.get((template.template_id, side_name, index))
    return RuleOrigin(template.template_id, template.name, side_name, direction.value,
                      index, side.acl[index].describe(), template.source, line)


def flow_origin(library: TemplateLibrary, owner: Owner | None, table_id: int,
                priority: int, behind: Iterable[Template] = ()) -> Optional[RuleOrigin]:
    """The rule behind a flow given its cookie's owner; for an access port's flows (kind
    PORT_GROUP: no template id) ``behind`` are the templates of the VMs behind the port
    in its VLAN (the port holds their port side when they share one)."""
    if owner is None or _side_of(table_id) is None:
        return None
    if owner.kind is CookieKind.TEMPLATE:
        template = library.get(owner.template_id)
        return rule_origin(library, template, table_id, priority) if template else None
    if owner.kind is CookieKind.PORT_GROUP:
        template = port_side_template(behind)
        if template is not None:
            return rule_origin(library, template, table_id, priority)
    return None


def port_side_template(behind: Iterable[Template]) -> Optional[Template]:
    """The template whose port side an access port holds for these templates' VMs, or
    None (none, or they differ: then the rules are on each VM's port)."""
    sides = {t.access_port: t for t in sorted(behind, key=lambda t: t.template_id)}
    return next(iter(sides.values())) if len(sides) == 1 else None


def _side_of(table_id: int) -> Optional[Tuple[str, Direction]]:
    try:
        return ACL_TABLES.get(Table(table_id))
    except ValueError:
        return None


#: An access port's VLAN: (access switch dpid, port, vlan).
PortGroup = Tuple[int, int, int]


def origin_rows(library: TemplateLibrary,
                port_groups: Mapping[PortGroup, Template] | None = None) -> List[Dict]:
    """Every ACL flow's (table, priority) and its rule, per template, and per access port
    VLAN (``port_groups``: the template whose port side it holds): what a tool that reads
    a switch's flows needs to label them (``GET /dynprov/rule-origins``)."""
    rows = [{"table": table, "priority": priority, **origin.as_dict()}
            for template in library for table, priority, origin in _rules_of(library, template)]
    for (dpid, port, vlan), template in sorted((port_groups or {}).items()):
        rows.extend({"table": table, "priority": priority, "dpid": f"{dpid:016x}",
                     "port": port, "vlan": vlan, **origin.as_dict()}
                    for table, priority, origin in _rules_of(library, template)
                    if origin.side == "access_port")
    return rows


def _rules_of(library: TemplateLibrary,
              template: Template) -> Iterator[Tuple[int, int, RuleOrigin]]:
    for table, (side_name, direction) in ACL_TABLES.items():
        side = getattr(template, side_name)
        count = sum(1 for rule in side.acl if rule.direction is direction)
        for priority in [ACL_TOP_PRIORITY - i for i in range(count)] + [ACL_DEFAULT_PRIORITY]:
            origin = rule_origin(library, template, table, priority)
            if origin is not None:
                yield int(table), priority, origin


def origin_index(rows: Iterable[Dict]) -> Dict[tuple, RuleOrigin]:
    """Rows (as :func:`origin_rows` gives, or as JSON) by ``("template", id, table,
    priority)`` and ``("port", dpid text, port, vlan, table, priority)``."""
    index: Dict[tuple, RuleOrigin] = {}
    for row in rows:
        origin = RuleOrigin(row["template_id"], row["template"], row["side"],
                            row["direction"], row["index"], row["rule"], row["file"],
                            row["line"])
        if row.get("dpid") is not None:
            index[("port", row["dpid"], row["port"], row["vlan"], row["table"],
                   row["priority"])] = origin
        else:
            index[("template", row["template_id"], row["table"], row["priority"])] = origin
    return index
