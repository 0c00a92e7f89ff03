"""Programs run inside Mininet hosts (VMs): announcements, probes, floods and forged frames."""
