"""Annotate a bridge's flow table with what dynprov's cookies say."""

from __future__ import annotations

import re
import subprocess

from ryu_apps.core.cookies import decode_cookie

_COOKIE = re.compile(r"cookie=(0x[0-9a-fA-F]+)")


def annotate_line(line: str) -> str:
    """One ``ovs-ofctl dump-flows`` line with its owner appended, if ours."""
    found = _COOKIE.search(line)
    if not found:
        return line
    owner = decode_cookie(int(found.group(1), 16))
    label = owner.describe() if owner else "not dynprov's"
    return f"{line.rstrip()}  # {label}"


def _strip_counters(line: str) -> str:
    return re.sub(r" (duration|n_packets|n_bytes|idle_age|hard_age)=[^,]+,", "", line)


def annotated_flows(bridge: str, counters: bool = False) -> str:
    """The bridge's OpenFlow 1.3 flow table, each flow labelled by owner."""
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge],
                         capture_output=True, text=True, check=True).stdout
    lines = [ln for ln in out.splitlines() if "cookie=" in ln]
    if not counters:
        lines = [_strip_counters(ln) for ln in lines]
    return "\n".join(annotate_line(ln) for ln in lines)
