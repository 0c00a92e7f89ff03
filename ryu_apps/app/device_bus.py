"""How network devices' messages travel: in-process, within one controller.

:meth:`InProcessBus.deliver` hands a :mod:`ryu_apps.core.device_messages`
message to the device it is for and returns the plan that device's reaction
produced. It carries the messages between devices of one process in both
modes. Between processes (``[dynprov] store``) nothing is sent: the binding
row in the shared store is the message (:mod:`ryu_apps.store.sync`) — a
``MigrationNotice`` becomes the source naming the destination process in
``requested_owner``, a ``MigrationDone`` becomes the destination's claim of
the row, which the source sees and cleans up after.
"""

from __future__ import annotations

from ryu_apps.core.flow_plan import Plan


class InProcessBus:
    """Every network device lives in this process's engine."""

    def __init__(self, engine) -> None:
        self.engine = engine

    def deliver(self, message, now: float = 0.0) -> Plan:
        """Deliver a message to its destination device; its reaction's plan."""
        return self.engine.receive(message, now=now)
