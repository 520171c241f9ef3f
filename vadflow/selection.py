"""The trajectory component each method gets on each dataset, chosen on the selection set.

A selection experiment (``experiments/selection_injected.yaml``) trains every cell without a held-out
fifth of the normal training clips and scores it on that fifth with injected anomalies
(``dataset.selection=injected``, ``vadflow/data/injected.py``). This command scores each of its runs
twice more, on a set of global events only (close, dash, offpath) and on a set of pose events only
(flail, fall), into ``RUN/sel_global`` and ``RUN/sel_pose`` (once; later calls read them back),
then applies the rule, under each dataset's headline protocol, means over seeds:

* a component is **eligible** when it gains on the global set over the same method without one
  (``none``) and loses at most ``POSE_TOLERANCE`` points on the pose set: position cues are added
  only where they do not cost the pose model its sensitivity;
* the eligible component with the highest AUC on the full (mixed) set is chosen; with none
  eligible, ``none`` stays.

``--rule setting`` chooses a training setting instead (``selection_train_visible.yaml``: the flow's
training NLL over detected joints only), which is not meant to add position cues: a variant is
eligible when it gains on the mixed set and loses more than ``POSE_TOLERANCE`` points on neither
family's set; the highest on the mixed set is chosen, else ``none``. A spec may name another
``base`` to compare with (``selection_window.yaml``: the window length against the same method with
its component); only the setting rule takes one.

No test label is read. ``<out>/<name>_families.md`` holds the three AUCs of every cell group.
After the choice, and only to show how it transfers, ``<out>/<name>_choices.md`` quotes the test
AUC of the chosen variant and of the base from the published result tables (``--test-tables``),
where they hold it.

    python -m vadflow.selection --spec experiments/selection_injected.yaml
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from vadflow.cli import friendly_errors
from vadflow.config import ROOT
from vadflow.data.injected import GLOBAL_KINDS, POSE_KINDS
from vadflow.specs import SpecError, cell_dir, load_spec, spec_cells
from vadflow.table import write_table

POSE_TOLERANCE = 1.0  # AUC-ROC points a component may cost on pose-only events
FAMILIES = {"global": GLOBAL_KINDS, "pose": POSE_KINDS}
BASE = "none"


def cell_dirs(spec: dict) -> list[tuple[str, str, str, Path]]:
    return [(c.method, c.dataset, c.variant, cell_dir(spec, ROOT, c)) for c in spec_cells(spec)]


class BadRun(ValueError):
    """A run's metrics.json that cannot be read: one line naming the file."""


def headline_auc(metrics_file: Path, protocol: str | None = None) -> tuple[str, float]:
    try:
        m = json.loads(metrics_file.read_text())
        protocol = protocol or m["protocol"]
        return protocol, 100 * float(m["protocols"][protocol]["auc"])
    except (KeyError, TypeError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        raise BadRun(f"{metrics_file}: not a vadflow metrics file ({type(e).__name__}: {e}); delete the run and train it again") from None


def family_aucs(run: Path, threads: int) -> dict[str, float]:
    """The run's headline AUC on the mixed set and on each family's set (rescoring once if needed)."""
    from vadflow.rescore import rescore_run

    protocol, mixed = headline_auc(run / "metrics.json")
    out = {"mixed": mixed}
    for family, kinds in FAMILIES.items():
        metrics = run / f"sel_{family}" / "metrics.json"
        if not metrics.is_file():
            rescore_run(run, f"sel_{family}", [f"selection_kinds=[{','.join(kinds)}]"], [], threads)
        out[family] = headline_auc(metrics, protocol)[1]
    return out


def component_eligible(a: dict[str, float], base: dict[str, float]) -> bool:
    """A trajectory component must gain on global events and cost at most the tolerance on pose events."""
    return a["global"] > base["global"] and a["pose"] >= base["pose"] - POSE_TOLERANCE


def setting_eligible(a: dict[str, float], base: dict[str, float]) -> bool:
    """A training setting must gain on the mixed set and cost at most the tolerance on each family."""
    return a["mixed"] > base["mixed"] and all(a[f] >= base[f] - POSE_TOLERANCE for f in FAMILIES)


def choose(groups: dict[str, dict[str, float]], eligible=component_eligible, base: str = BASE) -> str:
    """``groups``: variant -> {"mixed", "global", "pose"} mean AUCs of one method on one dataset.
    Of the variants ``eligible`` against ``base``, the highest on the mixed set; else ``base``."""
    if base not in groups:
        raise ValueError(f"the selection rule compares every variant with {base!r}: add that variant to the spec")
    picks = [v for v, a in groups.items() if v != base and eligible(a, groups[base])]
    return max(picks, key=lambda v: groups[v]["mixed"]) if picks else base


def choose_setting(groups: dict[str, dict[str, float]], base: str = BASE) -> str:
    return choose(groups, setting_eligible, base)


RULES = {"component": component_eligible, "setting": setting_eligible}  # --rule: which eligibility test choose() applies
TEST_TABLES = [f"experiments/results/{n}.csv" for n in ("table", "trajectory", "trajectory_frame", "trajectory_stream", "train_visible",
                                                            "window", "window_stream", "window_methods")]


def test_figures(tables: list[Path]) -> dict[tuple[str, str, str], str]:
    """(method, dataset, variant) -> the headline AUC-ROC cell ("81.2 ± 1.8 (3 seeds)") of the result tables."""
    out = {}
    for table in tables:
        if not table.is_file():
            continue
        with open(table, newline="") as f:
            for row in csv.DictReader(f):
                if row["protocol"].endswith("*"):
                    variant = BASE if row["variant"] == "-" else row["variant"]
                    out[(row["method"], row["dataset"], variant)] = f"{row['AUC-ROC']} ({len(row['seeds'].split(','))} seeds)"
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", default=str(ROOT / "experiments" / "selection_injected.yaml"))
    ap.add_argument("--out", default=str(ROOT / "experiments" / "results"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rule", choices=sorted(RULES), default="component",
                    help="component: a trajectory component (must gain on global events); setting: a training setting")
    ap.add_argument("--test-tables", nargs="*", default=[str(ROOT / t) for t in TEST_TABLES],
                    help="result tables quoted after the choice (headline protocol); nothing is chosen on them")
    args = ap.parse_args(argv)
    with friendly_errors():  # rescoring a run whose data root is gone: one line, exit 2
        return _select(args)


def _select(args) -> int:
    try:
        spec = load_spec(args.spec)
    except SpecError as e:
        print(f"vadflow: error: {e}", file=sys.stderr)
        return 2
    base = str(spec.get("base", BASE))  # the variant every other one is compared with (a spec may start from a component)
    if base not in (spec.get("variants") or {}):
        print(f"vadflow: error: {args.spec}: the selection rule needs a variant named {base!r}", file=sys.stderr)
        return 2
    if args.rule == "component" and base != BASE:
        print(f"vadflow: error: {args.spec}: the component rule compares with {BASE!r}; base: {base} needs --rule setting", file=sys.stderr)
        return 2
    per_seed: dict[tuple[str, str, str], list[dict]] = {}
    for method, dataset, variant, run in cell_dirs(spec):
        if (run / "metrics.json").is_file():
            try:
                per_seed.setdefault((method, dataset, variant), []).append(family_aucs(run, args.threads))
            except BadRun as e:
                print(f"vadflow: error: {e}", file=sys.stderr)
                return 2
    if not per_seed:
        print(f"vadflow: error: {args.spec}: no cell has run (python -m vadflow.reproduce --spec {args.spec})", file=sys.stderr)
        return 2
    means = {k: {s: float(np.mean([r[s] for r in rs])) for s in ("mixed", "global", "pose")} for k, rs in per_seed.items()}
    rows, choices, chosen_rows = [], [], []
    quoted = test_figures(list(map(Path, args.test_tables)))
    for method in spec["methods"]:
        for dataset in spec["datasets"]:
            groups = {v: means[(method, dataset, v)] for v in spec["variants"] if (method, dataset, v) in means}
            if base not in groups:
                continue
            chosen = choose(groups, RULES[args.rule], base)
            chosen_test, base_test = (quoted.get((method, dataset, v), "-") for v in (chosen, base))
            test = f" | test, headline protocol: {chosen} {chosen_test}" + ("" if chosen == base else f", {base} {base_test}")
            choices.append(f"{method} {dataset}: {chosen}{test}")
            chosen_rows.append([method, dataset, chosen, chosen_test, base_test])
            for v, a in groups.items():
                n = len(per_seed[(method, dataset, v)])
                rows.append([method, dataset, v, str(n), *(f"{a[s]:.1f}" for s in ("mixed", "global", "pose")), "chosen" if v == chosen else ""])
    header = ["method", "dataset", "variant", "seeds", "selection set AUC-ROC", "global events only", "pose events only", "rule"]
    print(write_table(Path(args.out), f"{spec.get('name', 'selection')}_families", header, rows))
    write_table(Path(args.out), f"{spec.get('name', 'selection')}_choices",
                ["method", "dataset", "chosen (selection set)", "its test AUC-ROC, headline protocol", f"test AUC-ROC of {base}"], chosen_rows)
    print("\n".join(choices))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
