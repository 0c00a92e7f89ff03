"""What the distributed hand-off reads and says (pure, plain typed values).

The reducer (:mod:`ryu_apps.core.handoff`) takes *inputs* (a ``Binding`` row
changed in the store, a write's result, the engine's bindings, a migration
notice for another process's server, a VM expected on one of our servers,
time) and returns a :class:`Step`: store *write intents* (mapped to OVSDB
transactions by ``ryu_apps.store.writes``), *engine commands* (run on the
engine by :func:`ryu_apps.core.handoff_engine.run_command`) and log notes.
Nothing here knows OVSDB, the IDL or a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import FrozenSet, List, Mapping, Optional, Tuple, Union

from ryu_apps.core.notification_errors import NotificationError

#: (IPv6 address, when its DHCPv6 lease ends), sorted by address.
LeaseEnds6 = Tuple[Tuple[str, float], ...]


# -- rows and bindings -----------------------------------------------------------
@dataclass(frozen=True)
class BindingRecord:
    """What a process writes about a VM it hosts (or is about to host)."""

    mac: str
    template_id: int
    domain: str
    server: str
    port: int
    ip: Optional[str]
    state: str
    #: Its bound global IPv6 addresses, sorted.
    ipv6: Tuple[str, ...] = ()
    #: How ``ip`` was bound (``Binding.ip_source``: first_seen, dhcp, pinned).
    ip_source: Optional[str] = None
    #: When the DHCP lease of a dhcp-bound ``ip`` ends (None: it never does, or is not
    #: known). Lease ends are wall-clock seconds (the engine's ``now``, ``time.time()``
    #: at the edge): every process of a store reads the same clock.
    lease_end: Optional[float] = None
    #: When the DHCPv6 lease of each leased address of ``ipv6`` ends.
    lease6_ends: LeaseEnds6 = ()


@dataclass(frozen=True)
class BindingRow:
    """A store ``Binding`` row, as far as the hand-off reads it."""

    mac: str
    owner: str
    server: str = ""
    requested_owner: Optional[str] = None
    requested_server: Optional[str] = None
    ip: Optional[str] = None
    ipv6: Tuple[str, ...] = ()
    ip_source: Optional[str] = None   # None in a row an older dynprov wrote
    lease_end: Optional[float] = None   # as BindingRecord's (none in an older row)
    lease6_ends: LeaseEnds6 = ()


@dataclass(frozen=True)
class HeldBinding:
    """One VM the engine holds, as the store would record it.

    ``restored``: read back from a switch's flows after a restart (ours only
    if the store agrees); ``port_up``: its port is still on its switch.
    """

    binding_id: int
    record: BindingRecord
    restored: bool = False
    port_up: bool = field(default=True, compare=False)


@dataclass(frozen=True)
class EngineView:
    """The engine's bindings at one moment: VMs held, VMs pre-provisioned, switches."""

    bindings: Mapping[str, HeldBinding] = field(default_factory=dict)
    incoming: FrozenSet[str] = frozenset()
    devices: Tuple[str, ...] = ()


# -- inputs ------------------------------------------------------------------------
@dataclass(frozen=True)
class RowChanged:
    """A ``Binding`` row entered or changed in our replica (``row``), or left it (None)."""

    mac: str
    row: Optional[BindingRow]


@dataclass(frozen=True)
class BindingsChanged:
    """The engine's bindings now (the reducer diffs them against what it published)."""

    view: EngineView


@dataclass(frozen=True)
class HandOffAsked:
    """A migration notice names ``server``, which process ``destination`` manages
    (None: no process of the store does)."""

    mac: str
    server: str
    destination: Optional[str]


@dataclass(frozen=True)
class Expecting:
    """A VM unknown here is expected on port ``port`` of our ``server`` (its port
    appeared there with its link down)."""

    mac: str
    server: str
    port: int


@dataclass(frozen=True)
class Tick:
    """Time passed (the warm-start grace, the deadline for missing servers)."""


# -- store write intents ---------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    """Own the VM's row (insert it, or take it over, ending any hand-off to us)."""

    record: BindingRecord

    @property
    def mac(self) -> str:
        return self.record.mac


@dataclass(frozen=True)
class Adopt:
    """After a restart: claim a VM the switches gave back unless another process owns it
    (result: whether we own it)."""

    record: BindingRecord
    binding_id: int

    @property
    def mac(self) -> str:
        return self.record.mac


@dataclass(frozen=True)
class Release:
    """Delete the VM's row if we still own it."""

    mac: str


@dataclass(frozen=True)
class RequestOwner:
    """Source side: name ``destination`` on the VM's row we own (result: whether done)."""

    mac: str
    destination: str
    server: str
    port: int = 0


@dataclass(frozen=True)
class RequestFromOwner:
    """Destination side: name us on the row another process owns (the VM's port
    appeared on our ``server``)."""

    mac: str
    server: str
    port: int


@dataclass(frozen=True)
class Withdraw:
    """Destination side: clear our request on the row (the VM never arrived here)."""

    mac: str


@dataclass(frozen=True)
class ReportDevices:
    """Record in our ``Process`` row which switches we manage."""

    devices: Tuple[str, ...]


Write = Union[Claim, Adopt, Release, RequestOwner, RequestFromOwner, Withdraw, ReportDevices]


@dataclass(frozen=True)
class WriteDone:
    """How a write ended: ``ok`` (committed) and its value, or the error."""

    write: Write
    ok: bool
    value: object = None
    error: str = ""


Input = Union[RowChanged, BindingsChanged, HandOffAsked, Expecting, Tick, WriteDone]


# -- engine commands -----------------------------------------------------------------
@dataclass(frozen=True)
class HandOver:
    """Deliver the VM's frames at its port here and toward the shared fabric."""

    mac: str


@dataclass(frozen=True)
class StopHandingOver:
    """The destination gave the VM up: deliver its frames at its port here only."""

    mac: str


@dataclass(frozen=True)
class Cede:
    """Another process owns the VM now: deprovision its binding ``binding_id`` here."""

    mac: str
    binding_id: int


@dataclass(frozen=True)
class ExpectArrival:
    """A source process names us as the VM's next owner: pre-provision it on
    ``server`` (bound to ``ip``, as ``ip_source`` says, and ``ipv6``, their DHCP and
    DHCPv6 leases ending as the source's did); ``received``: when the request
    reached us."""

    mac: str
    server: Optional[str]
    ip: Optional[str]
    received: float
    ipv6: Tuple[str, ...] = ()
    ip_source: Optional[str] = None
    lease_end: Optional[float] = None
    lease6_ends: LeaseEnds6 = ()


Command = Union[HandOver, StopHandingOver, Cede, ExpectArrival]


# -- what one input yields -----------------------------------------------------------
@dataclass(frozen=True)
class Note:
    """A line for the log: ``level`` is "info" or "warning"."""

    level: str
    text: str


@dataclass
class Step:
    """What the reducer decided for one input.

    ``watch``: the MACs of rows outside our condition to replicate as well
    (set when it changed); ``wake_at``: when the reducer next needs ``now``
    (None: not before the next input); ``answer``/``refused``: the reply to a
    :class:`HandOffAsked` decided at once.
    """

    writes: List[Write] = field(default_factory=list)
    commands: List[Command] = field(default_factory=list)
    notes: List[Note] = field(default_factory=list)
    watch: Optional[FrozenSet[str]] = None
    wake_at: Optional[float] = None
    answer: Optional[str] = None
    refused: Optional[NotificationError] = None

    def note(self, text: str, level: str = "info") -> None:
        self.notes.append(Note(level, text))
