"""Run the store on loopback: one ``ovsdb-server``, or three in a Raft cluster.

A store lives in a run directory (``/var/run/dynprov-store/NAME`` by default)
holding its database files, logs, pid files, control sockets and
``store.json``, which records what was started so that ``stop`` and
``status`` work from another process. Servers run detached
(``--detach``) and are stopped by the PID in their own pid file: nothing
else on the machine is touched.

A store created with SSL files (a controller certificate and the controller
CA, :func:`ryu_apps.tls.ovsdb_ssl.controller_files`) serves its clients on
``pssl:`` and its members talk Raft over ``ssl:``: only holders of a
certificate signed by that CA can read, write or join it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional

from ryu_apps.tls.ovsdb_ssl import SslFiles
from ryu_apps.store.schema import DB_NAME, SCHEMA_PATH

DEFAULT_RUN_ROOT = Path("/var/run/dynprov-store")
STATE_FILE = "store.json"
STANDALONE, CLUSTER = "standalone", "cluster"
#: ovsdb-server's default Raft election timer (ms).
ELECTION_TIMER_MS = 1000
#: The timer our clusters run with: a leader loss costs writes ~1 s instead of
#: ~1.3-2.3 s (benchmarks/store_failover.py), still far above loopback latency.
CLUSTER_ELECTION_TIMER_MS = 500


class StoreError(RuntimeError):
    """The store could not be started, stopped or inspected (the message says why)."""


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Member:
    """One ``ovsdb-server`` of the store."""

    name: str
    client_port: int
    raft_port: int  # 0 for a standalone server
    directory: str
    ssl: bool = False  # clients and Raft peers over SSL

    @property
    def db_file(self) -> Path:
        return Path(self.directory) / f"{self.name}.db"

    @property
    def pid_file(self) -> Path:
        return Path(self.directory) / f"{self.name}.pid"

    @property
    def control(self) -> Path:
        return Path(self.directory) / f"{self.name}.ctl"

    @property
    def log_file(self) -> Path:
        return Path(self.directory) / f"{self.name}.log"

    @property
    def scheme(self) -> str:
        return "ssl" if self.ssl else "tcp"

    @property
    def remote(self) -> str:
        return f"{self.scheme}:127.0.0.1:{self.client_port}"

    @property
    def listen(self) -> str:
        """The passive remote ovsdb-server listens on for clients."""
        return f"p{self.scheme}:{self.client_port}:127.0.0.1"

    @property
    def raft_address(self) -> str:
        return f"{self.scheme}:127.0.0.1:{self.raft_port}"

    def pid(self) -> Optional[int]:
        """The server's PID if it is running."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return pid


class Store:
    """A store (standalone or cluster) described by its run directory."""

    def __init__(self, directory: Path, mode: str, members: List[Member],
                 ssl: Optional[SslFiles] = None) -> None:
        self.directory = Path(directory)
        self.mode = mode
        self.members = members
        self.ssl = ssl

    # -- creating and finding ------------------------------------------------
    @classmethod
    def create(cls, directory: Path, mode: str = STANDALONE, size: int = 3,
               ssl: Optional[SslFiles] = None) -> "Store":
        """Create the database files of a new store in ``directory`` (not started).

        With ``ssl``, members serve clients on ``pssl:`` and Raft over ``ssl:``
        with these files (their certificate, and the CA clients and peers need).
        """
        directory = Path(directory)
        if (directory / STATE_FILE).exists():
            raise StoreError(f"{directory}: a store already exists here "
                             f"(dynprov store stop --destroy to remove it)")
        if ssl is not None and ssl.problems():
            raise StoreError(f"{directory}: cannot serve SSL: {'; '.join(ssl.problems())}")
        directory.mkdir(parents=True, exist_ok=True)
        secure = ssl is not None
        if mode == STANDALONE:
            members = [Member("s1", free_port(), 0, str(directory), secure)]
            _run(["ovsdb-tool", "create", str(members[0].db_file), str(SCHEMA_PATH)])
        elif mode == CLUSTER:
            if size < 1:
                raise StoreError(f"cluster size must be at least 1, got {size}")
            members = [Member(f"s{i + 1}", free_port(), free_port(), str(directory), secure)
                       for i in range(size)]
            first = members[0]
            _run(["ovsdb-tool", "create-cluster", str(first.db_file), str(SCHEMA_PATH),
                  first.raft_address])
            for member in members[1:]:
                _run(["ovsdb-tool", "join-cluster", str(member.db_file), DB_NAME,
                      member.raft_address, first.raft_address])
        else:
            raise StoreError(f"store mode must be {STANDALONE} or {CLUSTER}, got {mode!r}")
        store = cls(directory, mode, members, ssl)
        store._save()
        return store

    @classmethod
    def open(cls, directory: Path) -> "Store":
        """The store whose ``store.json`` is in ``directory``."""
        state_file = Path(directory) / STATE_FILE
        try:
            state = json.loads(state_file.read_text())
        except FileNotFoundError:
            raise StoreError(f"{directory}: no store here (no {STATE_FILE}); "
                             "dynprov store start creates one") from None
        ssl = state.get("ssl")
        return cls(Path(directory), state["mode"],
                   [Member(**member) for member in state["members"]],
                   SslFiles(**ssl) if ssl else None)

    def _save(self) -> None:
        state: Dict[str, object] = {"mode": self.mode, "database": DB_NAME,
                 "remote": self.remote, "members": [asdict(m) for m in self.members]}
        if self.ssl is not None:
            state["ssl"] = asdict(self.ssl)
        (self.directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    @property
    def remote(self) -> str:
        """Every member's client address, comma-separated (what clients connect to)."""
        return ",".join(member.remote for member in self.members)

    def member(self, name: str) -> Member:
        for member in self.members:
            if member.name == name:
                return member
        raise StoreError(f"{self.directory}: no member {name!r} "
                         f"(members: {', '.join(m.name for m in self.members)})")

    # -- running ---------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> "Store":
        """Start every member not running; return once the database answers."""
        for member in self.members:
            self.start_member(member.name, wait=False)
        self.wait_ready(timeout)
        if self.mode == CLUSTER:
            self.wait_for_leader(timeout)
            self.set_election_timer(CLUSTER_ELECTION_TIMER_MS)
        self.upgrade_schema()
        return self

    def upgrade_schema(self) -> bool:
        """Convert the database to the schema shipped with this checkout if it is older
        (a store created by an earlier dynprov); True when it was converted."""
        remote = self.remote
        for candidate in remote.split(","):
            check = subprocess.run(["ovsdb-client", *self._client_ssl(), "needs-conversion",
                                    candidate, str(SCHEMA_PATH)], capture_output=True,
                                   text=True, timeout=10, check=False)
            if check.returncode != 0:
                continue   # not the leader, or not answering: try the next member
            if check.stdout.strip() != "yes":
                return False
            _run(["ovsdb-client", *self._client_ssl(), "convert", candidate, str(SCHEMA_PATH)])
            return True
        raise StoreError(f"store {remote}: no member answered 'ovsdb-client needs-conversion'")

    def _client_ssl(self) -> List[str]:
        """ovsdb-client's SSL options for this store's members (none without SSL)."""
        return self.ssl.client_options() if self.ssl else []

    def start_member(self, name: str, wait: bool = True) -> None:
        """Start one member (no-op if it runs)."""
        member = self.member(name)
        if member.pid() is not None:
            return
        _run(["ovsdb-server", str(member.db_file), "--detach", "--no-chdir",
              f"--pidfile={member.pid_file}", f"--unixctl={member.control}",
              f"--log-file={member.log_file}", f"--remote={member.listen}",
              *(self.ssl.server_options() if self.ssl else [])])
        if wait:
            self.wait_ready(members=[member])

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every running member (by the PID in its pid file)."""
        for member in self.members:
            self.kill_member(member.name, signal.SIGTERM, timeout)

    def kill_member(self, name: str, how: int = signal.SIGKILL,
                    timeout: float = 10.0) -> Optional[int]:
        """Send ``how`` to one member and wait until it is gone; its PID or None."""
        member = self.member(name)
        pid = member.pid()
        if pid is None:
            return None
        os.kill(pid, how)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.02)
        else:
            raise StoreError(f"member {name} (pid {pid}) still running {timeout} s "
                             f"after signal {how}")
        member.pid_file.unlink(missing_ok=True)
        return pid

    def destroy(self) -> None:
        """Stop the store and delete its files (only the files this store made)."""
        self.stop()
        for member in self.members:
            for path in (member.db_file, member.log_file, member.control, member.pid_file):
                path.unlink(missing_ok=True)
            for stale in Path(member.directory).glob(f".{member.name}.db.~lock~"):
                stale.unlink(missing_ok=True)
        (self.directory / STATE_FILE).unlink(missing_ok=True)
        try:
            self.directory.rmdir()
        except OSError:
            pass  # something else lives there: leave it

    # -- inspecting ------------------------------------------------------------
    def wait_ready(self, timeout: float = 15.0,
                   members: Optional[List[Member]] = None) -> None:
        """Wait until each member (all by default) answers on its client port."""
        deadline = time.monotonic() + timeout
        for member in members or self.members:
            while True:
                probe = subprocess.run(["ovsdb-client", "--timeout=2", *self._client_ssl(),
                                        "list-dbs", member.remote],
                                       capture_output=True, text=True)
                if probe.returncode == 0 and DB_NAME in probe.stdout.split():
                    break
                if time.monotonic() > deadline:
                    raise StoreError(f"member {member.name} not answering on {member.remote} "
                                     f"after {timeout} s: {probe.stderr.strip()} "
                                     f"(log: {member.log_file})")
                time.sleep(0.05)

    def cluster_status(self, name: str) -> Dict[str, str]:
        """``cluster/status`` of one member, as ``{field: value}`` (empty if not running)."""
        member = self.member(name)
        if self.mode != CLUSTER or member.pid() is None:
            return {}
        result = subprocess.run(["ovs-appctl", "-t", str(member.control), "cluster/status",
                                 DB_NAME], capture_output=True, text=True)
        status: Dict[str, str] = {}
        for line in result.stdout.splitlines():
            key, sep, value = line.partition(":")
            if sep and not line.startswith(" "):
                status[key.strip()] = value.strip()
        return status

    def leader(self) -> Optional[str]:
        """The name of the member that is Raft leader now (None if none)."""
        for member in self.members:
            if self.cluster_status(member.name).get("Role") == "leader":
                return member.name
        return None

    def wait_for_leader(self, timeout: float = 15.0) -> str:
        """Wait until some member is leader; its name."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None:
                return leader
            time.sleep(0.05)
        raise StoreError(f"{self.directory}: no Raft leader after {timeout} s")

    def set_election_timer(self, milliseconds: int) -> None:
        """Set the Raft election timer (on the leader; at most doubling per step)."""
        leader = self.member(self.wait_for_leader())
        current = int(self.cluster_status(leader.name).get("Election timer",
                                                           ELECTION_TIMER_MS))
        while current != milliseconds:
            current = milliseconds if milliseconds < current else min(milliseconds, current * 2)
            leader = self.member(self.wait_for_leader())
            _run(["ovs-appctl", "-t", str(leader.control), "cluster/change-election-timer",
                  DB_NAME, str(current)])

    def status(self) -> List[Dict[str, object]]:
        """One line of facts per member: name, address, pid, role."""
        lines: List[Dict[str, object]] = []
        for member in self.members:
            cluster = self.cluster_status(member.name)
            lines.append({"member": member.name, "remote": member.remote,
                          "pid": member.pid(), "role": cluster.get("Role", "standalone"
                                                                  if self.mode == STANDALONE
                                                                  else "-"),
                          "term": cluster.get("Term", "-"),
                          "control": str(member.control)})
        return lines


def _run(command: List[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise StoreError(f"{' '.join(command)}: exit {result.returncode}: "
                         f"{result.stderr.strip() or result.stdout.strip()}")
    return result.stdout
