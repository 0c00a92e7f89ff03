"""Find VMs from a server's OVSDB, even VMs that never send a packet.

libvirt and OpenStack write ``external_ids:attached-mac`` on the Interface row
of a VM's port. :class:`OvsdbWatcher` keeps an OVSDB IDL replica of the few
columns that matter (Bridge name/datapath_id/ports, Port name/interfaces,
Interface name/ofport/external_ids) and reports every change of the set of
(bridge dpid, ofport, attached-mac) triples to two callbacks. The diffing is
pure and lives in :mod:`ryu_apps.core.attachments`.

Inside Ryu the IDL is driven by one green thread that calls
:meth:`OvsdbWatcher.poll_once` and sleeps; it never blocks the hub (no
``ovs.poller`` blocking, no fatal-signal latches).

A remote may be ``unix:``, ``tcp:`` or ``ssl:HOST:PORT``; an ``ssl:`` remote
needs a key, certificate and CA file (:mod:`ryu_apps.tls.ovsdb_ssl`: the ``ssl``
argument, else ``[dynprov] ovsdb_ssl_*``), checked when the watcher is made.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Set, Tuple

import ovs.db.idl
import ovs.dirs
from ryu_apps.app.framework import hub

from ryu_apps.tls import ovsdb_ssl
from ryu_apps.core.attachments import (
    Attachment,
    AttachmentEvent,
    EventKind,
    Snapshot,
    canonical_mac,
    diff_snapshots,
    parse_datapath_id,
    usable_ofport,
)

DEFAULT_REMOTE = "unix:/var/run/openvswitch/db.sock"
ATTACHED_MAC = "attached-mac"
#: The hypervisor's id of the VM's interface (libvirt, OpenStack): same across a move.
IFACE_ID = "iface-id"
COLUMNS = {
    "Bridge": ["name", "datapath_id", "ports"],
    "Port": ["name", "interfaces"],
    "Interface": ["name", "ofport", "external_ids"],
}
MAX_BACKOFF = 5.0
#: Warn once if the database has not been read this long after start.
CONNECT_WARNING_SECONDS = 5.0

Callback = Callable[[int, int, str], None]
#: (attached, dpid, ofport, mac, iface-id) of one change, for ServerWatchers.
ChangeCallback = Callable[[bool, int, int, str, Optional[str]], object]

ovsdb_ssl.register_options()   # [dynprov] ovsdb_ssl_*, read by ryu-manager's config


def default_schema_path() -> Path:
    """The Open_vSwitch schema installed with Open vSwitch."""
    return Path(ovs.dirs.PKGDATADIR) / "vswitch.ovsschema"


def _one(column_value):
    """The value of an optional (0..1) OVSDB column, or None."""
    if isinstance(column_value, list):
        return column_value[0] if column_value else None
    return column_value


class OvsdbWatcher:
    """Reports VMs attached to (and detached from) one server's bridges.

    ``on_attach(dpid, ofport, mac)`` / ``on_detach(dpid, ofport, mac)`` are
    called for each change, detaches first; the first read of the database
    reports every attachment present. A handler that raises is logged and
    does not stop the others. ``ssl``: the files for an ``ssl:`` remote
    (default: ``[dynprov] ovsdb_ssl_*``); ovsdb_ssl.SslConfigError if missing.
    """

    def __init__(self, remote: str, on_attach: Callback, on_detach: Callback,
                 logger, interval: float = 0.05,
                 schema_path: Optional[str] = None,
                 ssl: Optional[ovsdb_ssl.SslFiles] = None) -> None:
        ovsdb_ssl.configure(remote, ssl, "ovsdb")
        self.remote = remote
        self.interval = interval
        self._on_attach, self._on_detach = on_attach, on_detach
        self._logger = logger
        # It only reads: any server will do (an ovsdb-server relay, a cluster follower).
        self._idl = ovs.db.idl.Idl(remote, self._schema_helper(schema_path), leader_only=False)
        self._seqno: Optional[int] = None
        self._current: Snapshot = frozenset()
        self._places: Dict[Attachment, str] = {}
        self._iface_ids: Dict[Tuple[int, int], str] = {}
        self._warned: Set[Tuple[str, ...]] = set()
        self._known_dpids: Dict[str, Optional[int]] = {}
        self._synced = False
        self._started_at = time.monotonic()
        self._thread = None
        self._running = False

    def _schema_helper(self, schema_path: Optional[str]) -> ovs.db.idl.SchemaHelper:
        path = Path(schema_path) if schema_path else default_schema_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"ovsdb {self.remote}: Open_vSwitch schema not found at {path} "
                "(install openvswitch-common or pass schema_path)")
        helper = ovs.db.idl.SchemaHelper(location=str(path))
        for table, columns in COLUMNS.items():
            helper.register_columns(table, columns)
        return helper

    # -- running -------------------------------------------------------------
    def start(self) -> None:
        """Watch in a green thread (``ryu.lib.hub``) until :meth:`stop`."""
        if self._thread is None:
            self._running = True
            self._thread = hub.spawn(self._loop)

    def stop(self) -> None:
        """Stop the green thread, if any, and close the connection."""
        self._running = False
        thread, self._thread = self._thread, None
        if thread is not None and thread is not hub.getcurrent():
            hub.kill(thread)
            hub.joinall([thread])
        self._idl.close()

    def _loop(self) -> None:
        backoff = self.interval
        while self._running:
            try:
                self.poll_once()
                backoff = self.interval
            except Exception:  # noqa: BLE001 - the watcher must survive anything
                backoff = min(max(backoff * 2, 0.5), MAX_BACKOFF)
                self._logger.exception("ovsdb %s: watcher error; retrying in %.1f s",
                                       self.remote, backoff)
                self._recover()
                hub.sleep(backoff)
                continue
            hub.sleep(self.interval)

    def _recover(self) -> None:
        try:
            self._idl.force_reconnect()
        except Exception:  # noqa: BLE001
            self._logger.exception("ovsdb %s: reconnect failed", self.remote)

    # -- one step --------------------------------------------------------------
    def poll_once(self) -> List[AttachmentEvent]:
        """Process what the server sent; report and return the changes."""
        self._idl.run()
        self._note_connection()
        idl = self._idl
        if idl.state != idl.IDL_S_MONITORING or idl.change_seqno == self._seqno:
            return []
        snapshot, places = self._read_attachments()
        self._seqno = idl.change_seqno
        if not self._synced:
            self._synced = True
            self._logger.info("ovsdb %s: database read, %d VM interfaces with %s",
                              self.remote, len(snapshot), ATTACHED_MAC)
        events = diff_snapshots(self._current, snapshot)
        previous_places = self._places
        self._current, self._places = snapshot, places
        for event in events:
            where = places.get(event.attachment) or previous_places.get(event.attachment, "?")
            self._dispatch(event, where)
        return events

    def attachments(self) -> Snapshot:
        """The attachments reported so far (and not detached since)."""
        return self._current

    def iface_id(self, dpid: int, ofport: int) -> Optional[str]:
        """The ``iface-id`` OVSDB gives the VM interface on this port, if any."""
        return self._iface_ids.get((dpid, ofport))

    def _note_connection(self) -> None:
        """Log losing the connection, and a server that never answers."""
        connected = self._idl._session.is_connected()  # no public accessor
        if self._synced and not connected:
            self._synced = False
            self._logger.warning("ovsdb %s: connection lost; reconnecting, %d attachments "
                                 "kept until the database is read again",
                                 self.remote, len(self._current))
        elif (self._seqno is None
              and time.monotonic() - self._started_at > CONNECT_WARNING_SECONDS):
            self._warn_once(("never-connected",), "not connected after %.0f s; still trying",
                            CONNECT_WARNING_SECONDS)

    def _dispatch(self, event: AttachmentEvent, where: str) -> None:
        attach = event.kind is EventKind.ATTACH
        handler = self._on_attach if attach else self._on_detach
        self._logger.info("ovsdb %s: %s: VM %s %s switch %016x port %d", self.remote,
                          where, event.mac, "attached to" if attach else "detached from",
                          event.dpid, event.ofport)
        try:
            handler(event.dpid, event.ofport, event.mac)
        except Exception:  # noqa: BLE001 - one bad event must not stop the others
            self._logger.exception("ovsdb %s: %s handler failed for VM %s on switch %016x "
                                   "port %d (%s)", self.remote, event.kind.value,
                                   event.mac, event.dpid, event.ofport, where)

    # -- reading the replica ---------------------------------------------------
    def _read_attachments(self) -> Tuple[Snapshot, Dict[Attachment, str]]:
        """Every (dpid, ofport, mac) in the replica, with 'bridge B interface I'."""
        found: Dict[Attachment, str] = {}
        owners: Dict[int, str] = {}
        self._iface_ids = {}
        bridges = sorted(self._idl.tables["Bridge"].rows.values(), key=lambda b: b.name)
        self._known_dpids = {b.name: self._bridge_dpid(b) for b in bridges}
        for bridge in bridges:
            dpid = self._known_dpids[bridge.name]
            if dpid is None:
                continue  # reported once ovs-vswitchd has given it a dpid
            mine = self._bridge_attachments(bridge, dpid)
            if mine and owners.get(dpid, bridge.name) != bridge.name:
                self._warn_once(("dpid", bridge.name), "bridges %s and %s have the same "
                                "datapath id %016x", owners[dpid], bridge.name, dpid)
            if mine:
                owners.setdefault(dpid, bridge.name)
            found.update(mine)
        return frozenset(found), found

    def _bridge_attachments(self, bridge, dpid: int) -> Dict[Attachment, str]:
        found: Dict[Attachment, str] = {}
        for port in bridge.ports:
            for interface in port.interfaces:
                attachment = self._attachment(bridge.name, dpid, interface)
                if attachment is not None:
                    found[attachment] = f"bridge {bridge.name} interface {interface.name}"
        return found

    def _bridge_dpid(self, bridge) -> Optional[int]:
        """The bridge's dpid; the last one seen while the column is empty.

        ``datapath_id`` is ephemeral: an ovsdb-server restart empties it until
        ovs-vswitchd writes it again, which must not detach the bridge's VMs.
        """
        dpid = parse_datapath_id(_one(bridge.datapath_id))
        return dpid if dpid is not None else self._known_dpids.get(bridge.name)

    def _attachment(self, bridge: str, dpid: int, interface) -> Optional[Attachment]:
        text = interface.external_ids.get(ATTACHED_MAC)
        if text is None:
            return None
        ofport = usable_ofport(_one(interface.ofport))
        if ofport is None:
            return None  # no port number yet (or failed): reported once it has one
        mac = canonical_mac(text)
        if mac is None:
            self._warn_once(("mac", bridge, interface.name, text),
                            "bridge %s interface %s: %s=%r is not a MAC address; ignored",
                            bridge, interface.name, ATTACHED_MAC, text)
            return None
        iface_id = interface.external_ids.get(IFACE_ID)
        if iface_id:
            self._iface_ids[(dpid, ofport)] = iface_id[:128]
        return Attachment(dpid, ofport, mac)

    def _warn_once(self, key: Tuple[str, ...], message: str, *args) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self._logger.warning("ovsdb %s: " + message, self.remote, *args)


class ServerWatchers:
    """One watcher per OVSDB remote of the servers; every change goes to ``changed``
    (called from the watcher's green thread: the app posts it to its event loop)
    with the ``iface-id`` of the VM's port as the watcher saw it then."""

    def __init__(self, remotes: List[str], changed: ChangeCallback, logger) -> None:
        self._changed = changed
        self.watchers = [OvsdbWatcher(remote, self._attached, self._detached, logger)
                         for remote in remotes]

    def start(self) -> None:
        for watcher in self.watchers:
            watcher.start()

    def stop(self) -> None:
        for watcher in self.watchers:
            watcher.stop()

    def iface_id(self, dpid: int, ofport: int) -> Optional[str]:
        """The ``iface-id`` any server's OVSDB gives the interface on this port."""
        return next((w.iface_id(dpid, ofport) for w in self.watchers
                     if w.iface_id(dpid, ofport)), None)

    def attachments(self) -> List[Tuple[Attachment, Optional[str]]]:
        """Every attachment reported so far and not detached, with its iface-id."""
        return [(attachment, self.iface_id(attachment.dpid, attachment.ofport))
                for watcher in self.watchers for attachment in sorted(watcher.attachments())]

    def _attached(self, dpid: int, ofport: int, mac: str) -> None:
        self._changed(True, dpid, ofport, mac, self.iface_id(dpid, ofport))

    def _detached(self, dpid: int, ofport: int, mac: str) -> None:
        self._changed(False, dpid, ofport, mac, None)
