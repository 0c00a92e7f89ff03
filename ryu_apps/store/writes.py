"""Writes to the store: each states the end state it wants, so a retry is harmless.

A write is ``write(idl, txn) -> value``: it reads the replica, adds operations
to the transaction and returns a value for the caller. Run twice (the first
outcome unknown, e.g. the connection dropped before the reply), the second run
sees the first one's effect in the refreshed replica and changes nothing more.
Rows that several processes write (``Library``, ``Binding``) carry a
``version`` or ``generation`` column that every write checks with ``verify``
and bumps, so a write based on a stale replica fails ("try again") instead of
overwriting a newer state; the unique ``mac`` index turns two processes
inserting the same binding at once into one success and one retry.
"""

from __future__ import annotations

import time
from typing import Callable, Mapping, Optional, Sequence

from ryu_apps.core.binding import IP_DHCP, IP_SOURCES
from ryu_apps.core.handoff_values import (
    Adopt,
    BindingRecord,
    BindingRow,
    Claim,
    LeaseEnds6,
    Release,
    ReportDevices,
    RequestFromOwner,
    RequestOwner,
    Withdraw,
    Write,
)
from ryu_apps.store.library_rows import LibraryRows, TemplateRow
from ryu_apps.store.schema import BINDING, DEPLOYMENT, LIBRARY, PROCESS, TEMPLATE


def find(idl, table: str, **columns):
    """The first row of ``table`` in the replica whose columns equal ``columns``."""
    for row in idl.tables[table].rows.values():
        if all(getattr(row, name) == value for name, value in columns.items()):
            return row
    return None


def _set_if_changed(row, column: str, value) -> bool:
    if getattr(row, column) != value:
        setattr(row, column, value)
        return True
    return False


# -- the library ------------------------------------------------------------------
def stored_rows(idl, domain: str) -> Optional[LibraryRows]:
    """The domain's library as the replica holds it (None if it has none)."""
    library = find(idl, LIBRARY, domain=domain)
    if library is None:
        return None
    templates = sorted((TemplateRow(row.template_id, row.name, row.source, row.body)
                        for row in idl.tables[TEMPLATE].rows.values() if row.domain == domain),
                       key=lambda row: row.template_id)
    return LibraryRows(domain, library.defaults, tuple(templates))


def put_library(rows: LibraryRows) -> Callable:
    """Make the domain's library in the store equal ``rows``; the new generation.

    Templates are matched by id: unchanged rows are left alone, changed rows
    updated, missing ones inserted, others deleted, and the domain's
    ``Library.generation`` bumped once, all in one transaction.
    """
    def write(idl, txn) -> int:
        library = find(idl, LIBRARY, domain=rows.domain)
        if library is not None and stored_rows(idl, rows.domain) == rows:
            return library.generation  # already so: a retried load changes nothing
        if library is None:
            library = txn.insert(idl.tables[LIBRARY])
            library.domain, library.defaults = rows.domain, rows.defaults
            generation = 1
        else:
            library.verify("generation")
            generation = library.generation + 1
            _set_if_changed(library, "defaults", rows.defaults)
        library.generation = generation
        wanted = rows.by_id()
        for row in list(idl.tables[TEMPLATE].rows.values()):
            if row.domain != rows.domain:
                continue
            new = wanted.pop(row.template_id, None)
            if new is None:
                row.delete()
                continue
            for column in ("name", "source", "body"):
                _set_if_changed(row, column, getattr(new, column))
        for new in wanted.values():
            row = txn.insert(idl.tables[TEMPLATE])
            row.domain, row.template_id = rows.domain, new.template_id
            row.name, row.source, row.body = new.name, new.source, new.body
        return generation
    return write


# -- bindings ------------------------------------------------------------------------
__all__ = ["BindingRecord"]   # defined in the core (the hand-off's values), used here


def binding_row(values: Mapping[str, object]) -> BindingRow:
    """A ``Binding`` row's values (``replica.row_values``) as the hand-off reads them."""
    def text(name: str) -> Optional[str]:
        value = values.get(name)
        return str(value) if value else None

    lease_end = values.get("lease_end")
    return BindingRow(str(values["mac"]), str(values.get("owner") or ""),
                      str(values.get("server") or ""), text("requested_owner"),
                      text("requested_server"), text("ip"),
                      _texts(values.get("ipv6")), text("ip_source"),
                      float(lease_end) if isinstance(lease_end, (int, float)) else None,
                      _lease_ends(values.get("lease6_ends")))


def _lease_ends(value: object) -> LeaseEnds6:
    """The ``lease6_ends`` map column as (address, end) pairs, sorted (none when absent,
    in a row an older dynprov wrote)."""
    if not isinstance(value, Mapping):
        return ()
    return tuple(sorted((str(address), float(end)) for address, end in value.items()
                        if isinstance(end, (int, float))))


def _texts(value: object) -> tuple[str, ...]:
    """A set column's strings, sorted (None or a lone value as the replica gives them)."""
    if not value:
        return ()
    items = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
    return tuple(sorted(str(item) for item in items))


def write_of(intent: Write, owner: str) -> Callable:
    """The transaction that carries out one of the hand-off's write intents for process
    ``owner``."""
    if isinstance(intent, (Claim, Adopt)):
        return (claim_binding if isinstance(intent, Claim) else adopt_binding)(
            intent.record, owner)
    if isinstance(intent, Release):
        return release_binding(intent.mac, owner)
    if isinstance(intent, RequestOwner):
        return request_owner(intent.mac, owner, intent.destination, intent.server,
                             intent.port)
    if isinstance(intent, RequestFromOwner):
        return request_from_owner(intent.mac, owner, intent.server, intent.port)
    if isinstance(intent, Withdraw):
        return withdraw_request(intent.mac, owner)
    if isinstance(intent, ReportDevices):
        return report_process(owner, devices=intent.devices)
    raise TypeError(f"not a store write intent: {intent!r}")


def claim_binding(record: BindingRecord, owner: str) -> Callable:
    """Own the VM's binding: insert it, or take it over (ending any hand-off to us).

    Returns the binding's version after the write.
    """
    def write(idl, txn) -> int:
        row = find(idl, BINDING, mac=record.mac)
        new_owner = row is None or row.owner != owner
        if row is None:
            row = txn.insert(idl.tables[BINDING])
            row.mac = record.mac
            version = 1
        else:
            row.verify("version")
            row.verify("owner")
            version = row.version
            if _matches(row, record, owner) and not row.requested_owner:
                return version  # already so: nothing to write
            version += 1
        row.version = version
        if new_owner:
            row.since = time.time()  # when this owner took the VM
        row.owner = owner
        row.template_id, row.domain = record.template_id, record.domain
        row.server, row.port, row.state = record.server, record.port, record.state
        row.ip = [record.ip] if record.ip else []
        row.ipv6 = list(record.ipv6)
        row.ip_source = _ip_source(record)
        row.lease_end = _lease_end(record)
        row.lease6_ends = dict(record.lease6_ends)
        row.requested_owner, row.requested_server, row.requested_port = [], [], []
        return version
    return write


def adopt_binding(record: BindingRecord, owner: str) -> Callable:
    """After a restart: claim a VM the switches gave back, unless another process owns it.

    Returns True if ``owner`` holds the binding afterwards, False if another does.
    """
    claim = claim_binding(record, owner)

    def write(idl, txn) -> bool:
        row = find(idl, BINDING, mac=record.mac)
        if row is not None and row.owner != owner:
            row.verify("owner")
            return False
        claim(idl, txn)
        return True
    return write


def _matches(row, record: BindingRecord, owner: str) -> bool:
    return (row.owner == owner and row.template_id == record.template_id
            and row.domain == record.domain and row.server == record.server
            and row.port == record.port and row.state == record.state
            and list(row.ip) == ([record.ip] if record.ip else [])
            and sorted(row.ipv6) == list(record.ipv6)
            and list(row.ip_source) == _ip_source(record)
            and list(row.lease_end) == _lease_end(record)
            and dict(row.lease6_ends) == dict(record.lease6_ends))


def _lease_end(record: BindingRecord) -> list:
    """The row's ``lease_end`` column: when the DHCP lease of its address ends, as
    wall-clock seconds (every process of the store reads the same clock); none
    without an address bound from DHCP, or with a lease that never ends."""
    return [record.lease_end] if record.ip and record.ip_source == IP_DHCP \
        and record.lease_end is not None else []


def _ip_source(record: BindingRecord) -> list:
    """The row's ``ip_source`` column: how its address was bound (none without one)."""
    return [record.ip_source] if record.ip and record.ip_source in IP_SOURCES else []


def request_owner(mac: str, source: str, destination: str, server: str,
                  port: int) -> Callable:
    """Source hands the VM over: name the destination on the binding it owns.

    Returns False (and writes nothing) if the source no longer owns the binding.
    """
    def write(idl, txn) -> bool:
        row = find(idl, BINDING, mac=mac)
        if row is None or row.owner != source:
            return False
        _name_destination(row, destination, server, port)
        return True
    return write


def request_from_owner(mac: str, destination: str, server: str, port: int) -> Callable:
    """Destination pulls a hand-off: the VM's port appeared on one of its servers while
    another process still owns the VM; name the destination on that binding (the
    owner then delivers the VM's frames toward the shared fabric too).

    Returns False (and writes nothing) if no other process owns the binding.
    """
    def write(idl, txn) -> bool:
        row = find(idl, BINDING, mac=mac)
        if row is None or row.owner == destination:
            return False
        _name_destination(row, destination, server, port)
        return True
    return write


def withdraw_request(mac: str, destination: str) -> Callable:
    """Destination gives up a hand-off to it (the VM never arrived: its port there is
    gone): clear the request on the binding, so the owner stops handing the VM over.

    Returns False (and writes nothing) if the binding does not name ``destination``.
    """
    def write(idl, txn) -> bool:
        row = find(idl, BINDING, mac=mac)
        if row is None or row.owner == destination or \
                list(row.requested_owner) != [destination]:
            return False
        row.verify("version")
        row.verify("owner")
        row.requested_owner, row.requested_server, row.requested_port = [], [], []
        row.state = "active"
        row.version = row.version + 1
        return True
    return write


def _name_destination(row, destination: str, server: str, port: int) -> None:
    """Write the hand-off on a binding row (a new version), unless it says so already."""
    row.verify("version")
    row.verify("owner")
    if (list(row.requested_owner) == [destination] and list(row.requested_server) == [server]
            and list(row.requested_port) == [port] and row.state == "migrating"):
        return
    row.requested_owner, row.requested_server = [destination], [server]
    row.requested_port = [port]
    row.state = "migrating"
    row.version = row.version + 1


def release_binding(mac: str, owner: str) -> Callable:
    """Delete the VM's binding if ``owner`` still owns it; whether it was deleted."""
    def write(idl, txn) -> bool:
        row = find(idl, BINDING, mac=mac)
        if row is None or row.owner != owner:
            return False
        row.verify("version")
        row.verify("owner")
        row.delete()
        return True
    return write


# -- processes ------------------------------------------------------------------------
def report_process(name: str, generation: Optional[int] = None,
                   started: Optional[float] = None,
                   devices: Optional[Sequence[str]] = None) -> Callable:
    """Record that process ``name`` is alive, the library generation it applied, its switches."""
    def write(idl, txn) -> None:
        row = find(idl, PROCESS, name=name)
        if row is None:
            row = txn.insert(idl.tables[PROCESS])
            row.name = name
            row.library_generation = generation or 0
            row.started = started or time.time()
            row.devices = list(devices or [])
            if generation:
                row.library_applied = time.time()
            row.heartbeat = time.time()
            return
        if started is not None:
            row.started = started
        now = time.time()
        row.heartbeat = now
        if generation is not None and row.library_generation != generation:
            row.library_generation = generation
            row.library_applied = now
        if devices is not None and sorted(row.devices) != sorted(devices):
            row.devices = list(devices)
    return write


# -- the deployment ------------------------------------------------------------------
TOPOLOGY_SECRET_ROW = "topology"


def share_topology_secret(candidate: str) -> Callable:
    """The deployment's LLDP signing secret (hex): the store's if it has one, else
    ``candidate``, written once (the unique ``name`` index makes two processes
    writing at once one success and one retry that reads the winner's)."""
    def write(idl, txn) -> str:
        row = find(idl, DEPLOYMENT, name=TOPOLOGY_SECRET_ROW)
        if row is not None:
            return row.secret
        row = txn.insert(idl.tables[DEPLOYMENT])
        row.name, row.secret = TOPOLOGY_SECRET_ROW, candidate
        return candidate
    return write
