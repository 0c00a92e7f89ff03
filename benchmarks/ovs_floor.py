"""What Open vSwitch alone needs to apply one VM's flows: the floor under provisioning latency.

A client speaks OpenFlow 1.3 to a fresh OVS bridge (userspace datapath) as its
only controller and, per simulated VM, writes one meter-mod, N flow-mods (N = the
flows dynprov installs for one VM on its virtual switch) and a barrier in one
``send``, all encoded beforehand, then waits for the barrier reply. The time is
OVS's alone (plus one loopback round trip). A second series encodes the same
messages with Ryu's serializer inside the timed section, to show what encoding
costs a Ryu controller per VM.

    python -m benchmarks.ovs_floor [--vms 500] [--flows 21] [--quick]
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import List

from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from benchmarks.common import (PLOTS_DIR, format_table, print_machine, replot,
                               summary, write_results)
from ryu_apps.lab import testbed as lab

NAME = "ovs_floor"


class _Xids:
    """What Ryu's serializer needs from a datapath: the protocol modules and xids."""

    ofproto = ofp
    ofproto_parser = parser

    def __init__(self) -> None:
        self.xid = 0

    def stamp(self, message) -> None:
        self.xid += 1
        message.set_xid(self.xid)


def vm_messages(datapath: _Xids, vm: int, flows: int) -> list:
    """A meter, ``flows`` flow-mods spread over 5 tables, and a barrier, for VM ``vm``."""
    mac = "00:fa:%02x:%02x:%02x:%02x" % ((vm >> 24) & 255, (vm >> 16) & 255,
                                         (vm >> 8) & 255, vm & 255)
    messages = [parser.OFPMeterMod(datapath, command=ofp.OFPMC_ADD, flags=ofp.OFPMF_KBPS,
                                   meter_id=vm + 1,
                                   bands=[parser.OFPMeterBandDrop(rate=100000,
                                                                  burst_size=10000)])]
    for n in range(flows):
        match = parser.OFPMatch(in_port=1 + vm % 200, eth_src=mac, eth_type=0x0800,
                                ip_proto=6, tcp_dst=1000 + n)
        actions = [parser.OFPActionOutput(2)]
        messages.append(parser.OFPFlowMod(
            datapath, cookie=vm, table_id=n % 5, priority=100 + n, match=match,
            instructions=[parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]))
    messages.append(parser.OFPBarrierRequest(datapath))
    return messages


class OpenFlowClient:
    """A bare OpenFlow 1.3 controller connection to one bridge (ptcp on loopback)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.xids = _Xids()

    def encode(self, messages: list) -> bytes:
        for message in messages:
            self.xids.stamp(message)
            message.serialize()
        return b"".join(message.buf for message in messages)

    def wait_for(self, msg_type: int, xid: int) -> None:
        while True:
            while len(self.buffer) < 8:
                self._fill()
            _, kind, length, got = struct.unpack("!BBHI", self.buffer[:8])
            while len(self.buffer) < length:
                self._fill()
            self.buffer = self.buffer[length:]
            if kind == ofp.OFPT_ERROR:
                raise RuntimeError(f"switch refused message xid {got}")
            if kind == msg_type and got == xid:
                return

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RuntimeError("switch closed the connection")
        self.buffer += chunk

    def barrier(self, blob: bytes, barrier_xid: int) -> float:
        """Send ``blob``; milliseconds until the barrier ``barrier_xid`` is answered."""
        start = time.perf_counter()
        self.sock.sendall(blob)
        self.wait_for(ofp.OFPT_BARRIER_REPLY, barrier_xid)
        return (time.perf_counter() - start) * 1000

    def close(self) -> None:
        self.sock.close()


def run(vms: int, flows: int, gap_ms: float) -> dict:
    bridge = "zfl%03d" % (os.getpid() % 1000)
    port = lab.free_tcp_port()
    subprocess.run(["ovs-vsctl", "add-br", bridge, "--", "set", "bridge", bridge,
                    "datapath_type=netdev", "protocols=OpenFlow13", "fail_mode=secure",
                    "--", "set-controller", bridge, f"ptcp:{port}:127.0.0.1"], check=True)
    try:
        client = _connect(port)
        try:
            hello = client.encode([parser.OFPHello(client.xids),
                                   parser.OFPBarrierRequest(client.xids)])
            client.barrier(hello, client.xids.xid)
            preencoded, encoded_inline = [], []
            for vm in range(vms):
                messages = vm_messages(client.xids, vm, flows)
                blob = client.encode(messages)
                preencoded.append(client.barrier(blob, messages[-1].xid))
                time.sleep(gap_ms / 1000)
                start = time.perf_counter()
                messages = vm_messages(client.xids, vms + vm, flows)
                blob = client.encode(messages)
                client.barrier(blob, messages[-1].xid)
                encoded_inline.append((time.perf_counter() - start) * 1000)
                time.sleep(gap_ms / 1000)
        finally:
            client.close()
    finally:
        subprocess.run(["ovs-vsctl", "--if-exists", "del-br", bridge], check=True)
    return {"ovs_only_ms": summary(preencoded), "ryu_encoding_plus_ovs_ms":
            summary(encoded_inline), "samples_ms": preencoded,
            "messages_per_vm": flows + 2}


def _connect(port: int) -> OpenFlowClient:
    deadline = time.monotonic() + 10
    while True:
        try:
            return OpenFlowClient(port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def plot(record: dict, outdir: Path = PLOTS_DIR) -> List[Path]:
    return []   # a two-line table says it all; no plot


def main(argv=None) -> int:
    parser_ = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser_.add_argument("--vms", type=int, default=500)
    parser_.add_argument("--flows", type=int, default=21,
                         help="flow-mods per VM (dynprov: 21 on the virtual switch)")
    parser_.add_argument("--gap-ms", type=float, default=5.0)
    parser_.add_argument("--quick", action="store_true")
    parser_.add_argument("--plot-only", action="store_true")
    args = parser_.parse_args(argv)
    name = NAME + ("-quick" if args.quick else "")
    if args.plot_only:
        replot(name, plot)
        return 0
    if args.quick:
        args.vms = 20
    print_machine()
    figures = run(args.vms, args.flows, args.gap_ms)
    rows = [[what, figures[key]["n"], figures[key]["p50"], figures[key]["p90"],
             figures[key]["p99"], figures[key]["max"]]
            for key, what in (("ovs_only_ms", "OVS: pre-encoded messages -> barrier reply"),
                              ("ryu_encoding_plus_ovs_ms",
                               "Ryu encoding + OVS -> barrier reply"))]
    print(f"per VM: 1 meter-mod + {args.flows} flow-mods + 1 barrier, one send")
    print(format_table(["ms", "n", "p50", "p90", "p99", "max"], rows))
    print(f"results: {write_results(name, figures)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
