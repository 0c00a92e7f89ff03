"""Signed LLDP probes: topology comes only from probes a dynprov controller made (pure).

Every probe and beacon carries an HMAC-SHA256 (truncated to 16 bytes) keyed
with the deployment's secret over (destination, chassis, port, time, nonce,
process name). A frame is believed only when its signature is right, it was
made less than ``max_age`` seconds ago (or ahead, for clock skew between
processes), and its nonce was not seen before (a probe arrives once; a
beacon once per receiving port, since learning bridges flood it to every
pod). Anything else is a :class:`Rejection` with its reason; the caller logs
it once per port and counts it. A VM cannot sign, so it cannot make a link.

The secret and the nonces come from the edge (it owns the random source), and
time comes in as ``now``.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, Tuple

from ryu_apps.core import lldp

#: Seconds a probe stays believable (covers a few LLDP rounds and clock skew
#: between the processes of one deployment).
DEFAULT_MAX_AGE = 10.0
#: Nonces remembered for replay detection; the oldest are forgotten first.
REPLAY_CACHE_SIZE = 65536
MIN_SECRET_BYTES = 16


class RejectReason(enum.Enum):
    """Why a frame that looked like a probe was not believed."""

    MALFORMED = "malformed"
    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad signature"
    STALE = "stale"
    REPLAYED = "replayed"


@dataclass(frozen=True)
class Rejection:
    """A probe-looking frame that was dropped, and why."""

    reason: RejectReason
    detail: str


class ProbeSigner:
    """Signs the probes and beacons of one controller process."""

    def __init__(self, secret: bytes, process: str) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"topology secret: expected at least {MIN_SECRET_BYTES} bytes, "
                             f"got {len(secret)}")
        name = process.encode("ascii", "replace")[:lldp.MAX_PROCESS_NAME]
        self._secret, self.process = secret, bytes(c if 0x21 <= c <= 0x7E else 0x5F
                                                   for c in name)

    def probe(self, dpid: int, port: int, src_mac: bytes, now: float, nonce: bytes,
              beacon: bool = False) -> bytes:
        """A signed probe (or beacon) from ``port`` of switch ``dpid``."""
        if len(nonce) != lldp.NONCE_BYTES:
            raise ValueError(f"nonce: expected {lldp.NONCE_BYTES} bytes, got {len(nonce)}")
        destination = lldp.BEACON_MULTICAST if beacon else lldp.LLDP_MULTICAST
        head = lldp.auth_head(beacon, int(now * 1000), nonce, self.process)
        chassis, port_id = lldp.identity_tlvs(dpid, port)
        covered = lldp.signed_bytes(destination, chassis, port_id, head, self.process)
        return lldp.build_probe(dpid, port, src_mac, destination=destination,
                                auth=(head, self.process, _mac(self._secret, covered)))


class ProbeVerifier:
    """Believes a probe only when it is signed, fresh and new."""

    def __init__(self, secret: bytes, max_age: float = DEFAULT_MAX_AGE,
                 cache_size: int = REPLAY_CACHE_SIZE) -> None:
        self._secret = secret
        self.max_age = max_age
        self._cache_size = cache_size
        self._seen: "OrderedDict[Tuple[bytes, int, int], float]" = OrderedDict()
        #: Rejections so far, by reason.
        self.rejected: Dict[RejectReason, int] = {reason: 0 for reason in RejectReason}
        self.accepted = 0

    def set_secret(self, secret: bytes) -> None:
        """A new deployment secret (e.g. read from the shared store)."""
        self._secret = secret

    def verify(self, frame: bytes, now: float, at: Tuple[int, int] = (0, 0)
               ) -> lldp.ProbeFrame | Rejection:
        """The probe, or why it is not believed. ``at``: the (dpid, port) it arrived on."""
        probe = lldp.parse_probe_frame(frame)
        if probe is None:
            return self._reject(RejectReason.MALFORMED, "not a well-formed dynprov probe")
        if probe.stamp_ms is None:
            return self._reject(RejectReason.UNSIGNED, "carries no signature")
        if not hmac.compare_digest(_mac(self._secret, probe.covered), probe.signature):
            return self._reject(RejectReason.BAD_SIGNATURE,
                                f"signature does not match (claims switch {probe.dpid:016x} "
                                f"port {probe.port}, process {probe.process!r})")
        age = now - probe.stamp_ms / 1000.0
        if abs(age) > self.max_age:
            return self._reject(RejectReason.STALE, f"made {age:+.1f} s from now "
                                f"(believed within {self.max_age:g} s)")
        key = (probe.nonce, *(at if probe.beacon else (0, 0)))
        if key in self._seen:
            return self._reject(RejectReason.REPLAYED, "nonce seen before")
        self._remember(key, now)
        self.accepted += 1
        return probe

    def _remember(self, key: Tuple[bytes, int, int], now: float) -> None:
        seen = self._seen
        seen[key] = now
        while seen and (len(seen) > self._cache_size
                        or now - next(iter(seen.values())) > 2 * self.max_age):
            seen.popitem(last=False)

    def _reject(self, reason: RejectReason, detail: str) -> Rejection:
        self.rejected[reason] += 1
        return Rejection(reason, detail)


def _mac(secret: bytes, covered: bytes) -> bytes:
    return hmac.new(secret, covered, hashlib.sha256).digest()[:lldp.SIGNATURE_BYTES]
