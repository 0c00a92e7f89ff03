"""SSL files for python-ovs (one set per process) and the topology's set-ssl guard."""

from __future__ import annotations

import subprocess

import ovs.stream
import pytest

from ryu_apps.lab import testbed as lab
from ryu_apps.tls import ovsdb_ssl
from ryu_apps.tls import pki


@pytest.fixture
def clean_python_ovs():
    """python-ovs's SSL files are process-wide: put back whatever was there."""
    stream = ovs.stream.Stream
    saved = (stream._SSL_private_key_file, stream._SSL_certificate_file,
             stream._SSL_ca_cert_file)
    stream._SSL_private_key_file = stream._SSL_certificate_file = None
    stream._SSL_ca_cert_file = None
    yield
    (stream._SSL_private_key_file, stream._SSL_certificate_file,
     stream._SSL_ca_cert_file) = saved


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    return pki.init(tmp_path_factory.mktemp("pki"))


def test_trusts_select_the_ca_file(made):
    assert ovsdb_ssl.controller_files(made).ca_cert == str(made.controller_ca)
    assert ovsdb_ssl.controller_files(made, ("switch",)).ca_cert == str(made.switch_ca)
    both = ovsdb_ssl.controller_files(made, ("switch", "controller"))
    assert both == ovsdb_ssl.SslFiles(str(made.key("controller")), str(made.cert("controller")),
                                      str(made.ca_bundle))
    with pytest.raises(ovsdb_ssl.SslConfigError, match="trusts must name"):
        ovsdb_ssl.controller_files(made, ("store",))


def test_only_ssl_remotes_need_files(clean_python_ovs):
    assert ovsdb_ssl.uses_ssl("tcp:127.0.0.1:1, ssl:127.0.0.1:2")
    assert not ovsdb_ssl.uses_ssl("unix:/var/run/openvswitch/db.sock,tcp:127.0.0.1:1")
    ovsdb_ssl.configure("tcp:127.0.0.1:1", None, "store")
    assert ovsdb_ssl.current() is None


def test_missing_or_unset_files_are_named(clean_python_ovs, made, tmp_path):
    files = ovsdb_ssl.SslFiles(str(tmp_path / "nokey.pem"), "", str(made.switch_ca))
    with pytest.raises(ovsdb_ssl.SslConfigError) as raised:
        ovsdb_ssl.configure("ssl:192.0.2.1:6640", files, "ovsdb")
    assert str(raised.value) == (f"ovsdb ssl:192.0.2.1:6640: cannot use SSL: "
                                 f"ovsdb_ssl_private_key {tmp_path}/nokey.pem: no such file; "
                                 "ovsdb_ssl_certificate is not set")
    assert ovsdb_ssl.current() is None


def test_one_set_of_files_per_process(clean_python_ovs, made):
    store = ovsdb_ssl.controller_files(made)
    ovsdb_ssl.configure("ssl:127.0.0.1:1", store, "store")
    assert ovsdb_ssl.current() == store
    ovsdb_ssl.configure("ssl:127.0.0.1:2", store, "store")   # the same again: fine
    with pytest.raises(ovsdb_ssl.SslConfigError, match=r"python-ovs holds one set per "
                                                       r"process"):
        ovsdb_ssl.configure("ssl:127.0.0.1:3", ovsdb_ssl.controller_files(made, ("switch",)),
                            "ovsdb")
    assert ovsdb_ssl.current() == store


def test_ryu_options_default_to_the_openflow_key_and_certificate():
    from oslo_config import cfg

    conf = cfg.ConfigOpts()   # like Ryu's, without touching the process-wide one
    conf.register_cli_opts([cfg.StrOpt("ctl-privkey"), cfg.StrOpt("ctl-cert")])
    conf([])
    conf.set_override("ctl_privkey", "/k.pem")
    conf.set_override("ctl_cert", "/c.pem")
    ovsdb_ssl.register_options(conf)
    conf.set_override("ovsdb_ssl_ca_cert", "/ca.pem", group="dynprov")
    assert ovsdb_ssl.from_ryu_conf(conf) == ovsdb_ssl.SslFiles("/k.pem", "/c.pem", "/ca.pem")
    conf.set_override("ovsdb_ssl_private_key", "/other.pem", group="dynprov")
    assert ovsdb_ssl.from_ryu_conf(conf).private_key == "/other.pem"


def test_without_ryus_openflow_options_nothing_is_assumed():
    from oslo_config import cfg

    conf = cfg.ConfigOpts()
    conf([])
    assert ovsdb_ssl.from_ryu_conf(conf) == ovsdb_ssl.SslFiles("", "", "")


# -- the topology's guard around this host's one OVS SSL setting ------------------

class FakeVsctl:
    """Stands in for ovs-vsctl get-ssl / set-ssl."""

    def __init__(self, current=None) -> None:
        self.current = current
        self.set_calls = []

    def __call__(self, command, **kwargs):
        if command[-1] == "get-ssl":
            out = "" if self.current is None else (
                "Private key: %s\nCertificate: %s\nCA Certificate: %s\nBootstrap: false\n"
                % self.current)
            return subprocess.CompletedProcess(command, 0, out, "")
        assert command[2] == "set-ssl", command
        self.set_calls.append(tuple(command[3:]))
        self.current = tuple(command[3:])
        return subprocess.CompletedProcess(command, 0, "", "")


@pytest.fixture
def topology():
    return lab.load_topology_module()


def switch_files(made):
    return (str(made.key("switch")), str(made.cert("switch")), str(made.controller_ca))


def test_switch_ssl_is_set_once_when_unset(topology, made, monkeypatch):
    fake = FakeVsctl()
    monkeypatch.setattr(topology.subprocess, "run", fake)
    assert topology.ensure_switch_ssl(str(made.directory)) == switch_files(made)
    assert topology.ensure_switch_ssl(str(made.directory)) == switch_files(made)
    assert fake.set_calls == [switch_files(made)]


def test_switch_ssl_naming_other_files_is_never_overwritten(topology, made, monkeypatch):
    theirs = ("/etc/x/key.pem", "/etc/x/cert.pem", "/etc/x/ca.pem")
    fake = FakeVsctl(theirs)
    monkeypatch.setattr(topology.subprocess, "run", fake)
    with pytest.raises(RuntimeError, match=r"name /etc/x/key.pem, /etc/x/cert.pem, "
                                           r"/etc/x/ca.pem, not the PKI at"):
        topology.ensure_switch_ssl(str(made.directory))
    assert fake.set_calls == [] and fake.current == theirs


def test_switch_ssl_needs_the_pki_files(topology, tmp_path, monkeypatch):
    monkeypatch.setattr(topology.subprocess, "run", FakeVsctl())
    with pytest.raises(RuntimeError, match=r"switch SSL files missing: .*switch-privkey.pem.*"
                                           r"dynprov pki init --dir"):
        topology.ensure_switch_ssl(str(tmp_path))
