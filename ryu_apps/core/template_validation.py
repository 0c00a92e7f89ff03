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
import re
from dataclasses import dataclass
from functools import partial
from typing import Dict, List, Mapping, Sequence, Tuple

from ryu_apps.core.acl_validation import (
    parse_stateful,
    ACTIONS,
    MAX_ACL_ENTRIES,
    MAX_ACL_RULES,
    parse_acl,
)
from ryu_apps.core.address_validation import AddressOwners, parse_allowed_addresses, \
    parse_bind_ip
from ryu_apps.core.ipv6_guard import BIND_IPV6_MODES
from ryu_apps.core.template_errors import (
    MAX_ERRORS,
    TemplateError,
    TemplateValidationError,
    capped,
)
from ryu_apps.core.template_model import Bandwidth, SwitchSide, Template, TemplateLibrary
from ryu_apps.core.validation_checks import (
    Scope,
    as_mapping,
    check_keys,
    choice,
    int_in_range,
    is_int,
    join_path,
    parse_bool,
    parse_field,
    show,
)

#: The errors and ACL limits defined elsewhere are re-exported: callers import them here.
__all__ = ["BUILTIN_IDLE_TIMEOUT", "MAX_ACL_ENTRIES", "MAX_ACL_RULES", "MAX_ERRORS",
           "MAX_TEMPLATES", "TemplateError", "TemplateValidationError", "ValidationMemo",
           "build_library", "capped"]

#: Idle timeout (seconds) when the library has no ``defaults.idle_timeout``.
BUILTIN_IDLE_TIMEOUT = 300
MAX_TEMPLATE_ID = 0xFFFF
MIN_VLAN, MAX_VLAN = 1, 4094
MIN_IDLE_TIMEOUT, MAX_IDLE_TIMEOUT = 1, 86400
MIN_RATE_KBPS, MAX_RATE_KBPS = 1, 100_000_000
MIN_BURST_KBITS, MAX_BURST_KBITS = 0, 100_000_000

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
HEX_ID_PATTERN = re.compile(r"0[xX][0-9a-fA-F]{1,4}")

# Limits: a hostile library is refused before it exhausts the validator or the switches
# (the ACL limits are in acl_validation, the error cap in template_errors).
#: Template entries in the whole library (there are 65,536 template ids).
MAX_TEMPLATES = 0x10000
#: Characters of a template's description (it is shown in logs, the CLI and REST).
MAX_DESCRIPTION = 1000

FILE_KEYS = ("templates", "defaults")
DEFAULTS_KEYS = ("idle_timeout",)
TEMPLATE_KEYS = ("id", "name", "description", "vlan", "idle_timeout",
                 "virtual_switch", "access_port")
TEMPLATE_REQUIRED = ("id", "name", "description", "vlan", "virtual_switch", "access_port")
SIDE_KEYS = ("default_action", "bind_ip", "bind_ipv6", "router", "stateful", "dhcp_server",
             "allowed_addresses", "acl", "bandwidth")
#: Keys only the virtual-switch side takes (they guard the VM's own port).
VSWITCH_ONLY_KEYS = ("bind_ip", "bind_ipv6", "router", "dhcp_server", "allowed_addresses")
BANDWIDTH_KEYS = ("rate_kbps", "burst_kbits")


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
    addresses: AddressOwners = dataclasses.field(default_factory=AddressOwners)


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
        _check_file(Scope(errors, source), document, state)
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



def _default_idle_timeout(documents: Sequence[Tuple[str, object]]) -> int:
    """The first ``defaults.idle_timeout`` of the library, unchecked (checked later)."""
    for _, document in documents:
        defaults = document.get("defaults") if isinstance(document, Mapping) else None
        if isinstance(defaults, Mapping) and "idle_timeout" in defaults:
            timeout = defaults["idle_timeout"]
            if is_int(timeout) and MIN_IDLE_TIMEOUT <= timeout <= MAX_IDLE_TIMEOUT:
                return timeout
            break
    return BUILTIN_IDLE_TIMEOUT


# -- files -------------------------------------------------------------------
def _check_file(scope: Scope, document: object, state: _LibraryState) -> None:
    if document is None:
        scope.error("", "file is empty (expected a mapping with a 'templates' list)")
        return
    if not isinstance(document, Mapping):
        scope.error("", "expected a mapping with a 'templates' list at the top level, "
                        f"got {show(document)}")
        return
    required = () if "defaults" in document else ("templates",)
    check_keys(scope, "", document, FILE_KEYS, required)
    if "defaults" in document:
        _check_defaults(scope, document["defaults"], state)
    if "templates" in document:
        _check_template_list(scope, document["templates"], state)


def _check_defaults(scope: Scope, value: object, state: _LibraryState) -> None:
    if state.defaults_source is not None:
        scope.error("defaults", "defaults may appear in only one file of the library, "
                                f"also defined in {state.defaults_source}")
        return
    state.defaults_source = scope.source
    defaults = as_mapping(scope, "defaults", value)
    if defaults is None:
        return
    check_keys(scope, "defaults", defaults, DEFAULTS_KEYS)
    parse_field(scope, "defaults", defaults, "idle_timeout", _idle_timeout)


def _check_template_list(scope: Scope, value: object, state: _LibraryState) -> None:
    if not isinstance(value, list):
        scope.error("templates", f"expected a list of templates, got {show(value)}")
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
        template = as_mapping(scope, path, entry, "a mapping (one template)")
        if template is not None:
            _check_template(scope, path, template, state)


# -- templates ---------------------------------------------------------------
def _check_template(file_scope: Scope, path: str, entry: Mapping,
                    state: _LibraryState) -> None:
    key = (id(entry), file_scope.source, path, state.default_idle_timeout)
    checked = state.memo.get(key) if state.memo is not None else None
    if checked is None or checked.entry is not entry:
        checked = _check_entry(file_scope.source, path, entry, state.default_idle_timeout)
    state.used[key] = checked
    scope = Scope(file_scope.errors, file_scope.source, checked.label,
                   "" if checked.label else path)
    mark = scope.mark()
    scope.errors.extend(checked.head_errors)
    _check_unique(scope, checked.template_id, checked.name, state)
    scope.errors.extend(checked.tail_errors)
    if checked.template is not None and checked.template.virtual_switch.allowed_addresses:
        state.addresses.claim(scope, scope.path("virtual_switch", "allowed_addresses"),
                              checked.label or path,
                              checked.template.virtual_switch.allowed_addresses)
    if scope.clean_since(mark) and checked.template is not None:
        state.templates.append(checked.template)


def _check_entry(source: str, path: str, entry: Mapping, default_idle_timeout: int) -> _Checked:
    """Every check of one template that does not depend on the rest of the library."""
    probe = Scope([], source)
    template_id = parse_field(probe, "", entry, "id", _template_id)
    name = parse_field(probe, "", entry, "name", _name)
    label = _template_label(template_id, name)
    head = Scope([], source, label, "" if label else path)
    check_keys(head, head.base, entry, TEMPLATE_KEYS, TEMPLATE_REQUIRED)
    template_id = parse_field(head, head.base, entry, "id", _template_id)
    name = parse_field(head, head.base, entry, "name", _name)
    tail = Scope([], source, label, head.base)
    description = parse_field(tail, tail.base, entry, "description", _description)
    vlan = parse_field(tail, tail.base, entry, "vlan", _vlan)
    idle_timeout = parse_field(tail, tail.base, entry, "idle_timeout", _idle_timeout)
    vswitch = parse_field(tail, tail.base, entry, "virtual_switch",
                     partial(_switch_side, allow_bind_ip=True))
    access = parse_field(tail, tail.base, entry, "access_port",
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


def _check_unique(scope: Scope, template_id: int | None, name: str | None,
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


def _template_id(scope: Scope, path: str, value: object) -> int | None:
    if is_int(value) and 0 <= value <= MAX_TEMPLATE_ID:
        return value
    if isinstance(value, str) and HEX_ID_PATTERN.fullmatch(value):
        return int(value, 16)
    scope.error(path, f"expected an integer 0-{MAX_TEMPLATE_ID} or a hex string "
                      f"like '0x00FA', got {show(value)}")
    return None


def _name(scope: Scope, path: str, value: object) -> str | None:
    if isinstance(value, str) and NAME_PATTERN.fullmatch(value):
        return value
    scope.error(path, "expected a name of 1-32 characters from a-z 0-9 _ - starting "
                      f"with a letter or digit, got {show(value)}")
    return None


def _description(scope: Scope, path: str, value: object) -> str | None:
    if isinstance(value, str) and 0 < len(value.strip()) <= MAX_DESCRIPTION:
        return value.strip()
    if isinstance(value, str) and value.strip():
        scope.error(path, f"expected at most {MAX_DESCRIPTION:,} characters, got "
                          f"{len(value.strip()):,}")
        return None
    scope.error(path, f"expected a non-empty string, got {show(value)}")
    return None


def _vlan(scope: Scope, path: str, value: object) -> int | None:
    return int_in_range(scope, path, value, MIN_VLAN, MAX_VLAN)


def _idle_timeout(scope: Scope, path: str, value: object) -> int | None:
    return int_in_range(scope, path, value, MIN_IDLE_TIMEOUT, MAX_IDLE_TIMEOUT, " (seconds)")


# -- switch sides --------------------------------------------------------------
def _switch_side(scope: Scope, path: str, value: object,
                 allow_bind_ip: bool) -> SwitchSide | None:
    side = as_mapping(scope, path, value)
    if side is None:
        return None
    mark = scope.mark()
    keys = SIDE_KEYS if allow_bind_ip else tuple(k for k in SIDE_KEYS
                                                 if k not in VSWITCH_ONLY_KEYS)
    check_keys(scope, path, side, keys, ("default_action",))
    default = parse_field(scope, path, side, "default_action", partial(choice, choices=ACTIONS))
    bind_ip = parse_field(scope, path, side, "bind_ip", parse_bind_ip) if allow_bind_ip else None
    bind_ipv6 = router = dhcp_server = allowed = None
    if allow_bind_ip:
        dhcp_server = parse_field(scope, path, side, "dhcp_server", parse_bool)
        allowed = parse_field(scope, path, side, "allowed_addresses",
                              partial(parse_allowed_addresses, side=side))
        bind_ipv6 = parse_field(scope, path, side, "bind_ipv6", _bind_ipv6)
        router = parse_field(scope, path, side, "router", parse_bool)
        if router and not side.get("bind_ipv6"):
            scope.error(join_path(path, "router"), "has no effect without bind_ipv6 "
                                                   "(router advertisements are only "
                                                   "guarded with it; did you mean to add "
                                                   "bind_ipv6: link_local?)")
    acl = parse_field(scope, path, side, "acl", parse_acl)
    bandwidth = parse_field(scope, path, side, "bandwidth", _bandwidth)
    stateful = parse_stateful(scope, path, side, vswitch=allow_bind_ip)
    if not scope.clean_since(mark) or default is None:   # None: reported as missing
        return None
    return SwitchSide(default, acl or (), bandwidth, bind_ip or None, bind_ipv6 or None,
                      bool(router), stateful=stateful, dhcp_server=bool(dhcp_server),
                      allowed_addresses=allowed or ())


def _bind_ipv6(scope: Scope, path: str, value: object) -> str | None:
    """An IPv6 guard mode (:data:`BIND_IPV6_MODES`), or false for none."""
    if value is False:
        return None
    if isinstance(value, str) and value in BIND_IPV6_MODES:
        return value
    message = (f"expected {' or '.join(repr(m) for m in BIND_IPV6_MODES)} or false, "
               f"got {show(value)}")
    if isinstance(value, str) and len(value) <= 64:
        close = difflib.get_close_matches(value.replace("-", "_"), BIND_IPV6_MODES, n=1,
                                          cutoff=0.6)
        if close:
            message += f"; did you mean {close[0]!r}?"
    scope.error(path, message)
    return None


def _bandwidth(scope: Scope, path: str, value: object) -> Bandwidth | None:
    bandwidth = as_mapping(scope, path, value)
    if bandwidth is None:
        return None
    mark = scope.mark()
    check_keys(scope, path, bandwidth, BANDWIDTH_KEYS, ("rate_kbps",))
    rate = parse_field(scope, path, bandwidth, "rate_kbps",
                  partial(int_in_range, low=MIN_RATE_KBPS, high=MAX_RATE_KBPS))
    burst = parse_field(scope, path, bandwidth, "burst_kbits",
                   partial(int_in_range, low=MIN_BURST_KBITS, high=MAX_BURST_KBITS))
    if not scope.clean_since(mark) or rate is None:   # None: reported as missing
        return None
    return Bandwidth(rate, max(1, rate // 10) if burst is None else burst)
