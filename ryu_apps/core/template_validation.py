"""Strict validation of parsed template documents into a TemplateLibrary (pure).

:func:`build_library` takes ``(source name, parsed YAML object)`` pairs, checks
everything (types, ranges, unknown and missing keys, contradictory or
shadowed ACL rules, duplicate ids and names across files), and either returns
a complete :class:`~ryu_apps.core.template_model.TemplateLibrary` or raises
:class:`TemplateValidationError` listing *every* problem found. There is no
partial library. The format itself is documented in ``docs/templates.md``.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import re
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple, TypeGuard, TypeVar

from ryu_apps.core.acl_compiler import entry_count
from ryu_apps.core.template_model import (
    ETH_ARP,
    ETH_IPV4,
    ETH_IPV6,
    IP_ICMP,
    IP_ICMPV6,
    IP_TCP,
    IP_UDP,
    MAX_PORT,
    MIN_PORT,
    AclRule,
    Action,
    Bandwidth,
    Direction,
    PortRange,
    Prefix,
    SwitchSide,
    Template,
    TemplateLibrary,
)

#: Idle timeout (seconds) when the library has no ``defaults.idle_timeout``.
BUILTIN_IDLE_TIMEOUT = 300
MAX_TEMPLATE_ID = 0xFFFF
MIN_VLAN, MAX_VLAN = 1, 4094
MIN_IDLE_TIMEOUT, MAX_IDLE_TIMEOUT = 1, 86400
MIN_RATE_KBPS, MAX_RATE_KBPS = 1, 100_000_000
MIN_BURST_KBITS, MAX_BURST_KBITS = 0, 100_000_000

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
HEX_ID_PATTERN = re.compile(r"0[xX][0-9a-fA-F]{1,4}")
PORT_RANGE_PATTERN = re.compile(r"(\d{1,5})-(\d{1,5})")

# Limits: a hostile library is refused before it exhausts the validator or the switches.
#: Template entries in the whole library (there are 65,536 template ids).
MAX_TEMPLATES = 0x10000
#: ACL rules on one side of a template (both directions together).
MAX_ACL_RULES = 20_000
#: OpenFlow entries one side's ACL compiles to (every VM of the template gets them).
MAX_ACL_ENTRIES = 50_000
#: Errors reported; validation stops after this many.
MAX_ERRORS = 1000
#: Characters of a template's description (it is shown in logs, the CLI and REST).
MAX_DESCRIPTION = 1000

FILE_KEYS = ("templates", "defaults")
DEFAULTS_KEYS = ("idle_timeout",)
TEMPLATE_KEYS = ("id", "name", "description", "vlan", "idle_timeout",
                 "virtual_switch", "access_port")
TEMPLATE_REQUIRED = ("id", "name", "description", "vlan", "virtual_switch", "access_port")
SIDE_KEYS = ("default_action", "bind_ip", "acl", "bandwidth")
BANDWIDTH_KEYS = ("rate_kbps", "burst_kbits")
RULE_KEYS = ("action", "direction", "ethertype", "protocol", "src", "dst",
             "src_port", "dst_port")

ETHERTYPES = {"ipv4": ETH_IPV4, "ipv6": ETH_IPV6, "arp": ETH_ARP}
PROTOCOLS = {"tcp": IP_TCP, "udp": IP_UDP, "icmp": IP_ICMP, "icmpv6": IP_ICMPV6}
PORT_PROTOCOLS = (IP_TCP, IP_UDP)
FAMILY_ETHERTYPE = {4: ETH_IPV4, 6: ETH_IPV6}
ICMP_FAMILY = {IP_ICMP: 4, IP_ICMPV6: 6}

T = TypeVar("T")


@dataclass(frozen=True)
class TemplateError:
    """One problem: where (file, template, field path) and what is wrong."""

    source: str
    template: str | None
    field: str
    message: str

    def __str__(self) -> str:
        return ": ".join(p for p in (self.source, self.template, self.field, self.message) if p)


class TemplateValidationError(ValueError):
    """A library failed validation; ``errors`` lists every problem found."""

    def __init__(self, errors: Sequence[TemplateError]) -> None:
        self.errors: List[TemplateError] = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


@dataclass
class _Scope:
    """Collects errors for one template (or one file, when ``template`` is None)."""

    errors: List[TemplateError]
    source: str
    template: str | None = None
    base: str = ""

    def error(self, path: str, message: str) -> None:
        self.errors.append(TemplateError(self.source, self.template, path, message))

    def path(self, *parts: str | int) -> str:
        return _join(self.base, *parts)

    def mark(self) -> int:
        return len(self.errors)

    def clean_since(self, mark: int) -> bool:
        return len(self.errors) == mark


@dataclass
class _LibraryState:
    """What the files seen so far defined, for cross-file checks."""

    defaults_source: str | None = None
    default_idle_timeout: int = BUILTIN_IDLE_TIMEOUT
    ids: Dict[int, str] = dataclasses.field(default_factory=dict)
    names: Dict[str, str] = dataclasses.field(default_factory=dict)
    entries: int = 0
    templates: List[Template] = dataclasses.field(default_factory=list)
    #: per-template results of the previous build, and those of this one
    memo: Dict[tuple, "_Checked"] | None = None
    used: Dict[tuple, "_Checked"] = dataclasses.field(default_factory=dict)
    stopped: bool = False   # more than MAX_ERRORS errors: the rest is not checked


@dataclass(frozen=True)
class _Checked:
    """One template entry checked on its own (all but the library-wide uniqueness)."""

    entry: object            # the parsed mapping (kept: its id is part of the memo key)
    label: str | None
    template_id: int | None
    name: str | None
    head_errors: Tuple[TemplateError, ...]   # keys, id, name
    tail_errors: Tuple[TemplateError, ...]   # everything after uniqueness
    template: Template | None


#: What :func:`build_library` remembers between builds (the caller keeps it, opaque).
ValidationMemo = Dict[tuple, _Checked]


def build_library(documents: Sequence[Tuple[str, object]], *, origin: str = "library",
                  require_templates: bool = True,
                  memo: ValidationMemo | None = None) -> TemplateLibrary:
    """Validate parsed documents ``(source, object)`` and build the library.

    Raises :class:`TemplateValidationError` with every problem found. ``origin``
    names the library in the "library is empty" error, which
    ``require_templates=False`` turns off (for callers that already failed to
    read some files).

    ``memo`` (a dict the caller keeps between builds) lets a template entry that
    is the very same parsed object as in the previous build (its file was not
    parsed again because its text did not change) skip its own checks; the
    library-wide ones (unique ids and names, one defaults) always run.
    """
    errors: List[TemplateError] = []
    state = _LibraryState(default_idle_timeout=_default_idle_timeout(documents), memo=memo)
    for source, document in documents:
        _check_file(_Scope(errors, source), document, state)
        if state.stopped:
            break
    if memo is not None and not state.stopped:
        memo.clear()
        memo.update(state.used)
    if require_templates and state.entries == 0 and not state.stopped:
        errors.append(TemplateError(origin, None, "",
                                    "no templates defined: the library is empty"))
    if errors:
        raise TemplateValidationError(capped(errors, origin))
    return TemplateLibrary({t.template_id: t for t in state.templates},
                           state.default_idle_timeout,
                           tuple(source for source, _ in documents))


def capped(errors: Sequence[TemplateError], origin: str) -> List[TemplateError]:
    """At most MAX_ERRORS errors, and a last one saying validation stopped there."""
    if len(errors) <= MAX_ERRORS:
        return list(errors)
    return [*errors[:MAX_ERRORS],
            TemplateError(origin, None, "", f"validation stopped after {MAX_ERRORS:,} errors; "
                                            "fix these and validate again")]


def _default_idle_timeout(documents: Sequence[Tuple[str, object]]) -> int:
    """The first ``defaults.idle_timeout`` of the library, unchecked (checked later)."""
    for _, document in documents:
        defaults = document.get("defaults") if isinstance(document, Mapping) else None
        if isinstance(defaults, Mapping) and "idle_timeout" in defaults:
            timeout = defaults["idle_timeout"]
            if _is_int(timeout) and MIN_IDLE_TIMEOUT <= timeout <= MAX_IDLE_TIMEOUT:
                return timeout
            break
    return BUILTIN_IDLE_TIMEOUT


# -- files -------------------------------------------------------------------
def _check_file(scope: _Scope, document: object, state: _LibraryState) -> None:
    if document is None:
        scope.error("", "file is empty (expected a mapping with a 'templates' list)")
        return
    if not isinstance(document, Mapping):
        scope.error("", "expected a mapping with a 'templates' list at the top level, "
                        f"got {_show(document)}")
        return
    required = () if "defaults" in document else ("templates",)
    _check_keys(scope, "", document, FILE_KEYS, required)
    if "defaults" in document:
        _check_defaults(scope, document["defaults"], state)
    if "templates" in document:
        _check_template_list(scope, document["templates"], state)


def _check_defaults(scope: _Scope, value: object, state: _LibraryState) -> None:
    if state.defaults_source is not None:
        scope.error("defaults", "defaults may appear in only one file of the library, "
                                f"also defined in {state.defaults_source}")
        return
    state.defaults_source = scope.source
    defaults = _as_mapping(scope, "defaults", value)
    if defaults is None:
        return
    _check_keys(scope, "defaults", defaults, DEFAULTS_KEYS)
    _field(scope, "defaults", defaults, "idle_timeout", _idle_timeout)


def _check_template_list(scope: _Scope, value: object, state: _LibraryState) -> None:
    if not isinstance(value, list):
        scope.error("templates", f"expected a list of templates, got {_show(value)}")
        return
    if state.entries + len(value) > MAX_TEMPLATES:
        state.entries += len(value)
        scope.error("templates", f"{len(value):,} templates here bring the library to "
                                 f"{state.entries:,}, more than the limit of "
                                 f"{MAX_TEMPLATES:,} (one per template id)")
        return
    for index, entry in enumerate(value):
        if len(scope.errors) > MAX_ERRORS:
            state.stopped = True
            return
        state.entries += 1
        path = f"templates[{index}]"
        template = _as_mapping(scope, path, entry, "a mapping (one template)")
        if template is not None:
            _check_template(scope, path, template, state)


# -- templates ---------------------------------------------------------------
def _check_template(file_scope: _Scope, path: str, entry: Mapping,
                    state: _LibraryState) -> None:
    key = (id(entry), file_scope.source, path, state.default_idle_timeout)
    checked = state.memo.get(key) if state.memo is not None else None
    if checked is None or checked.entry is not entry:
        checked = _check_entry(file_scope.source, path, entry, state.default_idle_timeout)
    state.used[key] = checked
    scope = _Scope(file_scope.errors, file_scope.source, checked.label,
                   "" if checked.label else path)
    mark = scope.mark()
    scope.errors.extend(checked.head_errors)
    _check_unique(scope, checked.template_id, checked.name, state)
    scope.errors.extend(checked.tail_errors)
    if scope.clean_since(mark) and checked.template is not None:
        state.templates.append(checked.template)


def _check_entry(source: str, path: str, entry: Mapping, default_idle_timeout: int) -> _Checked:
    """Every check of one template that does not depend on the rest of the library."""
    probe = _Scope([], source)
    template_id = _field(probe, "", entry, "id", _template_id)
    name = _field(probe, "", entry, "name", _name)
    label = _template_label(template_id, name)
    head = _Scope([], source, label, "" if label else path)
    _check_keys(head, head.base, entry, TEMPLATE_KEYS, TEMPLATE_REQUIRED)
    template_id = _field(head, head.base, entry, "id", _template_id)
    name = _field(head, head.base, entry, "name", _name)
    tail = _Scope([], source, label, head.base)
    description = _field(tail, tail.base, entry, "description", _description)
    vlan = _field(tail, tail.base, entry, "vlan", _vlan)
    idle_timeout = _field(tail, tail.base, entry, "idle_timeout", _idle_timeout)
    vswitch = _field(tail, tail.base, entry, "virtual_switch",
                     partial(_switch_side, allow_bind_ip=True))
    access = _field(tail, tail.base, entry, "access_port",
                    partial(_switch_side, allow_bind_ip=False))
    template = None
    if not head.errors and not tail.errors and template_id is not None and name is not None \
            and description is not None and vlan is not None and vswitch is not None \
            and access is not None:   # no errors: every required key was there and parsed
        template = Template(template_id, name, description, vlan,
                            default_idle_timeout if idle_timeout is None else idle_timeout,
                            vswitch, access, source)
    return _Checked(entry, label, template_id, name, tuple(head.errors), tuple(tail.errors),
                    template)


def _template_label(template_id: int | None, name: str | None) -> str | None:
    if template_id is not None and name is not None:
        return f"template {template_id} '{name}'"
    if template_id is not None:
        return f"template {template_id}"
    if name is not None:
        return f"template '{name}'"
    return None


def _check_unique(scope: _Scope, template_id: int | None, name: str | None,
                  state: _LibraryState) -> None:
    if template_id is not None:
        if template_id in state.ids:
            scope.error(scope.path("id"), f"duplicate template id {template_id}, "
                                          f"also defined in {state.ids[template_id]}")
        else:
            state.ids[template_id] = scope.source
    if name is not None:
        if name in state.names:
            scope.error(scope.path("name"), f"duplicate template name '{name}', "
                                            f"also defined in {state.names[name]}")
        else:
            state.names[name] = scope.source


def _template_id(scope: _Scope, path: str, value: object) -> int | None:
    if _is_int(value) and 0 <= value <= MAX_TEMPLATE_ID:
        return value
    if isinstance(value, str) and HEX_ID_PATTERN.fullmatch(value):
        return int(value, 16)
    scope.error(path, f"expected an integer 0-{MAX_TEMPLATE_ID} or a hex string "
                      f"like '0x00FA', got {_show(value)}")
    return None


def _name(scope: _Scope, path: str, value: object) -> str | None:
    if isinstance(value, str) and NAME_PATTERN.fullmatch(value):
        return value
    scope.error(path, "expected a name of 1-32 characters from a-z 0-9 _ - starting "
                      f"with a letter or digit, got {_show(value)}")
    return None


def _description(scope: _Scope, path: str, value: object) -> str | None:
    if isinstance(value, str) and 0 < len(value.strip()) <= MAX_DESCRIPTION:
        return value.strip()
    if isinstance(value, str) and value.strip():
        scope.error(path, f"expected at most {MAX_DESCRIPTION:,} characters, got "
                          f"{len(value.strip()):,}")
        return None
    scope.error(path, f"expected a non-empty string, got {_show(value)}")
    return None


def _vlan(scope: _Scope, path: str, value: object) -> int | None:
    return _int_in_range(scope, path, value, MIN_VLAN, MAX_VLAN)


def _idle_timeout(scope: _Scope, path: str, value: object) -> int | None:
    return _int_in_range(scope, path, value, MIN_IDLE_TIMEOUT, MAX_IDLE_TIMEOUT, " (seconds)")


# -- switch sides --------------------------------------------------------------
def _switch_side(scope: _Scope, path: str, value: object,
                 allow_bind_ip: bool) -> SwitchSide | None:
    side = _as_mapping(scope, path, value)
    if side is None:
        return None
    mark = scope.mark()
    keys = SIDE_KEYS if allow_bind_ip else tuple(k for k in SIDE_KEYS if k != "bind_ip")
    _check_keys(scope, path, side, keys, ("default_action",))
    default = _field(scope, path, side, "default_action", partial(_choice, choices=_ACTIONS))
    bind_ip = _field(scope, path, side, "bind_ip", _bool) if allow_bind_ip else None
    acl = _field(scope, path, side, "acl", _acl)
    bandwidth = _field(scope, path, side, "bandwidth", _bandwidth)
    if not scope.clean_since(mark) or default is None:   # None: reported as missing
        return None
    return SwitchSide(default, acl or (), bandwidth, bool(bind_ip))


def _bandwidth(scope: _Scope, path: str, value: object) -> Bandwidth | None:
    bandwidth = _as_mapping(scope, path, value)
    if bandwidth is None:
        return None
    mark = scope.mark()
    _check_keys(scope, path, bandwidth, BANDWIDTH_KEYS, ("rate_kbps",))
    rate = _field(scope, path, bandwidth, "rate_kbps",
                  partial(_int_in_range, low=MIN_RATE_KBPS, high=MAX_RATE_KBPS))
    burst = _field(scope, path, bandwidth, "burst_kbits",
                   partial(_int_in_range, low=MIN_BURST_KBITS, high=MAX_BURST_KBITS))
    if not scope.clean_since(mark) or rate is None:   # None: reported as missing
        return None
    return Bandwidth(rate, max(1, rate // 10) if burst is None else burst)


def _acl(scope: _Scope, path: str, value: object) -> Tuple[AclRule, ...] | None:
    if not isinstance(value, list):
        scope.error(path, f"expected a list of rules, got {_show(value)}")
        return None
    if len(value) > MAX_ACL_RULES:
        scope.error(path, f"{len(value):,} rules, more than the limit of {MAX_ACL_RULES:,} "
                          "per side")
        return None
    mark = scope.mark()
    parsed: Dict[int, AclRule] = {}
    reachable = _CoverIndex()
    for index, entry in enumerate(value):
        if len(scope.errors) > MAX_ERRORS:
            break
        rule = _rule(scope, f"{path}[{index}]", entry)
        if rule is not None:
            _check_reachable(scope, f"{path}[{index}]", index, rule, parsed, reachable)
            parsed[index] = rule
    if not scope.clean_since(mark):
        return None
    entries = sum(entry_count(rule) for rule in parsed.values())
    if entries > MAX_ACL_ENTRIES:
        scope.error(path, f"compiles to {entries:,} OpenFlow entries, more than the limit of "
                          f"{MAX_ACL_ENTRIES:,} per side (a port range is split into "
                          "value/mask entries, and tcp or udp without an ethertype counts "
                          "for IPv4 and IPv6)")
        return None
    return tuple(parsed.values())


def _check_reachable(scope: _Scope, path: str, index: int, rule: AclRule,
                     earlier_rules: Mapping[int, AclRule], reachable: "_CoverIndex") -> None:
    """Report a rule that repeats, or never matches because an earlier rule wins.

    The first earlier rule that covers ``rule`` is named ("duplicate" when the
    two are equal). It is found in ``reachable``, which holds only the earlier
    rules that were not themselves covered: covering is transitive, so the
    first rule covering this one is never a covered one.
    """
    first = reachable.first_cover(rule)
    if first is None:
        reachable.add(rule, index)
    elif earlier_rules[first] == rule:
        scope.error(path, f"duplicate of acl[{first}]")
    else:
        scope.error(path, f"shadowed by acl[{first}], which matches all of its traffic "
                          "first (first match wins), so it never matches")


class _CoverIndex:
    """The rules of one ACL seen so far, to find the first one that covers a rule.

    A rule covers another when each of its fields does (``AclRule.covers``):
    (direction, protocol, ethertypes), src, dst, src ports, dst ports. For
    each field the index answers "which rules cover this value" as a bit set
    (a Python int, bit *i* for ``acl[i]``) from a dict or a small tree; the
    rules covering all five are the intersection, the first is its lowest
    bit. A rule is compared with no other rule one by one.
    """

    def __init__(self) -> None:
        self.groups: Dict[tuple, int] = {}
        self.src, self.dst = _PrefixSets(), _PrefixSets()
        self.src_ports, self.dst_ports = _PortSets(), _PortSets()

    def add(self, rule: AclRule, index: int) -> None:
        bit = 1 << index
        group = (rule.direction, rule.protocol, rule.ethertypes())
        self.groups[group] = self.groups.get(group, 0) | bit
        self.src.add(rule.src, bit)
        self.dst.add(rule.dst, bit)
        self.src_ports.add(rule.src_port, bit)
        self.dst_ports.add(rule.dst_port, bit)

    def first_cover(self, rule: AclRule) -> int | None:
        """The lowest index of a rule added so far that matches all of ``rule``'s traffic."""
        ethertypes = rule.ethertypes()
        found = 0
        for (direction, protocol, group_ethertypes), bits in self.groups.items():
            if direction is rule.direction and \
                    (protocol is None or protocol == rule.protocol) and \
                    _ethertypes_cover(group_ethertypes, ethertypes):
                found |= bits
        if found:   # each lookup only while some rule still covers every field so far
            found &= self.src.covering(rule.src)
        if found:
            found &= self.dst.covering(rule.dst)
        if found:
            found &= self.src_ports.covering(rule.src_port)
        if found:
            found &= self.dst_ports.covering(rule.dst_port)
        if not found:
            return None
        return (found & -found).bit_length() - 1


def _ethertypes_cover(outer: Tuple[int, ...] | None, inner: Tuple[int, ...] | None) -> bool:
    return outer is None or (inner is not None and set(inner) <= set(outer))


_ANY = "any"


class _PrefixSets:
    """Rules by prefix: any address (none, or a /0), or (family, length, network bits)."""

    __slots__ = ("bits", "lengths")

    def __init__(self) -> None:
        self.bits: Dict[object, int] = {}
        self.lengths: Dict[int, set] = {4: set(), 6: set()}

    def add(self, prefix: Prefix | None, bit: int) -> None:
        if prefix is None or prefix.prefixlen == 0:
            key: object = _ANY
        else:
            key = (prefix.version, prefix.prefixlen,
                   int(prefix.network_address) >> (prefix.max_prefixlen - prefix.prefixlen))
            self.lengths[prefix.version].add(prefix.prefixlen)
        self.bits[key] = self.bits.get(key, 0) | bit

    def covering(self, prefix: Prefix | None) -> int:
        """Rules whose prefix holds every address of ``prefix`` (None: any address)."""
        found = self.bits.get(_ANY, 0)
        if prefix is None or prefix.prefixlen == 0:
            return found
        address = int(prefix.network_address)
        for length in self.lengths[prefix.version]:
            if length <= prefix.prefixlen:
                key = (prefix.version, length, address >> (prefix.max_prefixlen - length))
                found |= self.bits.get(key, 0)
        return found


_PORT_SLOTS = MAX_PORT + 1


class _PortSets:
    """Rules by port range: any port (None), or a range low-high.

    Two sparse Fenwick trees of bit sets answer "ranges with low <= L" and
    "ranges with high >= H" in about 16 steps each; a range holds L-H when
    both hold.
    """

    __slots__ = ("any", "by_low", "by_high")

    def __init__(self) -> None:
        self.any = 0
        self.by_low: Dict[int, int] = {}
        self.by_high: Dict[int, int] = {}

    def add(self, ports: PortRange | None, bit: int) -> None:
        if ports is None:
            self.any |= bit
            return
        _fenwick_add(self.by_low, ports.low, bit)
        _fenwick_add(self.by_high, _PORT_SLOTS - ports.high, bit)

    def covering(self, ports: PortRange | None) -> int:
        """Rules whose range holds every port of ``ports`` (None: any port)."""
        if ports is None or not self.by_low:
            return self.any
        return self.any | (_fenwick_union(self.by_low, ports.low)
                           & _fenwick_union(self.by_high, _PORT_SLOTS - ports.high))


def _fenwick_add(tree: Dict[int, int], position: int, bit: int) -> None:
    while position <= _PORT_SLOTS:
        tree[position] = tree.get(position, 0) | bit
        position += position & -position


def _fenwick_union(tree: Dict[int, int], position: int) -> int:
    """The union of the bit sets added at positions 1..``position``."""
    found = 0
    while position > 0:
        found |= tree.get(position, 0)
        position -= position & -position
    return found


# -- ACL rules -----------------------------------------------------------------
_ACTIONS = {a.value: a for a in Action}
_DIRECTIONS = {d.value: d for d in Direction}


def _rule(scope: _Scope, path: str, value: object) -> AclRule | None:
    fields = _as_mapping(scope, path, value, "a mapping (one ACL rule)")
    if fields is None:
        return None
    mark = scope.mark()
    _check_keys(scope, path, fields, RULE_KEYS, ("action", "direction"))
    fields_mark = scope.mark()

    def parse_key(key: str, parse: Callable[[_Scope, str, object], T]) -> T | None:
        return _field(scope, path, fields, key, parse)

    action = parse_key("action", partial(_choice, choices=_ACTIONS))
    direction = parse_key("direction", partial(_choice, choices=_DIRECTIONS))
    ethertype = parse_key("ethertype", partial(_choice, choices=ETHERTYPES))
    protocol = parse_key("protocol", partial(_choice, choices=PROTOCOLS))
    src, dst = parse_key("src", _prefix), parse_key("dst", _prefix)
    src_port, dst_port = parse_key("src_port", _port_range), parse_key("dst_port", _port_range)
    if not scope.clean_since(fields_mark) or action is None or direction is None:
        return None   # None: reported as missing
    rule = AclRule(action, direction, ethertype, protocol, src, dst, src_port, dst_port)
    _check_consistency(scope, path, rule)
    if not scope.clean_since(mark):
        return None
    return dataclasses.replace(rule, ethertype=_inferred_ethertype(rule))


def _check_consistency(scope: _Scope, path: str, rule: AclRule) -> None:
    """Contradictions between the fields of one rule (the rule is as written)."""
    if rule.ethertype == ETH_ARP:
        for key in ("protocol", "src", "dst", "src_port", "dst_port"):
            if getattr(rule, key) is not None:
                scope.error(_join(path, key), "not allowed with ethertype arp "
                                              "(ARP has no IP protocol, addresses or ports)")
        return
    _check_families(scope, path, rule)
    for key in ("src_port", "dst_port"):
        if getattr(rule, key) is not None and rule.protocol not in PORT_PROTOCOLS:
            got = ("no protocol" if rule.protocol is None
                   else f"protocol {_protocol_name(rule.protocol)}")
            scope.error(_join(path, key), f"ports need protocol tcp or udp, got {got}")


def _check_families(scope: _Scope, path: str, rule: AclRule) -> None:
    """IP family agreement between ethertype, src, dst and icmp/icmpv6."""
    if rule.src is not None and rule.dst is not None and rule.src.version != rule.dst.version:
        scope.error(_join(path, "dst"), f"{_describe_prefix(rule.dst)} but src is "
                                        f"{_describe_prefix(rule.src)}; src and dst must "
                                        "be the same IP family")
        return
    if rule.ethertype is not None:
        for key in ("src", "dst"):
            prefix = getattr(rule, key)
            if prefix is not None and FAMILY_ETHERTYPE[prefix.version] != rule.ethertype:
                scope.error(_join(path, key), f"{_describe_prefix(prefix)} contradicts "
                                              f"ethertype {_ethertype_name(rule.ethertype)}")
    protocol = rule.protocol
    if protocol is None or protocol not in ICMP_FAMILY:
        return
    icmp_family = ICMP_FAMILY[protocol]
    if rule.ethertype is not None and FAMILY_ETHERTYPE[icmp_family] != rule.ethertype:
        scope.error(_join(path, "protocol"), f"{_protocol_name(protocol)} contradicts "
                                             f"ethertype {_ethertype_name(rule.ethertype)}")
        return
    prefix = rule.src if rule.src is not None else rule.dst
    if prefix is not None and prefix.version != icmp_family:
        key = "src" if rule.src is not None else "dst"
        scope.error(_join(path, "protocol"), f"{_protocol_name(protocol)} is "
                                             f"IPv{icmp_family} only, but {key} is "
                                             f"{_describe_prefix(prefix)}")


def _inferred_ethertype(rule: AclRule) -> int | None:
    """Explicit ethertype, else the prefixes' family, else icmp's, else None (any)."""
    if rule.ethertype is not None:
        return rule.ethertype
    prefix = rule.src if rule.src is not None else rule.dst
    if prefix is not None:
        return FAMILY_ETHERTYPE[prefix.version]
    if rule.protocol in ICMP_FAMILY:
        return FAMILY_ETHERTYPE[ICMP_FAMILY[rule.protocol]]
    return None


def _prefix(scope: _Scope, path: str, value: object) -> Prefix | None:
    expected = "expected an IPv4 or IPv6 prefix like '10.0.0.0/8' or '2001:db8::/32'"
    if not isinstance(value, str):
        scope.error(path, f"{expected}, got {_show(value)}")
        return None
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        pass
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        scope.error(path, f"{expected}, got {_show(value)}")
        return None
    scope.error(path, f"{expected}, got {_show(value)}: host bits are set "
                      f"(did you mean '{network}'?)")
    return None


def _port_range(scope: _Scope, path: str, value: object) -> PortRange | None:
    if _is_int(value) and MIN_PORT <= value <= MAX_PORT:
        return PortRange(value, value)
    match = PORT_RANGE_PATTERN.fullmatch(value) if isinstance(value, str) else None
    if match:
        low, high = int(match.group(1)), int(match.group(2))
        if MIN_PORT <= low <= MAX_PORT and MIN_PORT <= high <= MAX_PORT:
            if low <= high:
                return PortRange(low, high)
            scope.error(path, f"port range {value!r} is backwards: low {low} "
                              f"is greater than high {high}")
            return None
    scope.error(path, f"expected {MIN_PORT}-{MAX_PORT} or 'LOW-HIGH', got {_show(value)}")
    return None


# -- generic checks ------------------------------------------------------------
def _check_keys(scope: _Scope, path: str, mapping: Mapping, allowed: Sequence[str],
                required: Sequence[str] = ()) -> None:
    for key in mapping:
        if key not in allowed:
            scope.error(path, _unknown_key_message(key, allowed))
    for key in required:
        if key not in mapping:
            scope.error(_join(path, key), "missing required key")


def _unknown_key_message(key: object, allowed: Sequence[str]) -> str:
    shown = (_show(key) if isinstance(key, int) and not isinstance(key, bool)
             else _shorten(repr(key)))
    message = f"unknown key {shown} (expected one of: {', '.join(allowed)})"
    if isinstance(key, str) and len(key) <= 64:
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        if close:
            message += f"; did you mean {close[0]!r}?"
    return message


def _field(scope: _Scope, path: str, mapping: Mapping, key: str,
           parse: Callable[[_Scope, str, object], T]) -> T | None:
    """Parse ``mapping[key]`` if present (missing keys are reported by _check_keys)."""
    if key not in mapping:
        return None
    return parse(scope, _join(path, key), mapping[key])


def _as_mapping(scope: _Scope, path: str, value: object,
                expected: str = "a mapping") -> Mapping[Any, object] | None:
    """``value`` if it is a mapping, else None with the error reported."""
    if isinstance(value, Mapping):
        return value
    scope.error(path, f"expected {expected}, got {_show(value)}")
    return None


def _is_int(value: object) -> TypeGuard[int]:
    """An int that is not a bool (YAML's true/false are not numbers here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _int_in_range(scope: _Scope, path: str, value: object, low: int, high: int,
                  unit: str = "") -> int | None:
    if _is_int(value) and low <= value <= high:
        return value
    scope.error(path, f"expected an integer {low}-{high}{unit}, got {_show(value)}")
    return None


def _bool(scope: _Scope, path: str, value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    scope.error(path, f"expected true or false, got {_show(value)}")
    return None


def _choice(scope: _Scope, path: str, value: object, choices: Mapping[str, T]) -> T | None:
    if isinstance(value, str) and value in choices:
        return choices[value]
    options = ", ".join(repr(c) for c in choices)
    scope.error(path, f"expected one of {options}, got {_show(value)}")
    return None


def _show(value: object) -> str:
    """A value as the user wrote it in YAML, for error messages."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int) and value.bit_length() > 64:
        return f"a {value.bit_length():,}-bit integer"
    if isinstance(value, str) and len(value) > 60:
        value = value[:60]
    return _shorten(repr(value))


def _shorten(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _join(base: str, *parts: str | int) -> str:
    path = base
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part:
            path = f"{path}.{part}" if path else part
    return path


def _describe_prefix(prefix: Prefix) -> str:
    return f"IPv{prefix.version} prefix {prefix}"


def _ethertype_name(ethertype: int) -> str:
    return next(name for name, value in ETHERTYPES.items() if value == ethertype)


def _protocol_name(protocol: int) -> str:
    return next(name for name, value in PROTOCOLS.items() if value == protocol)
