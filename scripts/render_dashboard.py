"""Draw etc/grafana/dynprov.json's panels from a demo run's real scrapes (matplotlib).

Grafana cannot be installed on the build machine (it reaches only the Debian
and PyPI registries), so this stands in for a screenshot: it starts the
controller and a small Mininet datacenter (root), brings VMs up one by one,
plugs a VM of a template the library lacks (quarantined), scrapes
``/metrics`` every half second, then draws each panel of the dashboard from
the scrapes: a gauge as its value, a counter as its per-second rate, a
histogram as its p50 and p99, each summed by the panel's ``by (...)`` labels.

    sudo .venv/bin/python scripts/render_dashboard.py [--out docs/img/grafana-dashboard.png]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DASHBOARD = ROOT / "etc" / "grafana" / "dynprov.json"


def demo_scrapes(period: float = 0.5) -> list:
    """(time, {(name, labels): value}) of scrapes over a demo run."""
    from ryu_apps.lab import testbed as lab

    controller = lab.ControllerProcess(verbose=False).start()
    net, scrapes, start = None, [], time.monotonic()

    def scrape() -> None:
        url = f"http://127.0.0.1:{controller.metrics_port}/metrics"
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        scrapes.append((time.monotonic() - start, {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}))

    try:
        net = lab.build_network(controller.of_port, prefix="g%03d" % (os.getpid() % 1000),
                                access=2, servers=2, vms=2, edge=0,
                                dpid_base=((os.getpid() + 53) % 4096) << 24)
        lab.wait_for_fabric(controller, net)
        for _ in range(6):
            scrape()
            time.sleep(period)
        for vm in net.hosts:
            lab.announce(vm)
            for _ in range(3):
                scrape()
                time.sleep(period)
        server = next(s for s in net.switches if re.search(r"s\d+$", s.name))
        rogue = lab.add_vm(net, server, "g%03drog" % (os.getpid() % 1000),
                           "00:ab:00:00:00:01", "10.0.100.99/16")
        lab.announce(rogue)
        for _ in range(12):
            scrape()
            time.sleep(period)
    finally:
        if net is not None:
            lab.stop_network(net)
        controller.stop()
    return scrapes


def series(scrapes: list, expression: str):
    """{legend: (times, values)} of one panel expression, drawn from the scrapes."""
    names = re.findall(r"\bdynprov_[a-zA-Z0-9_]*", expression)
    by = re.search(r"by \(([^)]*)\)", expression)
    keys = [k.strip() for k in by.group(1).split(",")] if by else []
    keys = [k for k in keys if k != "le"]
    name = names[0]
    quantile = re.search(r"histogram_quantile\(([\d.]+)", expression)
    if quantile:
        return _quantiles(scrapes, name, float(quantile.group(1)), keys)
    counter = name.endswith(("_total", "_count"))
    out: dict = defaultdict(lambda: ([], []))
    previous = None
    for when, samples in scrapes:
        summed = _summed(samples, name, keys)
        if counter:
            if previous is not None:
                dt = when - previous[0]
                for legend, total in summed.items():
                    out[legend][0].append(when)
                    out[legend][1].append(max(0.0, total - previous[1].get(legend, 0.0)) / dt)
            previous = (when, summed)
        else:
            for legend, total in summed.items():
                out[legend][0].append(when)
                out[legend][1].append(total)
    return dict(out)


def _summed(samples: dict, name: str, keys: list) -> dict:
    summed: dict = defaultdict(float)
    for (sample, labels), number in samples.items():
        if sample == name:
            labels_d = dict(labels)
            legend = ",".join(labels_d.get(k, "") for k in keys) or name
            summed[legend] += number
    return summed


def _quantiles(scrapes: list, name: str, q: float, keys: list) -> dict:
    """The q-quantile of the histogram's cumulative buckets at each scrape (ms)."""
    out: dict = defaultdict(lambda: ([], []))
    for when, samples in scrapes:
        buckets: dict = defaultdict(dict)
        for (sample, labels), number in samples.items():
            if sample == name.replace("_bucket", "") + "_bucket":
                labels_d = dict(labels)
                legend = ",".join(labels_d.get(k, "") for k in keys) or f"p{q * 100:g}"
                buckets[legend][float(labels_d["le"])] = number
        for legend, counts in buckets.items():
            total = counts.get(float("inf"), 0.0)
            if total:
                bound = next(le for le, n in sorted(counts.items()) if n >= q * total)
                out[f"{legend} p{q * 100:g}"][0].append(when)
                out[f"{legend} p{q * 100:g}"][1].append(bound * 1000)
    return dict(out)


def render(scrapes: list, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = json.loads(DASHBOARD.read_text())["panels"]
    columns = 3
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(15, 2.6 * rows))
    fig.patch.set_facecolor("#111217")
    for axis, panel in zip(axes.flat, panels):
        axis.set_facecolor("#181b1f")
        axis.set_title(panel["title"], color="#d8d9da", fontsize=9, loc="left")
        axis.tick_params(colors="#8e8e8e", labelsize=7)
        for target in panel["targets"]:
            for legend, (xs, ys) in sorted(series(scrapes, target["expr"]).items()):
                axis.plot(xs, ys, linewidth=1.2, label=legend[:28])
        if axis.lines:
            axis.legend(fontsize=6, loc="upper left", facecolor="#181b1f",
                        labelcolor="#d8d9da", edgecolor="#333")
        else:
            empty = "store mode only" if "Store" in panel["title"] else "none in this run"
            axis.text(0.5, 0.5, empty, color="#8e8e8e",
                      ha="center", transform=axis.transAxes, fontsize=8)
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    fig.suptitle("dynprov (etc/grafana/dynprov.json) over a demo run: seconds since start; "
                 "latencies in ms, counters per second", color="#d8d9da", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80, facecolor=fig.get_facecolor())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" /
                        "grafana-dashboard.png")
    parser.add_argument("--scrapes", type=Path, help="reuse scrapes saved by a run (JSON)")
    args = parser.parse_args(argv)
    if args.scrapes and args.scrapes.exists():
        scrapes = [(t, {(n, tuple(map(tuple, labels))): v for n, labels, v in s})
                   for t, s in json.loads(args.scrapes.read_text())]
    else:
        scrapes = demo_scrapes()
        if args.scrapes:
            args.scrapes.write_text(json.dumps(
                [(t, [(n, labels, v) for (n, labels), v in s.items()]) for t, s in scrapes]))
    render(scrapes, args.out)
    print(f"{len(scrapes)} scrapes; dashboard drawn: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
