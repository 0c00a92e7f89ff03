"""What the app reads of a packet-in, and logs about the VMs the engine provisioned or refused."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from ryu_apps.core.binding import VmState
from ryu_apps.core.frames import FrameInfo, parse_frame

#: The highest number of a real switch port (OpenFlow 1.3 OFPP_MAX).
OFPP_MAX = 0xFFFFFF00


def frame_in(msg) -> Optional[Tuple[FrameInfo, int]]:
    """The frame of a packet-in and the switch port it came in by; None when it has
    no frame or no valid ``in_port`` (a switch should never send that)."""
    match = getattr(msg, "match", None)
    frame = parse_frame(getattr(msg, "data", None) or b"")
    in_port = match.get("in_port") if match is not None and hasattr(match, "get") else None
    if frame is None or not isinstance(in_port, int) or not 0 < in_port < OFPP_MAX:
        return None
    return frame, in_port


class VmLog:
    """What the log says about the VMs the engine provisioned or refused.

    Each VM provisioned for real is one DEBUG line (MAC, switch, port, template,
    VLAN, binding id, how it was detected); at INFO, :meth:`summary` (on the
    app's 1 s tick) says how many VMs were provisioned since the last summary,
    per template, and names the first few. Each VM also shows in the metrics,
    ``GET /dynprov/bindings`` and the DEBUG line. A first refusal is a WARNING.
    """

    #: VMs a summary line names (the rest are counted).
    LISTED = 3

    def __init__(self, logger) -> None:
        self.logger = logger
        self._count = 0
        self._per_template: Dict[str, int] = {}
        self._listed: List[str] = []

    def verdict(self, verdict, dpid: int, port: int) -> None:
        """Log a first refusal; note (and DEBUG-log) a VM provisioned for real."""
        if verdict.refusal and verdict.first_refusal:
            refusal = verdict.refusal
            template = "none" if refusal.template_id is None else str(refusal.template_id)
            self.logger.warning(
                "quarantined VM MAC %s on switch %016x port %d: decoded template %s: %s",
                refusal.mac, dpid, port, template, refusal.reason)
        binding = verdict.provisioned
        if binding and binding.state is not VmState.PRE_PROVISIONED:
            self.logger.debug(
                "provisioned VM %s on switch %016x port %d: template %d '%s', vlan %d, "
                "binding %d (%s)", binding.mac, binding.dpid, binding.port,
                binding.template_id, binding.template_name, binding.vlan,
                binding.binding_id, binding.detected_by.value)
            self._count += 1
            name = binding.template_name
            self._per_template[name] = self._per_template.get(name, 0) + 1
            if len(self._listed) < self.LISTED:
                self._listed.append(f"{binding.mac} on {binding.dpid:016x} port "
                                    f"{binding.port}")

    def summary(self) -> None:
        """One INFO line for the VMs provisioned since the last one (none: no line)."""
        if not self._count:
            return
        per_template = ", ".join(f"{name} {n}" for name, n in
                                 sorted(self._per_template.items()))
        more = self._count - len(self._listed)
        listed = "; ".join(self._listed) + (f"; {more} more" if more else "")
        self.logger.info("dynprov: %d VM%s provisioned (%s): %s", self._count,
                         "" if self._count == 1 else "s", per_template, listed)
        self._count = 0
        self._per_template = {}
        self._listed = []


def verdict_label(verdict) -> str:
    """The metrics' label of a packet-in's verdict: provisioned, refused or known."""
    if verdict.provisioned is not None:
        return "provisioned"
    return "refused" if verdict.refusal is not None else "known"
