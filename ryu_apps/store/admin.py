"""A blocking store session for the command line (no eventlet).

The CLI is the store's external management entity: it loads template
libraries (after validating them) and reads what is there. It uses the same
writes (:mod:`ryu_apps.store.writes`) as the controllers, with a plain
blocking IDL.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, TypeVar

import ovs.db.idl
import ovs.poller
from ovs.db.idl import Transaction

from ryu_apps.tls import ovsdb_ssl
from ryu_apps.store.replica import row_values
from ryu_apps.store.schema import TABLES, schema_helper
from ryu_apps.store.server import StoreError

T = TypeVar("T")


class AdminSession:
    """A connection to the store that replicates every table.

    ``ssl``: the files for ``ssl:`` remotes (the operator's: a controller
    certificate and the controller CA).
    """

    def __init__(self, remote: str, timeout: float = 10.0,
                 ssl: Optional[ovsdb_ssl.SslFiles] = None) -> None:
        ovsdb_ssl.configure(remote, ssl, "store")
        self.remote = remote
        self.timeout = timeout
        self.idl = ovs.db.idl.Idl(remote, schema_helper(), leader_only=False)
        self._wait_until(lambda: self.idl.state == self.idl.IDL_S_MONITORING
                         and self.idl._session.is_connected(),
                         f"store {remote}: not connected after {timeout} s")

    def close(self) -> None:
        self.idl.close()

    def __enter__(self) -> "AdminSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _wait_until(self, done: Callable[[], bool], failure: str) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            self.idl.run()
            if done():
                return
            if time.monotonic() > deadline:
                raise StoreError(failure)
            poller = ovs.poller.Poller()
            self.idl.wait(poller)
            poller.timer_wait(50)
            poller.block()

    def apply(self, write: Callable[[Any, Transaction], T], attempts: int = 20) -> T:
        """Commit ``write``; its value. Retries (re-running it) until committed."""
        last = ""
        for attempt in range(attempts):
            txn = Transaction(self.idl)
            value = write(self.idl, txn)
            status = txn.commit_block()
            if status in (Transaction.SUCCESS, Transaction.UNCHANGED):
                return value
            last = txn.get_error()
            time.sleep(min(0.05 * 2 ** attempt, 1.0))
            self.idl.run()
        raise StoreError(f"store {self.remote}: write failed after {attempts} attempts: {last}")

    def rows(self, table: str) -> List[Dict[str, object]]:
        """Every row of ``table``, as dicts with ``_uuid``."""
        self.idl.run()
        return [dict(row_values(row), _uuid=str(row.uuid))
                for row in self.idl.tables[table].rows.values()]

    def dump(self) -> Dict[str, List[Dict[str, object]]]:
        """Every row of every table."""
        return {table: self.rows(table) for table in TABLES}
