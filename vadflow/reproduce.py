"""make reproduce-table: run the missing or stale cells of ``experiments/table.yaml``, then write
``experiments/results/table.{md,csv,png}``.

A spec may add ``variants`` (name -> extra overrides: noise levels, contamination fractions...),
a third axis of the grid, and ``name`` (the output file stem). ``experiments/robustness_*.yaml``
use both: ``python -m vadflow.reproduce --spec experiments/robustness_noise.yaml``. A variant given
as a mapping dataset -> overrides runs on the datasets it names only (``vadflow/specs.py``).

A cell (method, dataset, seed) is fresh when its ``metrics.json`` carries the same key: a hash of
its fully resolved config without paths and evaluation settings, and of the package's training
code (every module but the evaluation-only ones, ``EVAL_ONLY_MODULES``). A change of protocol
therefore re-scores the saved window scores and trains nothing again. Cells run as separate
``vadflow-train`` processes, ``jobs`` at a time; a crashed cell is reported and the rest go on.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from vadflow.cli import friendly_errors
from vadflow.config import CONF_DIR, ROOT, default_path
from vadflow.specs import cell_dir, load_spec, spec_cells
from vadflow.table import EVAL_KEYS, write_table

def cell_overrides(method: str, dataset: str, seed: int, extra: list[str]) -> list[str]:
    exp = ROOT / "conf" / "experiment" / method / f"{dataset}.yaml"
    base = [f"experiment={method}/{dataset}"] if exp.is_file() else [f"method={method}", f"dataset={dataset}"]
    return base + [f"seed={seed}"] + list(extra)


# modules that only turn saved window scores into numbers, tables and figures, or serve other
# entry points: editing them cannot change what a cell trains
EVAL_ONLY_MODULES = ("scoring/", "table.py", "reproduce.py", "plots.py", "evaluate.py", "localize.py", "primitives.py",
                     "bench.py", "score_tracks.py", "track_report.py", "data/inputs.py", "runs.py", "sweep_summary.py", "cli.py", "console.py",
                     "selection.py", "specs.py", "ensemble.py")


def training_code_digest() -> str:
    """Hash of the package's source that training depends on (``EVAL_ONLY_MODULES`` left out)."""
    digest = hashlib.sha1()
    pkg = ROOT / "vadflow"
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(pkg).as_posix()
        if not rel.startswith(EVAL_ONLY_MODULES):
            digest.update(rel.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def cell_key(overrides: list[str]) -> str:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides + ["paths.output_dir=."])
    resolved = OmegaConf.to_container(cfg, resolve=False)
    resolved.pop("paths", None)
    for key in EVAL_KEYS:  # protocols are applied when the table is written, to the saved scores
        resolved["dataset"].pop(key, None)
    blob = json.dumps({"config": resolved, "code": training_code_digest()}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def is_fresh(run_dir: Path, key: str) -> bool:
    metrics = run_dir / "metrics.json"
    return metrics.is_file() and json.loads(metrics.read_text()).get("table_key") == key


def run_cell(overrides: list[str], run_dir: Path, key: str, threads: int) -> tuple[bool, str]:
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "vadflow.train", *overrides, f"hydra.run.dir={run_dir}", f"threads={threads}", "+trainer.enable_progress_bar=false"]
    with open(run_dir / "stdout.log", "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    if proc.returncode != 0 or not (run_dir / "metrics.json").is_file():
        tail = (run_dir / "stdout.log").read_text()[-600:]
        return False, f"exit {proc.returncode}: {tail.strip().splitlines()[-1] if tail.strip() else ''}"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["table_key"] = key
    metrics["training_code"] = training_code_digest()
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return True, "ok"


def cell_paths(overrides: list[str]) -> tuple[str, str]:
    """(data_root, cache_dir) a cell ran with: its own overrides, else the environment's defaults."""
    found = {k: v for o in overrides if "=" in o for k, v in [o.split("=", 1)]}
    return found.get("paths.data_root", default_path("data_root")), found.get("paths.cache_dir", default_path("cache_dir"))


def rescored_metrics(cell: dict) -> dict | None:
    """The cell's metrics.json with every protocol re-computed from its saved window scores by
    today's protocol code (``protocols``: name -> scalar results). None if the cell has no run."""
    import torch

    from vadflow.table import rescore_window_scores

    metrics_file = cell["dir"] / "metrics.json"
    if not metrics_file.is_file():
        return None
    m = json.loads(metrics_file.read_text())
    dataset_cfg = dict(torch.load(cell["dir"] / "model.ckpt", weights_only=True)["dataset"])
    results = rescore_window_scores(dataset_cfg, cell["dir"] / "window_scores.npz", *cell_paths(cell["overrides"]), run_overrides=cell["overrides"])
    m["protocols"] = {r["protocol"]: {k: v for k, v in r.items() if isinstance(v, (int, float, str))} for r in results}
    m["protocol"], m["auc"] = results[0]["protocol"], results[0]["auc"]
    m["headline_frames"] = {k: results[0][k] for k in ("frame_scores", "keep", "labels", "clips", "lengths")}  # for the figures
    return m


def mean_std(values) -> str:
    v = 100 * np.asarray(values, dtype=float)
    return f"{v.mean():.1f} ± {v.std():.1f}" if len(v) else "-"


def summarise(cells: list[dict], out: Path, name: str = "table") -> str:
    """Re-score every cell under today's protocols, then write ``<name>.md/.csv`` (a row per
    method, dataset, variant and protocol: AUC-ROC, AUC-PR, EER), ``<name>_wide.md`` (the README's
    layout) and ``<name>.png``."""
    from vadflow.table import PROTOCOL_TITLES, RECORDS, records_text

    rows = {}
    for cell in cells:
        m = rescored_metrics(cell)
        if m is not None:  # the run's own dataset label: a selection set ("hr_avenue:injected") never meets a record
            rows.setdefault((cell["method"], m.get("dataset", cell["dataset"]), cell["variant"]), []).append(m)
    header = ["method", "dataset", "variant", "protocol", "seeds", "AUC-ROC", "AUC-PR", "EER (%)", "AUC-ROC unsmoothed", "params",
              "train s", "inference windows/s", "published under this protocol"]
    table = []
    for (method, dataset, variant), ms in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        wps = np.mean([m["n_windows"] / m["eval_seconds"] for m in ms])
        for protocol in ms[0]["protocols"]:
            res = [m["protocols"][protocol] for m in ms if protocol in m["protocols"]]
            star = "*" if protocol == ms[0]["protocol"] else ""
            table.append([method, dataset, variant or "-", PROTOCOL_TITLES.get(protocol, protocol) + star, ",".join(str(m["seed"]) for m in ms),
                          mean_std([r["auc"] for r in res]), mean_std([r["auc_pr"] for r in res]), mean_std([r["eer"] for r in res]),
                          mean_std([r["auc_raw"] for r in res]), str(ms[0]["n_params"]), f"{np.mean([m['train_seconds'] for m in ms]):.0f}",
                          f"{wps:,.0f}", records_text(dataset, protocol)])
    md = write_table(out, name, header, table)
    write_wide_table(rows, out, f"{name}_wide")
    if rows:
        bar_chart(rows, out / f"{name}.png", RECORDS)
        curve_figures(rows, out)
    return md


def curve_figures(rows: dict, out: Path) -> None:
    """``roc.png`` (a panel per dataset, a curve per method: its lowest seed, headline protocol)
    and ``timelines.png`` (each dataset's test clip with the most abnormal frames, every method)."""
    from vadflow.plots import most_abnormal, roc_grid, timeline_grid
    from vadflow.table import DATASET_TITLES, PROTOCOL_TITLES

    rocs, timelines = [], []
    for d in dict.fromkeys(d for _, d, _ in rows):
        runs = {m + (f" ({v})" if v else ""): min(ms, key=lambda x: x["seed"]) for (m, dd, v), ms in rows.items() if dd == d}
        first = next(iter(runs.values()))
        protocol = first["protocol"]
        title = f"{DATASET_TITLES.get(d, d)}, {PROTOCOL_TITLES.get(protocol, protocol)} protocol"
        rocs.append((title, [(label, r["headline_frames"]["labels"][r["headline_frames"]["keep"]],
                              r["headline_frames"]["frame_scores"][r["headline_frames"]["keep"]]) for label, r in runs.items()]))
        frames = first["headline_frames"]
        lengths = _clip_lengths(frames)
        clips = list(lengths)
        clip = clips[most_abnormal(clips, {c: frames["labels"][lengths[c]] for c in clips})[0]]
        sl = lengths[clip]
        timelines.append({"title": f"{title}: clip {clip} (seed {first['seed']})", "labels": frames["labels"][sl], "keep": frames["keep"][sl],
                          "scores": {label: r["headline_frames"]["frame_scores"][sl] for label, r in runs.items()}})
    roc_grid(out / "roc.png", rocs)
    timeline_grid(out / "timelines.png", timelines)


def _clip_lengths(frames: dict) -> dict[str, slice]:
    """Each clip's slice of a protocol's joined frames."""
    ends = np.cumsum(frames["lengths"])
    return {c: slice(int(e - n), int(e)) for c, n, e in zip(frames["clips"], frames["lengths"], ends)}


def bar_chart(rows: dict, path: Path, records: dict) -> None:
    """Grouped bars: a group per dataset under its headline protocol, a bar per method (seed
    spread as the error bar), the published records of that protocol as markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vadflow.table import DATASET_TITLES, PROTOCOL_TITLES

    datasets = list(dict.fromkeys(d for _, d, _ in rows))
    methods = list(dict.fromkeys(m + (f" ({v})" if v else "") for m, _, v in rows))
    width = 0.8 / max(1, len(methods))
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=110)
    colours = plt.get_cmap("tab10")
    for j, label in enumerate(methods):
        for i, d in enumerate(datasets):
            ms = next((v for (m, dd, var), v in rows.items() if dd == d and m + (f" ({var})" if var else "") == label), None)
            if not ms:
                continue
            auc = 100 * np.array([x["auc"] for x in ms])
            ax.bar(i - 0.4 + (j + 0.5) * width, auc.mean(), width, yerr=auc.std(), capsize=2, color=colours(j % 10), label=label if i == 0 else None)
    for i, d in enumerate(datasets):
        head = next(x for (_, dd, _), v in rows.items() if dd == d for x in v)["protocol"]
        for k, (who, auc, *_rest) in enumerate(records.get((d, head), [])[:2]):
            ax.plot([i - 0.42, i + 0.42], [auc, auc], color="k", ls="-" if k == 0 else ":", lw=1)
            ax.text(i + 0.43, auc, who, fontsize=6, va="center")
    ax.set_xticks(range(len(datasets)), [f"{DATASET_TITLES.get(d, d)}\n({PROTOCOL_TITLES.get(next(x for (_, dd, _), v in rows.items() if dd == d for x in v)['protocol'])} protocol)" for d in datasets], fontsize=8)
    ax.set_ylabel("frame AUC-ROC (%), mean ± std over seeds")
    ax.set_ylim(40, 100)
    ax.set_title("vadflow methods vs published records (lines), each dataset under its record's protocol", fontsize=8)
    ax.legend(fontsize=6, ncol=4, loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def protocol_auc(metrics: dict, protocol: str) -> float | None:
    """A run's AUC under ``protocol``: its headline AUC or one of its other protocols'; None if absent."""
    if metrics["protocol"] == protocol:
        return metrics["auc"]
    return metrics.get("protocols", {}).get(protocol, {}).get("auc")


def write_wide_table(rows: dict, out: Path, name: str) -> str:
    """The README's layout: one row per method (and variant, spec order), one column per dataset
    (spec order) and protocol (MoCoDAD's, MPED-RNN's, STG-NF's, where the runs report them; the
    dataset's headline protocol is starred), ``mean ± std (seeds)``; a last row holds the
    published records, each in the column of the protocol it was measured under."""
    from vadflow.table import RECORDS, TABLE_PROTOCOLS, records_text

    datasets = list(dict.fromkeys(d for _, d, _ in rows))  # rows are filled in spec order
    columns = []  # (dataset, protocol, headline?)
    for d in datasets:
        runs = [x for (_, dd, _), ms in rows.items() if dd == d for x in ms]
        for p in TABLE_PROTOCOLS:
            if any(protocol_auc(x, p) is not None for x in runs):
                columns.append((d, p, any(x["protocol"] == p for x in runs)))
    body = []
    for m, v in dict.fromkeys((m, v) for m, _, v in sorted(rows, key=lambda k: k[2])):
        line = [m + (f" ({v})" if v else "")]
        for d, p, _ in columns:
            auc = [100 * a for x in rows.get((m, d, v), []) if (a := protocol_auc(x, p)) is not None]
            line.append(f"{np.mean(auc):.1f} ± {np.std(auc):.1f} ({len(auc)})" if auc else "-")
        body.append(line)
    if any((d, p) in RECORDS for d, p, _ in columns):
        body.append(["published (same protocol)"] + [records_text(d, p) for d, p, _ in columns])
    return write_table(out, name, ["method"] + [f"{d} {p}" + ("*" if head else "") for d, p, head in columns], body)


def log_table_to_wandb(out: Path, name: str) -> None:
    """The table (its rows) and its figures as one W&B run, offline unless you are logged in."""
    import csv

    import wandb

    from vadflow.config import wandb_offline

    run = wandb.init(project=os.environ.get("WANDB_PROJECT", "vadflow"), job_type="results-table", name=name, dir=str(out),
                     mode="offline" if wandb_offline() else "online", reinit="finish_previous")
    with open(out / f"{name}.csv") as fh:
        rows = list(csv.reader(fh))
    run.log({"table": wandb.Table(columns=rows[0], data=rows[1:]),
             **{f"figures/{p.stem}": wandb.Image(str(p)) for p in (out / f"{name}.png", out / "roc.png", out / "timelines.png") if p.is_file()}})
    run.finish()
    print(f"results table logged to W&B ({'offline: wandb sync ' + run.settings.sync_dir if wandb_offline() else run.url})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default=str(ROOT / "experiments" / "table.yaml"))
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results"))
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--summarise-only", action="store_true", help="write the table from the cells already run; run nothing")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (default: cores / jobs)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="override the spec's seeds (e.g. a quick pass)")
    parser.add_argument("--wandb", action="store_true", help="also log the table and its figures to W&B (a run of job type results-table)")
    parser.add_argument("--missing-only", action="store_true",
                        help="run only cells that were never run; stale ones keep their results (each metrics.json names the code it was trained with)")
    args = parser.parse_args(argv)
    with friendly_errors():  # a bad spec, a missing data root: one line, exit 2
        return _reproduce(args)


def _reproduce(args) -> int:
    spec = load_spec(args.spec)
    jobs = args.jobs or int(spec.get("jobs", 1))
    threads = args.threads or max(1, len(os.sched_getaffinity(0)) // jobs)
    name = spec.get("name", "table")
    cells = []
    for cell in spec_cells(spec, args.seeds):
        overrides = cell_overrides(cell.method, cell.dataset, cell.seed, cell.extra)
        cells.append({"method": cell.method, "dataset": cell.dataset, "variant": cell.variant, "seed": cell.seed, "overrides": overrides,
                      "key": cell_key(overrides), "dir": cell_dir(spec, ROOT, cell)})
    stale = [c for c in cells if not is_fresh(c["dir"], c["key"])]
    todo = [] if args.summarise_only else [c for c in stale if not (args.missing_only and (c["dir"] / "metrics.json").is_file())]
    print(f"reproduce-table: {len(cells)} cells, {len(cells) - len(stale)} fresh, {len(stale) - len(todo)} stale kept, {len(todo)} to run ({jobs} at a time)")
    t0 = time.perf_counter()
    failures = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_cell, c["overrides"], c["dir"], c["key"], threads): c for c in todo}
        for fut, c in futures.items():
            ok, msg = fut.result()
            print(f"  {'done  ' if ok else 'FAILED'} {c['method']} {c['dataset']} {c['variant']} seed {c['seed']}" + ("" if ok else f": {msg}"))
            if not ok:
                failures.append(c)
    print(summarise(cells, Path(args.out), name))
    if args.wandb:
        log_table_to_wandb(Path(args.out), name)
    print(f"reproduce-table: {time.perf_counter() - t0:.0f} s; {len(failures)} failed; written {args.out}/{name}.md, .csv, .png")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
