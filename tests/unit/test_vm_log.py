"""The log of provisioned VMs: each VM at DEBUG, one INFO summary per tick."""

from __future__ import annotations

import logging

from ryu_apps.app.verdicts import VmLog
from ryu_apps.core.binding import Binding, VmState
from ryu_apps.core.verdict import PacketVerdict


def _verdict(n: int, name: str = "web", state: VmState = VmState.PROVISIONING) -> PacketVerdict:
    return PacketVerdict(provisioned=Binding(n, f"00:fa:00:00:00:{n:02x}", 250, name, 100,
                                             0x11, 1000 + n, state=state))


def test_each_vm_at_debug_and_one_summary_per_tick(caplog):
    log = VmLog(logging.getLogger("dynprov-test"))
    caplog.set_level(logging.DEBUG, logger="dynprov-test")
    for n in range(1, 6):
        log.verdict(_verdict(n, "web" if n % 2 else "database"), 0x11, 1000 + n)
    log.summary()
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert debug[0] == ("provisioned VM 00:fa:00:00:00:01 on switch 0000000000000011 port "
                        "1001: template 250 'web', vlan 100, binding 1 (packet)")
    assert len(debug) == 5
    assert info == ["dynprov: 5 VMs provisioned (database 2, web 3): 00:fa:00:00:00:01 on "
                    "0000000000000011 port 1001; 00:fa:00:00:00:02 on 0000000000000011 port "
                    "1002; 00:fa:00:00:00:03 on 0000000000000011 port 1003; 2 more"]
    caplog.clear()
    log.summary()   # nothing since: no line
    log.verdict(_verdict(9), 0x11, 1009)
    log.verdict(_verdict(10, state=VmState.PRE_PROVISIONED), 0x11, 1010)   # not for real
    log.summary()
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        "dynprov: 1 VM provisioned (web 1): 00:fa:00:00:00:09 on 0000000000000011 port 1009"]


def test_summary_at_info_keeps_the_per_vm_line_out(caplog):
    log = VmLog(logging.getLogger("dynprov-test-info"))
    caplog.set_level(logging.INFO, logger="dynprov-test-info")
    log.verdict(_verdict(1), 0x11, 1001)
    log.summary()
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert caplog.records[0].getMessage().startswith("dynprov: 1 VM provisioned (web 1)")


def test_the_ofctl_service_says_nothing_of_the_apps_own_barriers(caplog):
    from ryu_apps.rest.flow_reads import quiet_ofctl_service
    quiet_ofctl_service()
    quiet_ofctl_service()   # once is enough; twice changes nothing
    caplog.set_level(logging.DEBUG, logger="OfctlService")
    logger = logging.getLogger("OfctlService")
    logger.error("unknown barrier xid %s", 7)
    logger.error("unknown error xid %s", 8)
    logger.error("unknown dpid %s", 9)
    assert [r.getMessage() for r in caplog.records] == ["unknown dpid 9"]
