"""The bounded record of detection and confirmation times."""

from ryu_apps.app.provisioning_times import ProvisioningTimes


def test_confirmation_completes_a_detected_vm_once():
    times = ProvisioningTimes()
    times.detected("00:fa:00:00:00:01", 1_000_000)
    times.confirmed(["00:fa:00:00:00:01", "00:fa:00:00:00:99"], 3_500_000)
    times.confirmed(["00:fa:00:00:00:01"], 9_000_000)   # a later plan: first stays
    [view] = times.views()
    assert view == {"mac": "00:fa:00:00:00:01", "detected_ns": 1_000_000,
                    "confirmed_ns": 3_500_000, "controller_ms": 2.5}


def test_unconfirmed_vm_has_no_gap():
    times = ProvisioningTimes()
    times.detected("00:fa:00:00:00:02", 5)
    assert times.views()[0]["confirmed_ns"] is None
    assert times.views()[0]["controller_ms"] is None


def test_oldest_entries_leave_first_and_redetection_starts_over():
    times = ProvisioningTimes(capacity=2)
    for n, mac in enumerate(["00:fa:00:00:00:01", "00:fa:00:00:00:02", "00:fa:00:00:00:03"]):
        times.detected(mac, n)
    assert [v["mac"] for v in times.views()] == ["00:fa:00:00:00:02", "00:fa:00:00:00:03"]
    times.confirmed(["00:fa:00:00:00:02"], 10)
    times.detected("00:fa:00:00:00:02", 20)
    assert [v["mac"] for v in times.views()] == ["00:fa:00:00:00:03", "00:fa:00:00:00:02"]
    assert times.views()[1]["confirmed_ns"] is None
