"""See a switch's barrier reply where its bytes are read, before Ryu's event dispatch.

Ryu's receive loop (one green thread per switch) splits the stream into messages
and hands each to ``ryu.ofproto.ofproto_parser.msg``; the parsed message then
goes through the event queues of every app that observes it (dynprov's and
``ofctl_service``'s) and waits for the app's event loop. A plan's confirmation
needs only the switch and the xid of the reply, both known at the split: the tap
wraps that function once per process and calls ``on_barrier(dpid, xid)`` from the
receive loop for every OpenFlow 1.3 barrier reply, then lets Ryu parse and
dispatch the message as before (the app's event handler then finds the barrier
already confirmed and does nothing). That takes the event queue and the loop's
wake-up off the path from the last barrier reply to the VM's confirmation.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from ryu_apps.app.framework import ofproto_parser

OFP_VERSION_1_3 = 0x04
OFPT_BARRIER_REPLY = 21

BarrierCallback = Callable[[int, int], None]

_callback: Optional[BarrierCallback] = None
_original: Optional[Callable[..., Any]] = None


def _msg(datapath, version, msg_type, msg_len, xid, buf):
    """Ryu's ``ofproto_parser.msg``, after telling ``_callback`` of a barrier reply."""
    callback = _callback
    dpid = getattr(datapath, "id", None)
    if (callback is not None and msg_type == OFPT_BARRIER_REPLY
            and version == OFP_VERSION_1_3 and dpid is not None):
        callback(dpid, xid)
    assert _original is not None
    return _original(datapath, version, msg_type, msg_len, xid, buf)


def install(callback: Optional[BarrierCallback]) -> None:
    """Call ``callback(dpid, xid)`` for every barrier reply read from now on
    (``None``: stop). The callback must not raise: it runs in Ryu's receive loop."""
    global _callback, _original
    _callback = callback
    if _original is None:
        _original = ofproto_parser.msg
        ofproto_parser.msg = _msg


def uninstall() -> None:
    """Give Ryu its own function back (tests)."""
    global _callback, _original
    _callback = None
    if _original is not None:
        ofproto_parser.msg = _original
        _original = None
