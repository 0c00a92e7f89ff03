"""Library reload: validate and apply 1k and 10k templates; what one template's change touches.

Writes a generated library (YAML files of 50 templates each, realistic ACLs:
ARP, a few TCP services from prefixes, ICMP, replies, bandwidth limits,
port-side rules) to a temporary directory, then measures on the real paths:

- validate: :class:`ryu_apps.loaders.library_keeper.LibraryKeeper` loading the
  directory (YAML parsing and :func:`build_library`), also split into the two;
- apply: ``engine.set_library`` with live bindings (10k by default, on the
  scale benchmark's data center, templates drawn half from 20 popular ones,
  half from the whole library): a reload of the unchanged files (must touch
  no flow), and a reload after one popular template's ACL changed (must touch
  only that template's VMs: the plan's adds and deletes are counted, checked
  to carry only that template's cookies, and compared with those VMs' flows).

Run: ``python -m benchmarks.library_reload [--quick]``.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import List

from benchmarks.common import (PLOTS_DIR, format_table, print_machine, publish, pyplot,
                               replot, save_figure, summary)

TEMPLATES_PER_FILE = 50
POPULAR = 20


def template_ids(count: int) -> List[int]:
    """``count`` template ids whose MACs are unicast (the MAC's first octet even)."""
    return [((i // 256) * 2 + 2) << 8 | (i % 256) for i in range(count)]


def template_yaml(template_id: int, variant: int = 0) -> str:
    """One template in the library's YAML format (``variant`` changes its ACL)."""
    net = f"10.{template_id // 250 % 250}.{template_id % 250}.0/24"
    service = 8000 + template_id % 1000 + variant
    return f"""  - id: {template_id}
    name: t{template_id}
    description: generated tier {template_id}
    vlan: {100 + template_id % 400}
    idle_timeout: 600
    virtual_switch:
      default_action: deny
      bind_ip: true
      acl:
        - {{action: allow, direction: to_vm, ethertype: arp}}
        - {{action: allow, direction: from_vm, ethertype: arp}}
        - {{action: allow, direction: to_vm, protocol: tcp, src: {net}, dst_port: 22}}
        - {{action: allow, direction: to_vm, protocol: tcp, dst_port: 443}}
        - {{action: allow, direction: to_vm, protocol: tcp, src: 10.0.0.0/8, dst_port: {service}}}
        - {{action: allow, direction: from_vm, protocol: tcp, src_port: 443}}
        - {{action: allow, direction: from_vm, protocol: tcp, dst: 10.0.0.0/8, src_port: {service}}}
        - {{action: allow, direction: from_vm, protocol: tcp, dst: {net}, src_port: 22}}
        - {{action: allow, direction: to_vm, protocol: icmp, src: {net}}}
        - {{action: allow, direction: from_vm, protocol: icmp, dst: {net}}}
      bandwidth:
        rate_kbps: {10000 * (1 + template_id % 10)}
    access_port:
      default_action: allow
      acl:
        - {{action: deny, direction: from_vm, dst: 192.0.2.0/24}}
        - {{action: deny, direction: to_vm, src: 192.0.2.0/24}}
      bandwidth:
        rate_kbps: 1000000
"""


def write_library(directory: Path, count: int, changed: int | None = None) -> List[Path]:
    """Write ``count`` templates in files of TEMPLATES_PER_FILE; ``changed`` gets variant 1."""
    paths = []
    ids = template_ids(count)
    for start in range(0, count, TEMPLATES_PER_FILE):
        chunk = ids[start:start + TEMPLATES_PER_FILE]
        text = "templates:\n" + "".join(
            template_yaml(i, 1 if i == changed else 0) for i in chunk)
        path = directory / f"tier-{start // TEMPLATES_PER_FILE:04d}.yaml"
        path.write_text(text)
        paths.append(path)
    (directory / "defaults.yaml").write_text("defaults:\n  idle_timeout: 300\n")
    return paths


def _timed(call, *args):
    """Seconds ``call(*args)`` took, and what it returned."""
    start = time.perf_counter()
    result = call(*args)
    return time.perf_counter() - start, result


def measure_validation(directory: Path, count: int, repeats: int):
    """Time loading a library of ``count`` templates: the keeper, then YAML and validation
    apart (once); returns the figures and the last keeper."""
    from ryu_apps.core.template_validation import build_library
    from ryu_apps.loaders.library_files import _library_files, _parse_file
    from ryu_apps.loaders.library_keeper import LibraryKeeper

    write_library(directory, count)
    keeper_s = []
    for _ in range(repeats):
        took, keeper = _timed(lambda: LibraryKeeper(directory))
        keeper_s.append(took)
    files, _ = _library_files(directory, str(directory))
    parse_s, documents = _timed(lambda: [(s, _parse_file(s, p)[0]) for s, p in files])
    build_s = _timed(lambda: build_library(documents))[0]
    assert len(keeper.current) == count
    size = sum(p.stat().st_size for p in directory.iterdir())
    return {"templates": count, "bytes": size, "load_s": summary(keeper_s),
            "yaml_parse_s": parse_s, "build_library_s": build_s}, keeper


def measure_apply(directory: Path, keeper, count: int, bindings: int, repeats: int) -> dict:
    """Reload with live bindings: unchanged files, then one popular template changed."""
    from benchmarks.scale_bed import DataCenter
    from ryu_apps.core.cookies import CookieKind, decode_cookie

    ids = template_ids(count)
    popular = ids[:POPULAR]

    def choose(rng: random.Random) -> int:
        return rng.choice(popular) if rng.random() < 0.5 else rng.choice(ids)
    dc = DataCenter(bindings, library=keeper.current, choose_template=choose)
    dc.build_fabric()
    dc.populate(bindings)
    engine = dc.engine
    changed = popular[0]
    own = [b for b in engine.bindings.values() if b.template_id == changed]
    own_flows = sum(len(engine.desired.flows_of(b.owner)) for b in own)
    unchanged_s, unchanged_changes, change_s, apply_s, touched = [], [], [], [], []
    foreign = 0
    for round_ in range(repeats):
        took, library = _timed(keeper.reload)
        took_apply, plan = _timed(engine.set_library, library)
        unchanged_s.append(took + took_apply)
        unchanged_changes.append(plan.flow_count())
        write_library(directory, count, changed=changed if round_ % 2 == 0 else None)
        took, library = _timed(keeper.reload)
        took_apply, plan = _timed(engine.set_library, library)
        change_s.append(took + took_apply)
        apply_s.append(took_apply)
        touched.append(plan.flow_count())
        for changes in plan.changes.values():
            for spec in changes.adds + changes.deletes:
                owner = decode_cookie(spec.cookie)
                if owner is None or owner.kind not in (CookieKind.BINDING,
                                                       CookieKind.TEMPLATE) or \
                        owner.template_id != changed:
                    if owner is None or owner.kind is not CookieKind.PORT_GROUP:
                        foreign += 1
    return {"templates": count, "bindings": len(engine.bindings),
            "changed_template_vms": len(own), "changed_template_flows": own_flows,
            "unchanged_reload_s": summary(unchanged_s),
            "unchanged_reload_flow_changes": max(unchanged_changes),
            "one_change_reload_s": summary(change_s),
            "one_change_apply_s": summary(apply_s),
            "one_change_flow_changes": summary(touched),
            "changes_outside_that_template": foreign}


def run(counts: List[int], bindings: int, repeats: int) -> dict:
    figures = {"validation": {}, "apply": {}}
    for count in counts:
        with tempfile.TemporaryDirectory(prefix="dynprov-lib-") as tmp:
            directory = Path(tmp)
            print(f"[library_reload] {count} templates: validation ...", flush=True)
            figures["validation"][str(count)], keeper = measure_validation(
                directory, count, 1 if count > 2000 else repeats)
            print(f"[library_reload] {count} templates, {bindings} bindings: apply ...",
                  flush=True)
            figures["apply"][str(count)] = measure_apply(directory, keeper, count, bindings,
                                                         repeats)
    return figures


def print_tables(figures: dict) -> None:
    rows = []
    for count, v in figures["validation"].items():
        rows.append([int(count), v["bytes"] // 1024, v["load_s"]["p50"],
                     v["yaml_parse_s"], v["build_library_s"]])
    print(format_table(["templates", "KiB", "load s (p50)", "YAML s", "validate s"], rows))
    print()
    rows = []
    for count, a in figures["apply"].items():
        rows.append([int(count), a["bindings"], a["unchanged_reload_s"]["p50"],
                     a["unchanged_reload_flow_changes"], a["one_change_reload_s"]["p50"],
                     a["one_change_apply_s"]["p50"] * 1000, a["changed_template_vms"],
                     a["changed_template_flows"], a["one_change_flow_changes"]["p50"],
                     a["changes_outside_that_template"]])
    print(format_table(["templates", "bindings", "no-change reload s", "flows touched",
                        "1-change reload s", "apply ms", "its VMs", "its flows",
                        "flows touched", "others touched"], rows))


def plot(record: dict, outdir: Path = PLOTS_DIR) -> List[Path]:
    """Reload time split (YAML, validation, apply) per library size."""
    plt = pyplot()

    figures = record["figures"]
    counts = sorted(figures["validation"], key=int)
    yaml_s = [_value(figures["validation"][c]["yaml_parse_s"]) for c in counts]
    build_s = [_value(figures["validation"][c]["build_library_s"]) for c in counts]
    apply_s = [figures["apply"][c]["one_change_apply_s"]["p50"] for c in counts]
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = [f"{int(c):,} templates" for c in counts]
    ax.bar(labels, yaml_s, label="YAML parsing")
    ax.bar(labels, build_s, bottom=yaml_s, label="validation (build_library)")
    ax.bar(labels, apply_s, bottom=[a + b for a, b in zip(yaml_s, build_s)],
           label="apply one change (set_library)")
    ax.set_ylabel("seconds (p50)")
    ax.set_title("library reload")
    ax.legend()
    stem = record.get("benchmark", "library_reload").replace("-", "_")
    return [save_figure(fig, outdir / f"{stem}.png")]


def _value(figure) -> float:
    """A time saved as a number, or the median of a summary (older results)."""
    return figure["p50"] if isinstance(figure, dict) else figure


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small library, few bindings")
    parser.add_argument("--plot-only", action="store_true", help="plot the saved results")
    args = parser.parse_args(argv)
    name = "library_reload-quick" if args.quick else "library_reload"
    if args.plot_only:
        replot(name, plot)
        return
    print_machine()
    counts, bindings, repeats = ([100, 300], 600, 2) if args.quick else ([1000, 10000], 10000, 3)
    figures = run(counts, bindings, repeats)
    print_tables(figures)
    publish(name, figures, plot)


if __name__ == "__main__":
    main()
