"""What the app logs about a VM the engine provisioned or refused."""

from __future__ import annotations

from ryu_apps.core.binding import VmState


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
