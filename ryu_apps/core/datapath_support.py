"""What a server's datapath lacks, and what dynprov refuses because of it (pure).

A stateful template (``virtual_switch.stateful: true``, core/conntrack.py) needs
connection tracking: its ACL tables send IP packets through ``ct`` and match
``ct_state``. A datapath without it refuses those flows (Open vSwitch answers
``NXBAC_CT_DATAPATH_SUPPORT``), so a VM of such a template would get half a
pipeline: its anti-spoofing and forwarding, but ACL tables that send nothing on.
The app probes each switch as it connects (ryu_apps/app/datapath_features.py);
here are the decisions on what it found:

- a VM of a stateful template is not provisioned on a bridge without ``ct``
  (:func:`stateful_refusal`: the MAC is quarantined at its port with that reason);
- a library that makes a template stateful while a bridge without ``ct`` hosts
  its VMs is not put in force (:func:`reload_conflicts`).

A switch never probed, or whose probe is still unanswered, counts as having ``ct``
(the flows it refuses are then reported and repaired like any other refusal).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from ryu_apps.core.template_model import Template, TemplateLibrary

if TYPE_CHECKING:
    from ryu_apps.core.engine_state import EngineState

#: The template field that asks for connection tracking.
STATEFUL_FIELD = "virtual_switch.stateful"


class DatapathSupport:
    """Switches whose datapath lacks connection tracking, and what it answered."""

    def __init__(self) -> None:
        #: dpid -> what the switch answered to the probe (e.g. its OpenFlow error)
        self.without_conntrack: Dict[int, str] = {}

    def found(self, dpid: int, conntrack: bool, detail: str = "") -> bool:
        """Record a probe's outcome; whether it changed what is known of the switch."""
        before = self.without_conntrack.get(dpid)
        if conntrack:
            self.without_conntrack.pop(dpid, None)
        else:
            self.without_conntrack[dpid] = detail or "its datapath refused a ct action"
        return before != self.without_conntrack.get(dpid)

    def missing(self, dpid: int) -> Optional[str]:
        """Why this switch has no connection tracking; None: it has (or was not probed)."""
        return self.without_conntrack.get(dpid)


def stateful_refusal(template: Template, bridge: str, missing: Optional[str]
                     ) -> Optional[str]:
    """Why a VM of ``template`` is not provisioned on ``bridge``; None: it may be."""
    if missing is None or not template.virtual_switch.stateful:
        return None
    return (f"{_where(template)}: {STATEFUL_FIELD}: true needs connection tracking, and "
            f"bridge {bridge} has none ({missing}): not provisioned there rather than "
            "with ACL tables that pass nothing")


def reload_conflicts(st: "EngineState", library: TemplateLibrary,
                     domain: Optional[str]) -> List[str]:
    """One located error per (template, bridge) that ``library`` (of mobility domain
    ``domain``; None: the main one) would make stateful on a bridge without ``ct``
    that hosts its VMs; empty when it may be put in force."""
    missing = st.datapaths.without_conntrack
    if not missing:
        return []
    found: Dict[Tuple[int, int], List[str]] = {}
    hosted = list(st.table.bindings.values()) + list(st.table.incoming.values())
    for binding in hosted:
        if binding.dpid not in missing or not _served_by(st, binding.dpid, domain):
            continue
        template = library.get(binding.template_id)
        if template is not None and template.virtual_switch.stateful:
            found.setdefault((binding.template_id, binding.dpid), []).append(binding.mac)
    return [_conflict(library.templates[template_id], st.name(dpid), missing[dpid], macs)
            for (template_id, dpid), macs in sorted(found.items())]


def _served_by(st: "EngineState", server: int, domain: Optional[str]) -> bool:
    """Whether the library of ``domain`` (None: the main one) is the server's."""
    served = st.domain_of_server(server)
    if served is None:
        return domain is None
    if domain is None:
        return served.templates is None or served.name not in st.libraries.of_domain
    return served.name == domain


def _conflict(template: Template, bridge: str, missing: str, macs: List[str]) -> str:
    vms = ", ".join(sorted(macs)[:3]) + (f" and {len(macs) - 3} more" if len(macs) > 3
                                         else "")
    return (f"{_where(template)}: {STATEFUL_FIELD}: expected false while bridge {bridge} "
            f"hosts its VMs ({vms}) and has no connection tracking ({missing}); got true")


def _where(template: Template) -> str:
    return f"{template.source}: template {template.template_id} '{template.name}'"

