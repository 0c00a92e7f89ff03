"""A switch connection's receive loop that takes in one read what has arrived.

The framework's ``Datapath._recv_loop`` (Ryu's and os-ken's alike) reads each
OpenFlow message in two reads, its 8-byte header and then its body, and a read
that finds nothing waits in the hub (an epoll registration and a green-thread
switch). :func:`recv_loop` reads up to :data:`READ_SIZE` bytes at a time and
splits off every complete message of what arrived; each message is then parsed
and dispatched exactly as the framework's loop does (``ofproto_parser.msg``,
the event to the observers, the handlers of the connection's state, a yield
every 2,048 messages), so a barrier reply arriving behind a packet-in costs no
read of its own. :func:`install` puts it in place of the framework's loop, and
closes the socket when it ends, as the framework's does.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
from typing import Any

#: Bytes asked for per read (what has arrived is returned, up to this).
READ_SIZE = 65536
#: Messages dispatched between two yields to the other green threads (the framework's).
YIELD_EVERY = 2048

_HEADER = struct.Struct("!BBHI")   # version, type, length, xid: ofproto_parser.header
LOG = logging.getLogger(__name__)


def recv_loop(datapath: Any, ofproto_parser: Any, ofp_event: Any, hub: Any,
              dead_state: str) -> None:
    """Read ``datapath``'s socket until it closes or the connection is dead; dispatch
    each message as the framework's ``Datapath._recv_loop`` does."""
    buf = bytearray()
    header, count = _HEADER.unpack_from, 0
    min_len = _HEADER.size
    while datapath.state != dead_state:
        try:
            data = datapath.socket.recv(READ_SIZE)
        except (socket.timeout, ssl.SSLError):
            continue   # a read timeout (eventlet raises SSLError for one over TLS)
        except (EOFError, OSError):
            break
        if not data:
            break
        buf += data
        start, end = 0, len(buf)
        while end - start >= min_len:
            version, msg_type, msg_len, xid = header(buf, start)
            if msg_len < min_len:   # a length the header cannot have: skip the header
                LOG.debug("switch at %s sent a message of length %d, under a header's: "
                          "read as a header", getattr(datapath, "address", "?"), msg_len)
                msg_len = min_len
            if end - start < msg_len:
                break
            msg = ofproto_parser.msg(datapath, version, msg_type, msg_len, xid,
                                     buf[start:start + msg_len])
            start += msg_len
            if msg:
                _dispatch(datapath, ofp_event.ofp_msg_to_ev(msg))
            count += 1
            if count > YIELD_EVERY:
                count = 0
                hub.sleep(0)
        if start:
            del buf[:start]


def _dispatch(datapath: Any, ev: Any) -> None:
    """The event to the apps observing it, then the framework's own handlers of the
    connection's current state (as the framework's loop)."""
    brick = datapath.ofp_brick
    if brick is None:
        return
    brick.send_event_to_observers(ev, datapath.state)
    handlers = [handler for handler in brick.get_handlers(ev)
                if datapath.state in handler.callers[ev.__class__].dispatchers]
    for handler in handlers:
        handler(ev)


def install(controller: Any, ofproto_parser: Any, ofp_event: Any, hub: Any,
            dead_state: str) -> None:
    """Make :func:`recv_loop` the receive loop of the framework's ``Datapath`` class
    (``controller``: its ``controller.controller`` module); idempotent."""
    datapath_class = controller.Datapath
    if getattr(datapath_class._recv_loop, "dynprov", False):
        return

    def _recv_loop(self) -> None:
        try:
            recv_loop(self, ofproto_parser, ofp_event, hub, dead_state)
        finally:   # as the framework's loop (its ``_deactivate``): the socket is done
            try:
                self.socket.close()
            except OSError:
                pass

    _recv_loop.dynprov = True   # type: ignore[attr-defined]
    _recv_loop.framework = datapath_class._recv_loop   # type: ignore[attr-defined]
    datapath_class._recv_loop = _recv_loop
