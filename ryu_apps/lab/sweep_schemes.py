"""The conformance sweep's identifier schemes: MACs drawn for the scheme in force.

In a *scheme* seed (about 30% of seeds, drawn apart so the rest of a seed is drawn
the same way) the controller runs with ``identifier_scheme`` ``prefix/12`` or
``interleave`` (docs/operator-guide.md, docs/identifiers.md) instead of the default
``prefix/16``: each template id that scheme cannot express (12 bits; under
``prefix/12`` bit 0x010, the MAC's I/G bit, clear) is redrawn and every VM's MAC
is the scheme's encoding of (its template id, a unique id). Such a seed also plugs
in one or two *strays*: VMs whose MAC decodes, under the scheme, to a template id
the library does not hold. docs/identifiers.md: the controller refuses, and logs,
such a VM; ``check`` asserts the refusal names the template id the scheme decodes
and that it gets nothing: no binding (REST 404), no flow on its server naming its
MAC other than a drop, and no echo reply from a VM it pings.
"""

from __future__ import annotations

import random
import subprocess
from dataclasses import dataclass
from typing import Dict, List, Tuple

from ryu_apps.core.identifiers import INTERLEAVE_IG_UNIQUE_BIT, scheme_from_spec

#: The schemes other than the default that a scheme seed draws from.
SCHEMES = ("prefix/12", "interleave")


def draw_scheme(seed: int) -> str:
    """The identifier scheme of ``seed``'s controller."""
    rng = random.Random(seed * 7907 + 29)
    return rng.choice(SCHEMES) if rng.random() < 0.3 else "prefix/16"


def id_bounds(scheme: str) -> Tuple[int, int]:
    """(one past the highest template id, the template bit that is the MAC's I/G bit)."""
    return {"prefix/16": (0x10000, 0x0100), "prefix/12": (0x1000, 0x010),
            "interleave": (0x1000, 0)}[scheme]


def encode(scheme: str, template_id: int, unique_id: int) -> str:
    """The MAC of (template id, unique id) under ``scheme`` (interleave: the unique id's
    bit that lands on the I/G bit cleared)."""
    if scheme == "interleave":
        unique_id &= ~(1 << INTERLEAVE_IG_UNIQUE_BIT)
    return scheme_from_spec(scheme).encode(template_id, unique_id).lower()


def scheme_ids(rng: random.Random, ids: List[int], scheme: str) -> List[int]:
    """``ids`` with each one ``scheme`` cannot express redrawn (a draw of its own, so the
    rest of the seed stays the same)."""
    limit, ig = id_bounds(scheme)
    kept: List[int] = []
    for template_id in ids:
        while (template_id >= limit or template_id & ig or 0x00F0 <= template_id <= 0x00FF
               or template_id in kept):
            template_id = rng.randrange(1, limit)
        kept.append(template_id)
    return kept


def stray_ids(rng: random.Random, scheme: str, ids: List[int], count: int) -> List[int]:
    """``count`` template ids the scheme can express that the library does not hold."""
    limit, ig = id_bounds(scheme)
    strays: List[int] = []
    while len(strays) < count:
        candidate = rng.randrange(1, limit)
        if not candidate & ig and candidate not in ids + strays:
            strays.append(candidate)
    return strays


@dataclass(frozen=True)
class StrayCheck:
    """What a stray VM got: its binding's REST status, its flows, whether its ping of a
    peer was answered."""

    name: str
    mac: str
    template_id: int
    status: int
    flows: int
    answered: bool
    refused: bool        # the controller logged it refused for its (decoded) template

    @property
    def ok(self) -> bool:
        return self.refused and self.status == 404 and self.flows == 0 and not self.answered

    def describe(self) -> str:
        verdict = "ok" if self.ok else "WRONG"
        return (f"stray {self.name} {self.mac} (template {self.template_id}, not in the "
                f"library): {'refused' if self.refused else 'no refusal logged'}, binding "
                f"status {self.status}, {self.flows} flows naming it, ping "
                f"{'answered' if self.answered else 'unanswered'}: {verdict}")


def check(strays, peers, hosts: Dict[str, object], controller, prefix: str) -> List[StrayCheck]:
    """Each stray (a ``VmPlan``) pings ``peers``' first VM; then its binding and flows."""
    results = []
    for stray in strays:
        host = hosts[stray.name]
        out = host.cmd("ping", "-c", "2", "-W", "1", peers[0].ip)   # type: ignore[attr-defined]
        answered = " 0% packet loss" in out or "bytes from" in out
        status, _ = controller.rest("GET", f"/dynprov/bindings/{stray.mac}")
        bridge = f"{prefix}s{stray.access}{stray.server}"
        flows = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge],
                               capture_output=True, text=True, check=False).stdout
        naming = [line for line in flows.splitlines()   # a drop flow gives it nothing
                  if stray.mac in line.lower() and "actions=drop" not in line]
        why = f"template {stray.template_id} (0x{stray.template_id:04X}) is not in the library"
        refused = any(stray.mac in line.lower() and why in line
                      for line in controller.log().splitlines())
        results.append(StrayCheck(stray.name, stray.mac, stray.template_id, status,
                                  len(naming), answered, refused))
    return results
