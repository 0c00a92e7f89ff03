"""The migration demo: a VM live-migrates between access switches while probed at 1 ms.

The README's main job. On the default topology and library it starts the
controller (watching the servers' OVSDB), provisions every VM, shows the
templates at work, then live-migrates web1 from server s11 (access a1) to
server s21 (access a2) the way a hypervisor does — destination port created
first, the VM's interface moved, QEMU-like RARP announcements — twice: with a
prior notification (`dynprov notify migrating`) and without. A peer VM and
the outside host probe web1 every millisecond with dynprov's own prober; for
each run the demo prints the outage (first lost probe to first answered one,
by send time), the probes lost, and the flow tables of the source and
destination bridges before and after, annotated by VM and template.
"""

from __future__ import annotations

import time

from ryu_apps.lab import testbed as lab
from ryu_apps.cli.notify import send as send_notification
from ryu_apps.lab.demo import needs_root, report, run_checks
from ryu_apps.cli.flow_listing import annotated_flows
from ryu_apps.lab.migration import live_migrate

LOCAL_OVSDB = "unix:/var/run/openvswitch/db.sock"
MIGRATING_VM = "web1"
PROBERS = ("web5", "out1")   # a peer VM on the destination side, and the outside host


def _banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def _vm_flows(bridge: str, mac: str) -> str:
    lines = [line for line in annotated_flows(bridge).splitlines() if mac in line]
    return "\n".join(lines) or "  (no flow of this VM)"


def migrate_once(net, controller, vms, source, destination, notify: bool) -> list:
    """One probed migration; the outage reports of the probers."""
    vm = vms[MIGRATING_VM]
    api = controller.rest_target()   # URL and admin token
    _banner(f"before: flows of {vm.name} ({vm.MAC()}) on {source.name} and "
            f"{destination.name}")
    print(f"--- {source.name}\n{_vm_flows(source.name, vm.MAC())}")
    print(f"--- {destination.name}\n{_vm_flows(destination.name, vm.MAC())}")
    probers = [lab.ProberRun(vms[name], vm) for name in PROBERS]
    time.sleep(0.3)

    def tell_controller() -> None:
        status, answer = send_notification(api, {"event": "migrating", "mac": vm.MAC(),
                                                 "server": destination.name})
        print(f"  notify migrating -> {status}: {answer.get('acknowledged', answer)}")

    times = live_migrate(net, vm, destination, announce="qemu",
                         before_switchover=tell_controller if notify else None)
    time.sleep(0.4)   # live_migrate returned after the last announcement (800 ms)
    reports = [p.stop() for p in probers]
    _banner(f"after: flows of {vm.name} on {source.name} and {destination.name}")
    print(f"--- {source.name}\n{_vm_flows(source.name, vm.MAC())}")
    print(f"--- {destination.name}\n{_vm_flows(destination.name, vm.MAC())}")
    _banner("convergence, probed every 1 ms")
    for name, run in zip(PROBERS, reports):
        print(f"  {name:5} -> {vm.name}: outage {run.outage_ns / 1e6:.1f} ms, "
              f"{run.lost} of {run.sent} probes lost"
              f"{'' if run.recovered else ', NOT RECOVERED'}")
    swap = (f"{vm.name}'s interface swap took {times.downtime_ns / 1e6:.1f} ms by its own "
            "clock, measured around the commands")
    lost = any(run.lost for run in reports)
    print(f"  ({swap}; {'the outage includes it' if lost else 'no probe went unanswered'})")
    return reports


def run_migration_demo(verbose: bool = False) -> int:
    """Run the migration demo; 0 when every expectation held and both migrations converged."""
    if needs_root():
        return 2
    with lab.running_datacenter(f"ovsdb = {LOCAL_OVSDB}\n", tls=True) as (controller, net):
        vms = {vm.name: vm for vm in net.hosts}
        switches = {s.name: s for s in net.switches}
        failures = run_checks(controller, net, vms)
        for notify, destination, source in ((True, "s21", "s11"), (False, "s11", "s21")):
            title = "with" if notify else "without"
            _banner(f"live migration of {MIGRATING_VM} from {source} to {destination}, "
                    f"{title} a prior notification")
            reports = migrate_once(net, controller, vms, switches[source],
                                   switches[destination], notify)
            failures += sum(not r.recovered for r in reports)
        if verbose:
            _banner("controller log")
            print(controller.log())
    return report(failures)
