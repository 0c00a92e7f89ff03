"""What one network device tells another (pure): the seam between devices.

In one controller process the messages are delivered in-process; with
several processes they travel through the shared store. Nothing else crosses
between network devices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union


@dataclass(frozen=True)
class MigrationNotice:
    """Source device to destination device: this VM is coming; pre-provision it."""

    mac: str
    binding_id: int
    template_id: int
    ip: Optional[str]
    source_device: int
    destination_device: int
    destination_server: int
    #: Its bound global IPv6 addresses (kept by the moved VM, like its IPv4).
    ipv6: Tuple[str, ...] = ()


@dataclass(frozen=True)
class MigrationDone:
    """Destination device to source device: the VM arrived; release its old side."""

    mac: str
    source_device: int
    destination_device: int


DeviceMessage = Union[MigrationNotice, MigrationDone]
