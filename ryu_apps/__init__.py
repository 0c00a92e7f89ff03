"""dynprov: distributed dynamic network provisioning for VMs on Open vSwitch."""

__version__ = "0.1.0"
