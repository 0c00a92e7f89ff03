"""The floor under any Ryu app's packet-in handling: a Ryu app that does nothing else.

``ryu-manager benchmarks.ofload.floor_app`` answers every PACKET_IN with one
PACKET_OUT of the same frame back out of its port, already encoded (no
parsing, no flow-mod, no logging). Driven by the throughput generator in
``answer`` mode, its rate is what one Ryu process's receive loop, event
dispatch to the app's thread and send loop allow on this machine: the
ceiling of every app, dynprov's and ``simple_switch_13``'s alike
(``python -m benchmarks.throughput --floor``).
"""

from __future__ import annotations

import struct

from ryu.base import app_manager
from ryu.controller import ofp_event
from ryu.controller.handler import MAIN_DISPATCHER, set_ev_cls
from ryu.ofproto import ofproto_v1_3 as ofp

_HEADER = struct.Struct("!BBHI")
_PACKET_OUT = struct.Struct("!IIH6x")
_OUTPUT = struct.Struct("!HHIH6x")


def packet_out(in_port: int, data: bytes) -> bytes:
    """A PACKET_OUT of ``data`` to OFPP_IN_PORT (transaction id 0)."""
    action = _OUTPUT.pack(ofp.OFPAT_OUTPUT, 16, ofp.OFPP_IN_PORT, 0)
    body = _PACKET_OUT.pack(ofp.OFP_NO_BUFFER, in_port, len(action)) + action + data
    return _HEADER.pack(ofp.OFP_VERSION, ofp.OFPT_PACKET_OUT, 8 + len(body), 0) + body


class FloorApp(app_manager.RyuApp):
    """Answers each packet-in with a packet-out; nothing else."""

    OFP_VERSIONS = [ofp.OFP_VERSION]

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev) -> None:
        msg = ev.msg
        msg.datapath.send(packet_out(msg.match["in_port"], bytes(msg.data)))
