"""What a VM move returns or raises: the destination port, the step times, the error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class DestinationPort:
    """The VM's new port: bridge, bridge-side interface, OpenFlow port, VM MAC."""

    bridge: str
    interface: str
    ofport: int
    mac: str


@dataclass(frozen=True)
class MigrationTimes:
    """When each step of a move happened (monotonic ns)."""

    vm: str
    source: str
    destination: DestinationPort
    announce: str
    port_created_ns: int         # destination port in OVSDB, numbered
    switchover_ns: int           # the old interface is about to be deleted
    resumed_ns: int              # the new interface is up in the VM
    old_deleted_ns: int          # the old interface (and source port device) is gone
    source_port_removed_ns: int  # the source's OVSDB row is gone
    announcements_ns: tuple = ()
    #: Inside the VM (bash's clock, converted to monotonic): the old interface
    #: goes down, the new one is up. None when the shell could not tell.
    guest_down_ns: Optional[int] = None
    guest_up_ns: Optional[int] = None

    @property
    def downtime_ns(self) -> int:
        """How long the VM had no interface (the switchover itself).

        Measured inside the VM when it could be, else around the command.
        """
        if self.guest_down_ns is not None and self.guest_up_ns is not None:
            return self.guest_up_ns - self.guest_down_ns
        return self.resumed_ns - self.switchover_ns

    @property
    def up_ns(self) -> int:
        """When the VM's new interface came up (inside the VM if known)."""
        return self.guest_up_ns if self.guest_up_ns is not None else self.resumed_ns

    def summary(self) -> str:
        """One line: every step relative to the switchover, in ms."""
        def rel(value: int) -> str:
            return f"{(value - self.switchover_ns) / 1e6:+.1f}"
        announced = ",".join(rel(t) for t in self.announcements_ns) or "-"
        return (f"{self.vm}: {self.source} -> {self.destination.bridge} port "
                f"{self.destination.ofport} ({self.destination.interface}); port created "
                f"{rel(self.port_created_ns)} ms, up {rel(self.resumed_ns)} ms, old "
                f"interface deleted {rel(self.old_deleted_ns)} ms, source port removed "
                f"{rel(self.source_port_removed_ns)} ms, {self.announce} "
                f"announcements at {announced} ms")


class MigrationError(RuntimeError):
    """A step of a move failed; the message names the VM, bridge and interface."""
