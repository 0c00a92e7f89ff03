"""Outages from a fixed-rate prober's record (pure: probes in, a report out).

The prober (``ryu_apps/lab/vmtools/prober.py``) sends probe ``seq`` at
``start + seq * interval`` and records its send time and the arrival time of
its reply, if any. Definitions, all by **send time** (the only clock that ticks
at a fixed rate whatever the network does):

- A probe is *lost* when it has no reply, or (with ``max_latency_ns``) when
  its reply took longer than that (counted as ``late`` as well).
- A *loss run* is a maximal sequence of consecutive lost probes. It starts at
  the send time of its first lost probe and ends at the send time of the first
  answered probe after it; its duration is the difference. A run that reaches
  the last probe has not *recovered*: it has no end, and its duration is the
  lower bound ``last lost send - first lost send + interval``.
- The *outage* is the duration of the longest run (by duration; the earliest
  on a tie), 0 when nothing was lost. With a 1 ms interval it is accurate to
  about one interval: the link came back somewhere between the last lost and
  the first answered probe.
- ``recovered`` is False when the last probe was lost (the outage may be
  longer than reported); True otherwise, including when nothing was lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, NamedTuple, Optional, Sequence, Tuple


class Probe(NamedTuple):
    """One probe: sequence number, send time, reply arrival time (None: no reply)."""

    seq: int
    sent_ns: int
    received_ns: Optional[int]


@dataclass(frozen=True)
class LossRun:
    """Consecutive lost probes ``first_seq``..``last_seq``."""

    first_seq: int
    last_seq: int
    count: int               # lost probes in the run
    start_ns: int            # send time of the first lost probe
    end_ns: Optional[int]    # send time of the first answered probe after it
    duration_ns: int         # end - start; a lower bound when not recovered

    @property
    def recovered(self) -> bool:
        return self.end_ns is not None


@dataclass(frozen=True)
class OutageReport:
    """What a prober run says about the path it probed."""

    interval_ns: int
    sent: int
    answered: int
    late: int                    # replies slower than max_latency_ns (counted lost)
    runs: Tuple[LossRun, ...]
    outage_run: Optional[LossRun]
    recovered: bool
    first_sent_ns: int
    last_sent_ns: int
    max_send_gap_ns: int         # largest gap between two consecutive sends
    max_latency_ns: Optional[int]
    median_latency_ns: Optional[int]

    @property
    def lost(self) -> int:
        return self.sent - self.answered

    @property
    def outage_ns(self) -> int:
        return self.outage_run.duration_ns if self.outage_run else 0

    @property
    def expected_probes(self) -> int:
        """Probes a perfect schedule sends between the first and last send (rounded)."""
        span = self.last_sent_ns - self.first_sent_ns
        return (span + self.interval_ns // 2) // self.interval_ns + 1

    def summary(self) -> str:
        """One line for logs and test output."""
        text = (f"sent {self.sent} (schedule {self.expected_probes}, max gap "
                f"{_ms(self.max_send_gap_ns)}), answered {self.answered}, lost "
                f"{self.lost} in {len(self.runs)} run(s); outage {_ms(self.outage_ns)}")
        if self.outage_run:
            run = self.outage_run
            text += f" (seq {run.first_seq}-{run.last_seq})"
        if not self.recovered:
            text += ", NOT recovered at the end"
        if self.max_latency_ns is not None:
            text += (f"; latency median {_ms(self.median_latency_ns)}"
                     f" max {_ms(self.max_latency_ns)}")
        return text


def _ms(value_ns: Optional[int]) -> str:
    return "-" if value_ns is None else f"{value_ns / 1e6:.1f} ms"


def analyse(probes: Iterable[Probe], interval_ns: int,
            max_latency_ns: Optional[int] = None) -> OutageReport:
    """Loss runs and the outage of a prober run (see the module docstring)."""
    if interval_ns <= 0:
        raise ValueError(f"interval must be positive, got {interval_ns} ns")
    ordered = _validated(probes)
    latencies = [p.received_ns - p.sent_ns for p in ordered if p.received_ns is not None]
    answered = [_answered(p, max_latency_ns) for p in ordered]
    runs = tuple(_loss_runs(ordered, answered, interval_ns))
    outage_run = max(runs, key=lambda run: run.duration_ns, default=None)
    sends = [p.sent_ns for p in ordered]
    return OutageReport(
        interval_ns=interval_ns, sent=len(ordered), answered=sum(answered),
        late=len(latencies) - sum(answered), runs=runs, outage_run=outage_run,
        recovered=answered[-1], first_sent_ns=sends[0], last_sent_ns=sends[-1],
        max_send_gap_ns=max((b - a for a, b in zip(sends, sends[1:])), default=0),
        max_latency_ns=max(latencies, default=None),
        median_latency_ns=_median(latencies))


def _median(values: Sequence[int]) -> Optional[int]:
    """The median (the mean of the middle two, rounded down, for an even count)."""
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) // 2


def _validated(probes: Iterable[Probe]) -> list:
    ordered = sorted((Probe(*p) for p in probes), key=lambda p: p.seq)
    if not ordered:
        raise ValueError("no probes to analyse")
    for before, after in zip(ordered, ordered[1:]):
        if after.seq == before.seq:
            raise ValueError(f"probe {after.seq} appears twice")
        if after.sent_ns < before.sent_ns:
            raise ValueError(f"probe {after.seq} was sent before probe {before.seq}")
    for probe in ordered:
        if probe.received_ns is not None and probe.received_ns < probe.sent_ns:
            raise ValueError(f"probe {probe.seq} was answered before it was sent")
    return ordered


def _answered(probe: Probe, max_latency_ns: Optional[int]) -> bool:
    if probe.received_ns is None:
        return False
    return max_latency_ns is None or probe.received_ns - probe.sent_ns <= max_latency_ns


def _loss_runs(ordered: Sequence[Probe], answered: Sequence[bool], interval_ns: int):
    """Yield each maximal run of lost probes."""
    start = None
    for index, ok in enumerate(answered):
        if not ok and start is None:
            start = index
        elif ok and start is not None:
            yield _run(ordered[start:index], ordered[index].sent_ns, interval_ns)
            start = None
    if start is not None:
        yield _run(ordered[start:], None, interval_ns)


def _run(lost: Sequence[Probe], end_ns: Optional[int], interval_ns: int) -> LossRun:
    first, last = lost[0], lost[-1]
    stop = end_ns if end_ns is not None else last.sent_ns + interval_ns
    return LossRun(first_seq=first.seq, last_seq=last.seq, count=len(lost),
                   start_ns=first.sent_ns, end_ns=end_ns, duration_ns=stop - first.sent_ns)


def probes_from_document(document: Mapping) -> Tuple[int, list]:
    """(interval_ns, probes) from the prober's JSON document, already parsed."""
    try:
        interval_ns = int(document["interval_ns"])
        probes = [Probe(int(p["seq"]), int(p["sent_ns"]),
                        None if p["received_ns"] is None else int(p["received_ns"]))
                  for p in document["probes"]]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"not a prober document: {error!r}") from error
    return interval_ns, probes
