"""The prober's packet code and schedule, without a network."""

import socket
import struct
import time

from ryu_apps.lab.vmtools import prober


def test_checksum_of_a_known_icmp_echo_request():
    # Echo request id 1 seq 1, payload "abcd": the one's complement of the word sum.
    packet = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"abcd"
    assert prober.checksum(packet) == 0x3337  # ~(0x0800+1+1+0x6162+0x6364)
    assert prober.checksum(b"\x01") == prober.checksum(b"\x01\x00")


def test_a_request_checks_out_and_its_reply_is_recognised():
    request = prober.echo_request(0xD9AB, 70000, b"payload!")
    assert prober.checksum(request) == 0  # a correct checksum sums to zero
    kind, code, _, ident, seq = struct.unpack("!BBHHH", request[:8])
    assert (kind, code, ident, seq) == (8, 0, 0xD9AB, 70000 & 0xFFFF)
    ip_header = bytes([0x45]) + bytes(19)
    reply = ip_header + bytes([0]) + request[1:]
    assert prober.parse_echo_reply(reply, 0xD9AB) == b"payload!"
    assert prober.parse_echo_reply(reply, 0x1234) is None           # someone else's
    assert prober.parse_echo_reply(ip_header + request, 0xD9AB) is None  # a request
    assert prober.parse_echo_reply(b"short", 0xD9AB) is None


class _EchoTransport:
    """Answers every probe at once; one send is slow (a stalled iteration)."""

    def __init__(self, slow_seq: int, slow_s: float) -> None:
        self.sock, self._other = socket.socketpair()
        self.slow_seq, self.slow_s = slow_seq, slow_s
        self.pending: list = []

    def send(self, seq: int, payload: bytes) -> None:
        if seq == self.slow_seq:
            time.sleep(self.slow_s)
        self.pending.append(payload)

    def receive(self) -> list:
        payloads, self.pending = self.pending, []
        return payloads


def test_the_schedule_is_absolute_so_a_slow_iteration_shifts_nothing():
    interval_ns, count = 5_000_000, 30
    run = prober.Prober(_EchoTransport(slow_seq=5, slow_s=0.04), interval_ns)
    run.run(prober.stop_condition(count, None), linger_ns=0)
    assert len(run.sent) == count and len(run.received) == count
    last_due = run.start_ns + (count - 1) * interval_ns
    assert run.sent[-1] - last_due < 15_000_000  # caught up: not 40 ms late
    assert run.sent[7] - run.sent[6] < interval_ns  # the overdue probes went at once
    document = run.document("10.0.0.1", "icmp", 1, 0.0)
    assert [p["seq"] for p in document["probes"]] == list(range(count))


def test_stop_file_ends_the_run(tmp_path):
    stop = tmp_path / "stop"
    should_stop = prober.stop_condition(None, str(stop))
    assert not should_stop(10)
    stop.touch()
    assert should_stop(10) and not should_stop(11)  # checked every 10 probes
    assert prober.stop_condition(3, None)(3)
