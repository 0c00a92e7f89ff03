"""``dynprov templates validate|list|show``: check and inspect a template library.

The library is read and validated by the library checker's worker process
(:mod:`ryu_apps.loaders.library_check`), as the controller does: a file that crashes
the YAML parser or never finishes is reported as an error of that file.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Callable, List, Sequence

from ryu_apps.core.conntrack import library_warnings
from ryu_apps.core.template_model import Bandwidth, SwitchSide, Template, TemplateLibrary
from ryu_apps.core.template_validation import TemplateValidationError
from ryu_apps.loaders.library_check import LibraryChecker

LIST_COLUMNS = ("ID", "HEX", "NAME", "VLAN", "IDLE", "ACL VS/AP", "BANDWIDTH VS",
                "BANDWIDTH AP", "DESCRIPTION")


def register(subparsers) -> None:
    """Add ``templates`` and its subcommands to the ``dynprov`` parser."""
    parser = subparsers.add_parser(
        "templates", help="validate and inspect a configuration template library")
    commands = parser.add_subparsers(dest="templates_command", required=True)
    _leaf(commands, "validate", _validate,
          "check a library; print every error, exit 1 if there is any")
    _leaf(commands, "list", _list, "one line per template")
    show = _leaf(commands, "show", _show, "everything about one template")
    show.add_argument("template", metavar="ID_OR_NAME",
                      help="template id (250 or 0x00FA) or name")


def _leaf(commands, name: str, func: Callable[[argparse.Namespace], int],
          help_text: str) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("path", metavar="PATH",
                        help="a directory of *.yaml/*.yml files, or one file")
    parser.set_defaults(func=func)
    return parser


# -- commands --------------------------------------------------------------------
def _validate(args: argparse.Namespace) -> int:
    library = _load_or_report(args.path)
    if library is None:
        return 1
    for warning in library_warnings(library):
        print(f"warning: {warning}")
    print(f"OK: {_count(len(library), 'template')} from "
          f"{_count(len(library.sources), 'file')} ({args.path})")
    return 0


def _list(args: argparse.Namespace) -> int:
    library = _load_or_report(args.path)
    if library is None:
        return 1
    rows = [LIST_COLUMNS] + [_list_row(t) for t in library]
    print("\n".join(_table(rows)))
    return 0


def _show(args: argparse.Namespace) -> int:
    library = _load_or_report(args.path)
    if library is None:
        return 1
    template = find_template(library, args.template)
    if template is None:
        print(f"error: no template {args.template!r} in {args.path}", file=sys.stderr)
        return 1
    print("\n".join(describe_template(template)))
    return 0


def _load_or_report(path: str) -> TemplateLibrary | None:
    """The library at ``path``, or None after printing its errors to stderr."""
    try:
        with LibraryChecker() as checker:
            return checker.load(path)
    except TemplateValidationError as failure:
        for error in failure.errors:
            print(error, file=sys.stderr)
        print(f"FAILED: {_count(len(failure.errors), 'error')} ({path})", file=sys.stderr)
        return None


# -- formatting --------------------------------------------------------------------
def find_template(library: TemplateLibrary, id_or_name: str) -> Template | None:
    """Look a template up by decimal id, hex id (``0x00FA``) or name."""
    text = id_or_name.strip()
    template = None
    if re.fullmatch(r"\d+", text):
        template = library.get(int(text))
    elif re.fullmatch(r"0[xX][0-9a-fA-F]+", text):
        template = library.get(int(text, 16))
    return template or library.by_name(text)


def describe_template(template: Template) -> List[str]:
    """A human-readable dump of one template, one line per item."""
    lines = [
        f"template {template.template_id} (0x{template.template_id:04X}) '{template.name}'",
        f"  description   {template.description}",
        f"  source        {template.source}",
        f"  vlan          {template.vlan}",
        f"  idle timeout  {template.idle_timeout} s",
        "  virtual switch (the VM's port; bandwidth limits what the VM sends):",
    ]
    lines += _describe_side(template.virtual_switch, with_bind_ip=True)
    lines.append("  access port (the server's port on its access switch; "
                 "bandwidth is an aggregate limit):")
    lines += _describe_side(template.access_port, with_bind_ip=False)
    return lines


def _describe_side(side: SwitchSide, with_bind_ip: bool) -> List[str]:
    lines = [f"    default action  {side.default_action.value}"]
    if with_bind_ip:
        lines.append(f"    bind ip         {'yes' if side.bind_ip else 'no'}")
        lines.append(f"    bind ipv6       {side.bind_ipv6 or 'no'}"
                     f"{' (router)' if side.router else ''}")
        lines.append(f"    stateful        {'yes' if side.stateful else 'no'}")
    lines.append(f"    bandwidth       {format_bandwidth(side.bandwidth, with_burst=True)}")
    if not side.acl:
        lines.append("    acl             (none)")
        return lines
    lines.append("    acl (first match wins, else the default action):")
    width = len(str(len(side.acl) - 1))
    lines += [f"      [{i:>{width}}] {rule.describe()}" for i, rule in enumerate(side.acl)]
    return lines


def format_bandwidth(bandwidth: Bandwidth | None, with_burst: bool = False) -> str:
    """``100 Mbit/s`` (optionally with its burst), or ``unlimited``."""
    if bandwidth is None:
        return "unlimited"
    rate = format_rate(bandwidth.rate_kbps)
    return f"{rate}, burst {bandwidth.burst_kbits} kbit" if with_burst else rate


def format_rate(kbps: int) -> str:
    """A rate in kbit/s in the largest unit that keeps it readable."""
    for unit, name in ((1_000_000, "Gbit/s"), (1000, "Mbit/s")):
        if kbps >= unit:
            return f"{kbps / unit:.3f}".rstrip("0").rstrip(".") + f" {name}"
    return f"{kbps} kbit/s"


def _list_row(template: Template) -> Sequence[str]:
    return (str(template.template_id), f"0x{template.template_id:04X}", template.name,
            str(template.vlan), f"{template.idle_timeout}s",
            f"{len(template.virtual_switch.acl)}/{len(template.access_port.acl)}",
            format_bandwidth(template.virtual_switch.bandwidth),
            format_bandwidth(template.access_port.bandwidth), template.description)


def _table(rows: Sequence[Sequence[str]]) -> List[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join([cell.ljust(w) for cell, w in zip(row, widths)] + [row[-1]])
            for row in rows]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
