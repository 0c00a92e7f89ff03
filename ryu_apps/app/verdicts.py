"""What the app reads of a packet-in, and logs about a VM the engine provisioned or refused."""

from __future__ import annotations

from typing import Optional, Tuple

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


def log_verdict(logger, verdict, dpid: int, port: int) -> None:
    """Log a first refusal (quarantine) and a VM provisioned for real (not pre-provisioned)."""
    if verdict.refusal and verdict.first_refusal:
        refusal = verdict.refusal
        template = "none" if refusal.template_id is None else str(refusal.template_id)
        logger.warning(
            "quarantined VM MAC %s on switch %016x port %d: decoded template %s: %s",
            refusal.mac, dpid, port, template, refusal.reason)
    binding = verdict.provisioned
    if binding and binding.state is not VmState.PRE_PROVISIONED:
        logger.info(
            "provisioned VM %s on switch %016x port %d: template %d '%s', vlan %d, "
            "binding %d (%s)", binding.mac, binding.dpid, binding.port, binding.template_id,
            binding.template_name, binding.vlan, binding.binding_id,
            binding.detected_by.value)


def verdict_label(verdict) -> str:
    """The metrics' label of a packet-in's verdict: provisioned, refused or known."""
    if verdict.provisioned is not None:
        return "provisioned"
    return "refused" if verdict.refusal is not None else "known"
