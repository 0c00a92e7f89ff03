"""When the app repairs after a failure: at once, or later, never dropped.

A handler that raised makes the app resynchronise (rebuild the engine from the
switches); a switch that refused a message is reconciled. Either is done at
most once per ``interval`` seconds (a fault that repeats must not turn into a
storm of read-backs); one asked for sooner is remembered and done on the first
tick after the interval, so no failure is left unrepaired. Time is an argument.
"""

from __future__ import annotations

import functools
from typing import Callable, Dict, List, Optional, Tuple


class RepairSchedule:
    """Resynchronisations and per-switch reconciliations after failures."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last_resync = float("-inf")
        self._resync_due: Optional[str] = None
        self._last_reconcile: Dict[int, float] = {}
        self._reconcile_due: Dict[int, str] = {}
        self._failed: Dict[str, float] = {}

    def first_failure(self, where: str, now: float, quiet: float = 60.0) -> bool:
        """Whether ``where`` failed for the first time in ``quiet`` seconds (its
        traceback is worth logging); a negative ``quiet``: for the first time ever."""
        last = self._failed.get(where)
        first = last is None or (quiet >= 0 and now - last > quiet)
        self._failed[where] = now
        return first

    def resync_now(self, why: str, now: float) -> bool:
        """Whether a resynchronisation asked for at ``now`` runs now (it is then
        counted); if not, it is due later (:meth:`resync_due`)."""
        if now - self._last_resync < self.interval:
            self._resync_due = why
            return False
        self._last_resync, self._resync_due = now, None
        return True

    def resync_due(self, now: float) -> Optional[str]:
        """Why a postponed resynchronisation may run now; None when none may."""
        if self._resync_due is None or now - self._last_resync < self.interval:
            return None
        return self._resync_due

    def switch_refused(self, dpid: int, why: str) -> None:
        """A switch refused a message: it is to be reconciled."""
        self._reconcile_due[dpid] = why

    def reconciles_due(self, now: float) -> List[Tuple[int, str]]:
        """(switch, why) to reconcile now; each is counted as done."""
        due = []
        for dpid, why in sorted(self._reconcile_due.items()):
            if now - self._last_reconcile.get(dpid, float("-inf")) >= self.interval:
                self._last_reconcile[dpid] = now
                del self._reconcile_due[dpid]
                due.append((dpid, why))
        return due

    def forget(self, dpid: int) -> None:
        """The switch disconnected: its connection is read back in full anyway."""
        self._reconcile_due.pop(dpid, None)


def guarded(handler: Callable) -> Callable:
    """Wrap an event handler of the app: if it raises, the app logs it and
    resynchronises (``app.handler_failed``) instead of running on whatever the
    failed event left behind. An OpenFlow message of another version than the
    connection's (Ryu parses each message by the version in its own header: an
    OpenFlow 1.0 PACKET_IN on a 1.3 connection has no match) is logged once per
    switch (``app.malformed``) and ignored."""
    @functools.wraps(handler)
    def run(app, ev) -> None:
        msg = getattr(ev, "msg", None)
        if msg is not None and msg.version != msg.datapath.ofproto.OFP_VERSION:
            app.malformed(msg.datapath.id or 0, f"OpenFlow version {msg.version} message "
                                                "on an OpenFlow 1.3 connection")
            return
        try:
            handler(app, ev)
        except Exception:  # noqa: BLE001 - no event may leave the engine half-changed
            app.handler_failed(handler.__name__)
    return run
