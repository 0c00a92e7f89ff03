#!/usr/bin/env python3
"""libvirt qemu hook for dynprov: tell the controller when a VM starts, stops or
arrives from a migration (install as /etc/libvirt/hooks/qemu, mode 0755, then
restart libvirtd; docs/hypervisors.md).

libvirt runs it as ``qemu GUEST OPERATION SUB_OPERATION -`` with the domain XML
on stdin. For each ``<interface>`` with an Open vSwitch virtualport it POSTs a
notification to ``/dynprov/notifications``: ``started`` (with the bridge as the
server) when the guest starts or finishes an incoming migration, ``shutdown``
when it stops. Settings from the environment of libvirtd or
/etc/dynprov/hook.env (KEY=VALUE lines): DYNPROV_CONTROLLER (default
http://127.0.0.1:8080), DYNPROV_TOKEN_FILE (an admin token), DYNPROV_CA_CERT.
It never blocks the guest: errors are logged to syslog and it exits 0 (a hook
that fails stops libvirt's operation). It needs only the Python standard library.
"""

import json
import os
import ssl
import sys
import syslog
import urllib.error
import urllib.request
from xml.etree import ElementTree

ENV_FILE = "/etc/dynprov/hook.env"
EVENTS = {("started", "begin"): "started", ("migrate", "begin"): None,
          ("started", "-"): "started", ("stopped", "end"): "shutdown",
          ("release", "end"): None}


def settings() -> dict:
    found = dict(os.environ)
    if os.path.exists(ENV_FILE):
        for line in open(ENV_FILE, encoding="utf-8"):
            key, _, value = line.strip().partition("=")
            if key and not key.startswith("#"):
                found.setdefault(key, value)
    return found


def interfaces(domain_xml: str):
    """(MAC, bridge) of each Open vSwitch interface of the domain."""
    root = ElementTree.fromstring(domain_xml)
    for interface in root.iter("interface"):
        port = interface.find("virtualport")
        mac, source = interface.find("mac"), interface.find("source")
        if port is not None and port.get("type") == "openvswitch" and \
                mac is not None and source is not None:
            yield mac.get("address"), source.get("bridge")


def notify(config: dict, body: dict) -> None:
    url = config.get("DYNPROV_CONTROLLER", "http://127.0.0.1:8080").rstrip("/")
    token = open(config["DYNPROV_TOKEN_FILE"], encoding="utf-8").read().split()[-1]
    request = urllib.request.Request(
        url + "/dynprov/notifications", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    context = ssl.create_default_context(cafile=config.get("DYNPROV_CA_CERT")) \
        if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as answer:
            syslog.syslog(f"dynprov: {body['event']} {body['mac']}: {answer.status}")
    except urllib.error.HTTPError as error:   # 409 etc.: said, not fatal
        syslog.syslog(f"dynprov: {body['event']} {body['mac']}: {error.code} "
                      f"{error.read()[:200]!r}")


def main(argv) -> int:
    if len(argv) < 4:
        return 0
    event = EVENTS.get((argv[2], argv[3]))
    if event is None:
        return 0
    try:
        config = settings()
        for mac, bridge in interfaces(sys.stdin.read()):
            body = {"event": event, "mac": mac}
            if event == "started":
                body["server"] = bridge
            notify(config, body)
    except Exception as error:  # noqa: BLE001 - never fail the guest's operation
        syslog.syslog(syslog.LOG_WARNING, f"dynprov hook for {argv[1]}: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
