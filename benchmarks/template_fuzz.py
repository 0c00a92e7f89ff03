"""Template fuzz: hostile and mutated libraries through the library checker.

Every case is a library directory read the way the controller reads it: by
:class:`ryu_apps.loaders.library_check.LibraryChecker` (a worker process, the
limits of ``ryu_apps/loaders/safe_yaml.py`` and the validator). A case passes when it
is refused with a :class:`TemplateValidationError` whose every error names a
file of the library (or the library itself), the checker did not crash, time
out or fail, no other exception reached the caller, no error text holds a
traceback, and it took at most 2 s.

- generated: ``--cases`` libraries (default 1,500) made by hypothesis from
  the default library: values replaced by wrong types, out-of-range and huge
  numbers, keys dropped, unknown and near-miss keys, templates copied (duplicate
  ids and names), files truncated, bytes and YAML syntax spliced in, values
  nested deeply, aliases and anchors, binary junk; a mutation that leaves the
  library valid is counted as accepted, not refused;
- pathological: a 40,000-deep sequence and mapping (80 KB), a billion-laughs
  alias bomb, a recursive alias, 200,000 rules (15 MB), a 50 MB file, 1 MB of
  binary junk, NUL bytes, a FIFO, a symlink out of the library, 65,537
  templates, a 100,000-digit number, 10,000 duplicate keys, a 4 MB string, a
  store row nested 40,000 deep;
- ACL scaling: ``build_library`` on 2k / 8k / 20k rules of three shapes (the
  last one built to defeat a per-field index), and the old pairwise check on
  2k rules for comparison;
- reloads through the checker: 1k and 10k generated templates (as in
  ``library_reload``): cold load, a reload of unchanged files, a reload after
  one file changed, and the worker's peak memory.

Run: ``python -m benchmarks.template_fuzz [--cases N] [--quick]``; figures are
printed and saved to ``benchmarks/results/template_fuzz[-quick].json``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

from benchmarks.common import format_table, print_machine, publish, summary
from benchmarks.template_mutations import SEED_FILES, generated_cases, write_library

BUDGET_S = 2.0


# -- running one case ---------------------------------------------------------------------
class Outcome:
    """What one case gave: refused, accepted or broken, and how long it took."""

    def __init__(self, name: str, seconds: float, refused: bool, problem: str = "",
                 first_error: str = "") -> None:
        self.name, self.seconds, self.refused = name, seconds, refused
        self.problem, self.first_error = problem, first_error


def check_case(checker, directory: Path, name: str) -> Outcome:
    """Load ``directory`` through the checker and judge the answer."""
    from ryu_apps.core.template_validation import TemplateValidationError

    files = {str(directory)} | {os.path.join(str(directory), n) for n in os.listdir(directory)}
    start = time.perf_counter()
    try:
        checker.load(directory)
    except TemplateValidationError as failure:
        took = time.perf_counter() - start
        errors = failure.errors
        texts = [str(e) for e in errors]
        problem = ""
        if any("library checker" in t for t in texts):
            problem = "checker crashed, failed or timed out"
        elif any("Traceback" in t for t in texts):
            problem = "traceback in an error"
        elif not errors or any(e.source not in files for e in errors):
            problem = "unlocated error"
        return Outcome(name, took, True, problem, texts[0] if texts else "")
    except Exception as error:   # noqa: B902 - anything else is what we look for
        return Outcome(name, time.perf_counter() - start, False,
                       f"exception {type(error).__name__}: {error}")
    return Outcome(name, time.perf_counter() - start, False)


# -- pathological cases ---------------------------------------------------------------------
TEMPLATE = SEED_FILES["web.yaml"]


def _alias_bomb() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


def _rules(count: int) -> str:
    head = ("templates:\n  - {id: 251, name: big, description: x, vlan: 100, "
            "access_port: {default_action: allow},\n     virtual_switch: {default_action: "
            "deny, acl: [\n")
    return head + "".join(f"       {{action: allow, direction: to_vm, protocol: tcp, "
                          f"dst_port: {1 + i % 65535}}},\n" for i in range(count)) + "]}}\n"


def pathological_cases() -> List[Tuple[str, Callable[[Path], None]]]:
    """(name, function that writes the case into an empty library directory)."""
    def text(name: str, body: str) -> Callable[[Path], None]:
        return lambda d: (d / name).write_text(body)

    def big_file(d: Path) -> None:
        with open(d / "huge.yaml", "wb") as file:
            file.truncate(50_000_000)

    def fifo(d: Path) -> None:
        os.mkfifo(d / "pipe.yaml")

    def symlink(d: Path) -> None:
        (d.parent / "outside.yaml").write_text(TEMPLATE)
        (d / "link.yaml").symlink_to(d.parent / "outside.yaml")

    return [
        ("40k-deep sequence (80 KB)", text("deep.yaml", "templates: " + "[" * 40_000 +
                                           "]" * 40_000 + "\n")),
        ("40k-deep mapping", text("deep.yaml", "templates: " + "{a: " * 40_000 + "1" +
                                  "}" * 40_000 + "\n")),
        ("40k-deep block sequence", text("deep.yaml", "templates:\n  " + "- " * 40_000 +
                                         "1\n")),
        ("alias bomb (billion laughs)", text("bomb.yaml", _alias_bomb())),
        ("recursive alias", text("loop.yaml", "templates: &t [*t]\n")),
        ("200,000 rules (15 MB)", text("rules.yaml", _rules(200_000))),
        ("50 MB file", big_file),
        ("1 MB binary junk", lambda d: (d / "junk.yaml").write_bytes(
            random.Random(6).randbytes(1 << 20))),
        ("NUL bytes", lambda d: (d / "nul.yaml").write_bytes(b"templates: []\n\x00" * 1000)),
        ("FIFO named *.yaml", fifo),
        ("symlink out of the library", symlink),
        ("65,537 templates (aliases of one)", text("many.yaml", "templates: [&t {id: 1}, " +
                                                   "*t, " * 65_536 + "]\n")),
        ("100,000-digit number", text("num.yaml", TEMPLATE.replace("vlan: 100", "vlan: " +
                                                                   "9" * 100_000))),
        ("100,000-hex-digit id", text("hex.yaml", TEMPLATE.replace('"0x00FA"', "0x" +
                                                                   "f" * 100_000))),
        ("10,000 duplicate keys", text("dup.yaml", TEMPLATE.replace(
            "    vlan: 100\n", "    vlan: 100\n" * 10_000))),
        ("4 MB string", text("long.yaml", TEMPLATE.replace(
            "description: Public", "description: " + "x" * 4_000_000))),
        ("bad date 2001-13-45", text("date.yaml", TEMPLATE.replace(
            "description: Public", "description: 2001-13-45 #"))),
    ]


def limit_cases() -> List[Tuple[str, Callable[[Path], None]]]:
    """The biggest inputs the limits let through to the parser (how long they take)."""
    from benchmarks.library_reload import template_ids, template_yaml

    def dense(d: Path) -> None:      # 2 bytes a node: refused by the node limit
        (d / "dense.yaml").write_text("templates: [" + "1," * 2_000_000 + "]\n")

    def templates(d: Path) -> None:  # real templates up to the file size limit
        ids, text = iter(template_ids(5000)), "templates:\n"
        while len(text) < 4_000_000:
            text += template_yaml(next(ids))
        (d / "big.yaml").write_text(text)

    def rules(d: Path) -> None:      # one ACL at the rule limit
        (d / "acl.yaml").write_text(_rules(20_000))

    return [("4 MB of dense YAML (2 bytes a node)", dense),
            ("4 MB of real templates (one file)", templates),
            ("20,000 rules in one ACL (the limit)", rules)]


def store_row_case() -> Outcome:
    """A store row whose JSON body nests 40,000 deep (read back by library_from_rows)."""
    from ryu_apps.core.template_validation import TemplateValidationError
    from ryu_apps.store.library_rows import LibraryRows, TemplateRow, library_from_rows

    rows = LibraryRows("", "{}", (TemplateRow(250, "web", "web.yaml",
                                              "[" * 40_000 + "]" * 40_000),))
    start = time.perf_counter()
    try:
        library_from_rows(rows)
    except TemplateValidationError as failure:
        located = all(e.source for e in failure.errors)
        return Outcome("store row nested 40,000 deep", time.perf_counter() - start, True,
                       "" if located else "unlocated error", str(failure.errors[0]))
    except Exception as error:   # noqa: B902
        return Outcome("store row nested 40,000 deep", time.perf_counter() - start, False,
                       f"exception {type(error).__name__}: {error}")
    return Outcome("store row nested 40,000 deep", time.perf_counter() - start, False)


# -- ACL scaling -------------------------------------------------------------------------------
def _acl_shapes(count: int) -> Dict[str, List[dict]]:
    base = {"action": "allow", "direction": "to_vm", "protocol": "tcp"}
    return {
        "distinct services": [dict(base, src=f"10.{i >> 8 & 255}.{i & 255}.0/24",
                                   dst_port=1 + i % 65535) for i in range(count)],
        "overlapping port ranges": [dict(base, dst_port=f"{1 + i}-{30000 + i}")
                                    for i in range(count)],
        "adversarial (nested prefixes, ranges)": [
            dict(base, src=f"10.0.0.0/{8 + i % 24}", dst=f"10.0.0.0/{8 + (i // 24) % 24}",
                 src_port=f"{1 + i % 100}-{60000 - i % 97}", dst_port=f"{1 + i}-{30000 + i}")
            for i in range(count)],
    }


def acl_scaling(counts: List[int], reference_count: int) -> List[dict]:
    """Seconds of build_library for ACLs of each size and shape, and the old pairwise check."""
    from ryu_apps.core.template_validation import TemplateValidationError, build_library

    rows = []
    for count in counts:
        for shape, rules in _acl_shapes(count).items():
            template = {"id": 250, "name": "web", "description": "x", "vlan": 100,
                        "virtual_switch": {"default_action": "deny", "acl": rules},
                        "access_port": {"default_action": "allow"}}
            start = time.perf_counter()
            try:
                build_library([("acl.yaml", {"templates": [template]})])
                result = "valid"
            except TemplateValidationError as failure:
                result = failure.errors[0].message[:60]
            rows.append({"rules": count, "shape": shape, "seconds": time.perf_counter() - start,
                         "result": result})
    if reference_count:
        rows.append(_pairwise_reference(reference_count))
    return rows


def _pairwise_reference(count: int) -> dict:
    """The unreachable-rule check as it was (every rule against every earlier one)."""
    from ryu_apps.core.template_validation import build_library

    rules = _acl_shapes(count)["distinct services"]
    template = {"id": 250, "name": "web", "description": "x", "vlan": 100,
                "virtual_switch": {"default_action": "deny", "acl": rules},
                "access_port": {"default_action": "allow"}}
    parsed = build_library([("acl.yaml", {"templates": [template]})]).get(250)
    acl = parsed.virtual_switch.acl
    start = time.perf_counter()
    for index, rule in enumerate(acl):
        for earlier in acl[:index]:
            if earlier == rule or earlier.covers(rule):
                break
    return {"rules": count, "shape": "distinct services, old pairwise check only",
            "seconds": time.perf_counter() - start, "result": "valid"}


# -- reloads through the checker ------------------------------------------------------------------
def checker_reloads(counts: List[int]) -> List[dict]:
    """Cold load, no-change and one-file reloads of generated libraries through the checker."""
    from benchmarks.library_reload import template_ids
    from benchmarks.library_reload import write_library as write_templates
    from ryu_apps.loaders.library_check import LibraryChecker
    from ryu_apps.loaders.library_keeper import LibraryKeeper

    rows = []
    for count in counts:
        with tempfile.TemporaryDirectory(prefix="dynprov-fuzz-reload-") as tmp, \
                LibraryChecker(timeout=600) as checker:
            directory = Path(tmp)
            write_templates(directory, count)
            start = time.perf_counter()
            keeper = LibraryKeeper(directory, checker)
            cold = time.perf_counter() - start
            start = time.perf_counter()
            unchanged = keeper.reload() is keeper.current
            no_change = time.perf_counter() - start
            write_templates(directory, count, changed=template_ids(count)[0])
            start = time.perf_counter()
            keeper.reload()
            one_change = time.perf_counter() - start
            rows.append({"templates": count, "cold_s": cold, "no_change_s": no_change,
                         "no_change_is_same_library": unchanged, "one_change_s": one_change,
                         "worker_peak_rss_mb": _peak_rss_mb(checker._process.pid)})
    return rows


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- the run -------------------------------------------------------------------------------------
def run(cases: int, fuzz_seed: int, counts: List[int], reference_count: int,
        reload_counts: List[int], at_the_limits: bool = True) -> dict:
    from ryu_apps.loaders.library_check import LibraryChecker

    work = Path(tempfile.mkdtemp(prefix="dynprov-fuzz-"))
    library = work / "lib"
    outcomes: Dict[str, List[Outcome]] = {"generated": [], "pathological": [], "limits": []}
    try:
        with LibraryChecker(timeout=30) as checker:
            print(f"[template_fuzz] drawing {cases} mutated libraries ...", flush=True)
            for index, files in enumerate(generated_cases(cases, fuzz_seed)):
                write_library(library, files)
                outcomes["generated"].append(check_case(checker, library, f"generated #{index}"))
            print("[template_fuzz] pathological libraries ...", flush=True)
            for name, make in pathological_cases():
                write_library(library, {})
                make(library)
                outcomes["pathological"].append(check_case(checker, library, name))
            print("[template_fuzz] inputs at the limits ...", flush=True)
            for name, make in (limit_cases() if at_the_limits else []):
                write_library(library, {})
                make(library)
                outcomes["limits"].append(check_case(checker, library, name))
        outcomes["pathological"].append(store_row_case())
        print("[template_fuzz] ACL scaling ...", flush=True)
        scaling = acl_scaling(counts, reference_count)
        print("[template_fuzz] reloads through the checker ...", flush=True)
        reloads = checker_reloads(reload_counts)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"seed": fuzz_seed, "budget_s": BUDGET_S,
            "generated": _figures(outcomes["generated"]),
            "pathological": [_case(o) for o in outcomes["pathological"]],
            "pathological_summary": _figures(outcomes["pathological"]),
            "at_the_limits": [_case(o) for o in outcomes["limits"]],
            "acl_scaling": scaling, "checker_reloads": reloads}


def _case(outcome: Outcome) -> dict:
    return {"name": outcome.name, "seconds": outcome.seconds, "refused": outcome.refused,
            "problem": outcome.problem, "first_error": outcome.first_error[:300]}


def _figures(outcomes: List[Outcome]) -> dict:
    refused = [o for o in outcomes if o.refused]
    slowest = max(outcomes, key=lambda o: o.seconds)
    return {
        "cases": len(outcomes), "refused": len(refused),
        "accepted": sum(1 for o in outcomes if not o.refused and not o.problem),
        "crashes": sum(1 for o in outcomes if o.problem.startswith("checker")),
        "tracebacks": sum(1 for o in outcomes if o.problem.startswith(("traceback",
                                                                       "exception"))),
        "unlocated": sum(1 for o in outcomes if o.problem == "unlocated error"),
        "over_budget": sum(1 for o in outcomes if o.seconds > BUDGET_S),
        "seconds": summary([o.seconds for o in outcomes]),
        "refused_seconds": summary([o.seconds for o in refused]),
        "slowest": _case(slowest),
        "problems": [_case(o) for o in outcomes if o.problem][:20],
    }


def print_report(figures: dict) -> None:
    for label in ("generated", "pathological_summary"):
        f = figures[label]
        s = f["seconds"]
        print(f"\n{label.split('_')[0]}: {f['cases']} libraries, {f['refused']} refused with "
              f"located errors, {f['accepted']} accepted (still valid), {f['crashes']} "
              f"crashes, {f['tracebacks']} tracebacks, {f['unlocated']} unlocated, "
              f"{f['over_budget']} over {BUDGET_S:g} s")
        print(f"  seconds per library: p50 {s['p50']:.4f}, p99 {s['p99']:.4f}, "
              f"max {s['max']:.4f} (slowest: {f['slowest']['name']}: "
              f"{f['slowest']['first_error'][:100]})")
        for problem in f["problems"]:
            print(f"  PROBLEM {problem['name']}: {problem['problem']}")
    print()
    print(format_table(["pathological case", "s", "refused", "first error"],
                       [[c["name"], c["seconds"], "yes" if c["refused"] else "NO",
                         c["first_error"][:90]] for c in figures["pathological"]]))
    print()
    if figures["at_the_limits"]:
        print(format_table(["largest inputs the limits allow", "s", "refused", "first error"],
                           [[c["name"], c["seconds"],
                             "yes" if c["refused"] else "no (valid)", c["first_error"][:90]]
                            for c in figures["at_the_limits"]]))
        print()
    print(format_table(["ACL rules", "shape", "s", "result"],
                       [[r["rules"], r["shape"], r["seconds"], r["result"][:40]]
                        for r in figures["acl_scaling"]]))
    print()
    print(format_table(["templates", "cold load s", "no-change reload s", "one-file reload s",
                        "worker peak RSS MB"],
                       [[r["templates"], r["cold_s"], r["no_change_s"], r["one_change_s"],
                         r["worker_peak_rss_mb"]] for r in figures["checker_reloads"]]))


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1500, help="generated libraries")
    parser.add_argument("--seed", type=int, default=20261203, help="hypothesis seed")
    parser.add_argument("--quick", action="store_true",
                        help="100 cases, 2k-rule ACLs, no inputs at the limits")
    args = parser.parse_args(argv)
    print_machine()
    if args.quick:
        figures = run(100, args.seed, [2000], 0, [300], at_the_limits=False)
    else:
        figures = run(args.cases, args.seed, [2000, 8000, 20000], 2000, [1000, 10000])
    print_report(figures)
    publish("template_fuzz-quick" if args.quick else "template_fuzz", figures)


if __name__ == "__main__":
    main()
