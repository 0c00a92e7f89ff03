"""How network devices' messages travel: in-process, within one controller.

The seam a distributed store replaces: :meth:`InProcessBus.deliver` hands a
:mod:`ryu_apps.core.device_messages` message to the device it is for and
returns the plan that device's reaction produced.
"""

from __future__ import annotations

from ryu_apps.core.flow_plan import Plan


class InProcessBus:
    """Every network device lives in this process's engine."""

    def __init__(self, engine) -> None:
        self.engine = engine

    def deliver(self, message) -> Plan:
        """Deliver a message to its destination device; its reaction's plan."""
        return self.engine.receive(message)
