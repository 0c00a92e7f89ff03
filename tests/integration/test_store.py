"""The store on real ovsdb-servers: the CLI, a Raft cluster, the green-thread client."""

import signal

import eventlet
import pytest

from ryu_apps.cli.main import main as dynprov
from ryu_apps.store.admin import AdminSession
from ryu_apps.store.client import StoreClient
from ryu_apps.store.server import CLUSTER, STANDALONE, Store
from ryu_apps.store.writes import (
    BindingRecord,
    binding_row,
    claim_binding,
    release_binding,
    request_from_owner,
    request_owner,
    withdraw_request,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(tmp_path):
    store = Store.create(tmp_path / "cluster", CLUSTER).start()
    yield store
    store.destroy()


def record(index: int, server: str = "s11") -> BindingRecord:
    return BindingRecord(f"00:fa:00:00:{index // 256:02x}:{index % 256:02x}", 250, "",
                         server, index + 1, None, "active")


def test_cli_starts_inspects_and_stops_a_standalone_store(tmp_path, capsys):
    directory = tmp_path / "alone"
    assert dynprov(["store", "start", "--dir", str(directory)]) == 0
    assert "standalone" in capsys.readouterr().out
    store = Store.open(directory)
    pid = store.members[0].pid()
    assert store.mode == STANDALONE and pid is not None
    assert dynprov(["store", "status", "--dir", str(directory)]) == 0
    assert f"pid {pid}" in capsys.readouterr().out
    assert dynprov(["store", "stop", "--destroy", "--dir", str(directory)]) == 0
    assert store.members[0].pid() is None
    assert not directory.exists()


def test_cli_cluster_loads_templates_once_and_refuses_bad_ones(tmp_path, capsys):
    directory = tmp_path / "c"
    assert dynprov(["store", "start", "--cluster", "--dir", str(directory)]) == 0
    try:
        store = Store.open(directory)
        assert [line["role"] for line in store.status()].count("leader") == 1
        assert dynprov(["store", "load-templates", "templates", "--dir", str(directory)]) == 0
        assert "library generation 1" in capsys.readouterr().out
        # the same library again is no change: the generation stays
        assert dynprov(["store", "load-templates", "templates", "--dir", str(directory)]) == 0
        assert "library generation 1" in capsys.readouterr().out
        bad = tmp_path / "bad.yaml"
        bad.write_text("templates:\n  - {id: 9, name: nine, description: x, vlan: 0,\n"
                       "     virtual_switch: {default_action: allow},\n"
                       "     access_port: {default_action: allow}}\n")
        assert dynprov(["store", "load-templates", str(bad), "--dir", str(directory)]) == 1
        err = capsys.readouterr().err
        assert f"{bad}: template 9 'nine': vlan: expected an integer 1-4094, got 0" in err
        with AdminSession(store.remote) as session:
            names = sorted(row["name"] for row in session.rows("Template"))
            assert "nine" not in names and "web" in names
            assert [row["generation"] for row in session.rows("Library")] == [1]
    finally:
        assert dynprov(["store", "stop", "--destroy", "--dir", str(directory)]) == 0


def test_no_acknowledged_binding_is_lost_when_the_leader_dies(cluster):
    client = StoreClient(cluster.remote, lambda changes: None,
                         conditions={"Binding": [["owner", "==", "p1"]]}).start()
    try:
        assert client.synced.wait() is True
        results = []

        def writer():
            for index in range(150):
                results.append(client.submit(claim_binding(record(index), "p1")).wait(30))
                eventlet.sleep(0.002)

        thread = eventlet.spawn(writer)
        eventlet.sleep(0.2)
        cluster.kill_member(cluster.leader(), signal.SIGKILL)
        thread.wait()
        assert all(result is not None and result.ok for result in results), results
        with AdminSession(cluster.remote) as session:
            rows = session.rows("Binding")
        assert sorted(row["mac"] for row in rows) == sorted(record(i).mac for i in range(150))
        # each claim took effect once: no retried write bumped a version twice
        assert {row["version"] for row in rows} == {1}
    finally:
        client.stop()


def test_a_retried_write_has_no_second_effect(cluster):
    client = StoreClient(cluster.remote, lambda changes: None).start()
    try:
        client.synced.wait()
        first = client.submit(claim_binding(record(1), "p1")).wait(10)
        again = client.submit(claim_binding(record(1), "p1")).wait(10)
        assert first.ok and again.ok and first.value == again.value == 1
        gone = client.submit(release_binding(record(1).mac, "p1")).wait(10)
        twice = client.submit(release_binding(record(1).mac, "p1")).wait(10)
        assert gone.value is True and twice.value is False
    finally:
        client.stop()


def test_each_process_sees_its_own_bindings_and_hand_offs_to_it(cluster):
    seen = {"p1": [], "p2": []}
    clients = {name: StoreClient(cluster.remote, seen[name].extend, conditions={
        "Binding": [["owner", "==", name], ["requested_owner", "includes", name]]}).start()
        for name in seen}
    try:
        for client in clients.values():
            client.synced.wait()
        p1, p2 = clients["p1"], clients["p2"]
        assert p1.submit(claim_binding(record(5), "p1")).wait(10).ok
        assert p1.submit(claim_binding(record(6), "p1")).wait(10).ok
        eventlet.sleep(0.3)
        assert len(p2.idl.tables["Binding"].rows) == 0
        handed = p1.submit(request_owner(record(5).mac, "p1", "p2", "s21", 3)).wait(10)
        assert handed.ok and handed.value is True
        _wait_for(lambda: any(c.values.get("mac") == record(5).mac for c in seen["p2"]))
        row = [c for c in seen["p2"] if c.values.get("mac") == record(5).mac][-1].values
        assert row["requested_owner"] == "p2" and row["requested_server"] == "s21"
        assert row["owner"] == "p1" and row["state"] == "migrating"
        # the destination claims it; the source no longer sees it as its own
        assert p2.submit(claim_binding(record(5, server="s21"), "p2")).wait(10).ok
        _wait_for(lambda: record(5).mac not in _macs(p1))
        assert _macs(p1) == {record(6).mac}
        assert _macs(p2) == {record(5).mac}
    finally:
        for client in clients.values():
            client.stop()


def test_a_destination_asks_the_owner_for_a_vm_it_expects(cluster):
    """The pull side of a hand-off: the destination names itself on a row it fetched by
    MAC; the owner sees the request on its own row; a repeat changes nothing."""
    seen = {"p1": [], "p2": []}
    mac = record(7).mac
    conditions = {"p1": [["owner", "==", "p1"], ["requested_owner", "includes", "p1"]],
                  "p2": [["owner", "==", "p2"], ["requested_owner", "includes", "p2"],
                         ["mac", "==", mac]]}
    clients = {name: StoreClient(cluster.remote, seen[name].extend,
                                 conditions={"Binding": conditions[name]}).start()
               for name in seen}
    try:
        for client in clients.values():
            client.synced.wait()
        p1, p2 = clients["p1"], clients["p2"]
        assert p1.submit(claim_binding(record(7), "p1")).wait(10).value == 1
        _wait_for(lambda: mac in _macs(p2))
        asked = p2.submit(request_from_owner(mac, "p2", "s21", 4)).wait(10)
        assert asked.ok and asked.value is True
        _wait_for(lambda: any(c.values.get("requested_owner") == "p2" for c in seen["p1"]))
        row = [c for c in seen["p1"] if c.values.get("mac") == mac][-1].values
        assert (row["owner"], row["requested_server"], row["requested_port"]) == ("p1", "s21", 4)
        assert row["state"] == "migrating" and row["version"] == 2
        again = p2.submit(request_from_owner(mac, "p2", "s21", 4)).wait(10)
        assert again.value is True
        eventlet.sleep(0.2)
        assert [c for c in seen["p1"] if c.values.get("mac") == mac][-1].values["version"] == 2
        # the VM never arrives: the destination withdraws; only its own request goes
        assert p2.submit(withdraw_request(mac, "p3")).wait(10).value is False
        assert p2.submit(withdraw_request(mac, "p2")).wait(10).value is True
        _wait_for(lambda: [c for c in seen["p1"] if c.values.get("mac") == mac][-1]
                  .values["requested_owner"] is None)
        row = [c for c in seen["p1"] if c.values.get("mac") == mac][-1].values
        assert (row["owner"], row["state"], row["version"]) == ("p1", "active", 3)
        assert p2.submit(withdraw_request(mac, "p2")).wait(10).value is False
        assert p2.submit(claim_binding(record(7, server="s21"), "p2")).wait(10).ok
        assert p2.submit(request_from_owner(mac, "p2", "s21", 4)).wait(10).value is False
    finally:
        for client in clients.values():
            client.stop()


def test_a_bindings_lease_ends_travel_through_a_real_store(tmp_path):
    """A claim's DHCP and DHCPv6 lease ends (schema 1.4.0) come back to another process's
    replica as written, and claiming the same record again writes nothing."""
    store = Store.create(tmp_path / "store", STANDALONE).start()
    seen: list = []
    leased = BindingRecord("00:fa:00:00:5e:02", 250, "", "s11", 3, "10.0.100.1", "active",
                           ("2001:db8::50",), "dhcp", 1_800_000_600.5,
                           (("2001:db8::50", 1_800_007_200.25),))
    owner = StoreClient(store.remote, lambda changes: None).start()
    reader = StoreClient(store.remote, seen.extend).start()
    try:
        assert owner.synced.wait() and reader.synced.wait()
        assert owner.submit(claim_binding(leased, "p1")).wait(10).value == 1
        _wait_for(lambda: any(c.values.get("mac") == leased.mac for c in seen))
        row = binding_row([c for c in seen if c.values.get("mac") == leased.mac][-1].values)
        assert (row.ip, row.ip_source, row.lease_end, row.lease6_ends) == (
            "10.0.100.1", "dhcp", 1_800_000_600.5, (("2001:db8::50", 1_800_007_200.25),))
        assert owner.submit(claim_binding(leased, "p1")).wait(10).value == 1   # unchanged
    finally:
        owner.stop()
        reader.stop()
        store.destroy()


def _macs(client):
    return {row.mac for row in client.idl.tables["Binding"].rows.values()}


def _wait_for(condition, timeout=5.0):
    with eventlet.Timeout(timeout):
        while not condition():
            eventlet.sleep(0.01)
