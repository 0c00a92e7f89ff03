"""Framework-free description of OpenFlow 1.3 flows.

A :class:`FlowSpec` is what the core produces and what the edge renders into
an ``OFPFlowMod``. Matches use OpenFlow 1.3 OXM field names (``in_port``,
``eth_src``, ``vlan_vid`` ...); a masked field's value is a ``(value, mask)``
pair. Specs are hashable and compare by value, so desired and observed flow
tables are plain sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Tuple, Union

#: Reserved OpenFlow 1.3 port numbers (from the specification).
OFPP_TABLE = 0xFFFFFFF9
OFPP_CONTROLLER = 0xFFFFFFFD
OFPP_ANY = 0xFFFFFFFF
#: Ask the switch to send the whole packet to the controller.
OFPCML_NO_BUFFER = 0xFFFF
#: OpenFlow 1.3 marks a present VLAN tag with this bit in ``vlan_vid``.
OFPVID_PRESENT = 0x1000

ETH_TYPE_LLDP = 0x88CC
ETH_TYPE_VLAN = 0x8100
#: Matches any Ethernet group address (multicast and broadcast).
GROUP_ADDRESS_MATCH = ("01:00:00:00:00:00", "01:00:00:00:00:00")

MatchValue = Union[int, str, Tuple[Any, Any]]


@dataclass(frozen=True, slots=True)
class Output:
    """Send the packet out of a port."""

    port: int
    max_len: int = 0


@dataclass(frozen=True, slots=True)
class PushVlan:
    """Push an 802.1Q header."""

    ethertype: int = ETH_TYPE_VLAN


@dataclass(frozen=True, slots=True)
class PopVlan:
    """Pop the outermost 802.1Q header."""


@dataclass(frozen=True, slots=True)
class SetField:
    """Set a header field (OXM name)."""

    name: str
    value: Any


@dataclass(frozen=True)
class Resubmit:
    """Run the packet through another table and come back (an OVS extension).

    Used to send one copy of a flooded frame through a port's egress ACL per
    member port; OpenFlow 1.3 alone cannot apply per-copy ACLs.
    """

    table_id: int


@dataclass(frozen=True, slots=True)
class Conntrack:
    """Open vSwitch connection tracking (the Nicira ``ct`` action).

    ``zone``: the conntrack zone (16 bits); ``commit``: create the connection's
    entry; ``table``: recirculate the packet, with its ``ct_state`` set, to this
    table (None: continue with the next action, the state unchanged).
    """

    zone: int
    commit: bool = False
    table: int | None = None


@dataclass(frozen=True, slots=True)
class Move:
    """Copy the whole of one field into another (Nicira ``move``, NXAST_REG_MOVE),
    fields by OXM name. Open vSwitch rewrites a neighbour-discovery link-layer field
    only where the message carries that option (a frame without one is unchanged)."""

    src: str
    dst: str
    n_bits: int


@dataclass(frozen=True, slots=True)
class OutputField:
    """Send the packet out of the port held in ``n_bits`` bits of a field from bit
    ``start`` (Nicira ``output:field[start..end]``, NXAST_OUTPUT_REG)."""

    field: str = "metadata"
    start: int = 0
    n_bits: int = 16


#: ``ct_state`` bits (Open vSwitch's NXM_NX_CT_STATE).
CT_NEW, CT_EST, CT_REL, CT_RPL, CT_INV, CT_TRK = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

Action = Union[Output, PushVlan, PopVlan, SetField, Resubmit, Conntrack, Move, OutputField]


@dataclass(frozen=True, slots=True)
class ApplyActions:
    """Apply these actions now, in order."""

    actions: Tuple[Action, ...]


@dataclass(frozen=True, slots=True)
class GotoTable:
    """Continue processing in a later table."""

    table_id: int


@dataclass(frozen=True, slots=True)
class Meter:
    """Pass the packet through a meter (must precede apply-actions)."""

    meter_id: int


@dataclass(frozen=True, slots=True)
class WriteMetadata:
    """Set the pipeline metadata (here: the egress port an ACL is for)."""

    value: int
    mask: int = 0xFFFFFFFFFFFFFFFF


Instruction = Union[Meter, ApplyActions, WriteMetadata, GotoTable]


@dataclass(frozen=True, slots=True)
class MeterSpec:
    """An OpenFlow 1.3 meter with one drop band (kbit/s, burst in kbit)."""

    dpid: int
    meter_id: int
    rate_kbps: int
    burst_kbits: int
    packets: bool = False  # rate and burst in packets instead of kbit
    cookie: int = field(default=0, compare=False)

    @property
    def key(self) -> tuple:
        """Identity of the meter in a switch."""
        return (self.dpid, "meter", self.meter_id)


@dataclass(frozen=True, slots=True)
class FlowSpec:
    """One flow entry: where it goes, what it matches, what it does, who owns it.

    Slotted (no per-spec dict: a spec costs about a third of the bytes); its hash
    is computed once, into the ``_hash`` slot.
    """

    dpid: int
    table_id: int
    priority: int
    match: Tuple[Tuple[str, MatchValue], ...]
    instructions: Tuple[Instruction, ...]
    cookie: int
    idle_timeout: int = 0
    hard_timeout: int = 0
    _hash: int | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def key(self) -> tuple:
        """Identity of the entry in a switch: table, priority and match."""
        return (self.dpid, self.table_id, self.priority, self.match)

    def __hash__(self) -> int:
        # specs are hashed many times (sets, diffs): compute once
        cached = self._hash
        if cached is None:
            cached = hash((self.dpid, self.table_id, self.priority, self.match,
                           self.instructions, self.cookie, self.idle_timeout,
                           self.hard_timeout))
            object.__setattr__(self, "_hash", cached)
        return cached

    def match_dict(self) -> dict:
        """The match as a dict of OXM name to value."""
        return dict(self.match)


def make_match(**fields: MatchValue) -> Tuple[Tuple[str, MatchValue], ...]:
    """A canonical (sorted) match tuple from OXM keyword fields."""
    return tuple(sorted(fields.items()))


def match_from_mapping(fields: Mapping[str, MatchValue]) -> Tuple[Tuple[str, MatchValue], ...]:
    """A canonical match tuple from a mapping."""
    return tuple(sorted(fields.items()))


def tagged(vlan_id: int) -> int:
    """The ``vlan_vid`` match/set value for a tagged frame of ``vlan_id``."""
    return vlan_id | OFPVID_PRESENT


def flow(
    dpid: int,
    table_id: int,
    priority: int,
    match: Tuple[Tuple[str, MatchValue], ...],
    cookie: int,
    *,
    actions: Tuple[Action, ...] = (),
    goto: int | None = None,
    meter: int | None = None,
    metadata: int | None = None,
    idle_timeout: int = 0,
) -> FlowSpec:
    """Build a FlowSpec with instructions in the order OpenFlow 1.3 requires."""
    if meter is None and metadata is None and not actions:   # most flows: a goto at most
        return FlowSpec(dpid, int(table_id), int(priority), match,
                        () if goto is None else (_goto(goto),), cookie, idle_timeout)
    instructions: list = []
    if meter is not None:
        instructions.append(Meter(meter))
    if actions:
        instructions.append(ApplyActions(tuple(actions)))
    if metadata is not None:
        instructions.append(WriteMetadata(metadata))
    if goto is not None:
        instructions.append(_goto(goto))
    return FlowSpec(dpid, int(table_id), int(priority), match, tuple(instructions), cookie,
                    idle_timeout)




#: One GotoTable per table, shared by every flow that jumps there.
_GOTO: dict = {}


def _goto(table_id: int) -> GotoTable:
    instruction = _GOTO.get(table_id)
    if instruction is None:
        instruction = _GOTO[table_id] = GotoTable(int(table_id))
    return instruction
