"""Aggregate run directories into a results table (mean ± std over seeds, per protocol).

    python -m vadflow.table [--runs runs/train] [--methods stgnf] [--out experiments/results]

Each run is re-scored from its saved window scores (``window_scores.npz``) with the *current*
protocol code, so every row of the table uses the same evaluation, whatever version trained it.
Rows group runs by method, dataset, missing-joint handling, official quirks, loss, window scoring
and short-track handling; re-scorings of a run's checkpoint (``<run>/eval_*/``, written by
``python -m vadflow.rescore``) count as runs of
their own settings.
"""
from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from vadflow import scoring
from vadflow.config import ROOT, default_path
from vadflow.data.datamodule import PoseDataModule

# Published frame-level results on these datasets, each with the protocol it was measured under
# (vadflow/scoring/protocols.py names the same protocols). A published number is shown only beside a vadflow
# number of the same protocol. (dataset, protocol) -> [(method, AUC-ROC %, AUC-PR % or None, EER or None, source)].
RECORDS = {
    ("hr_avenue", "mocodad"): [("DCMD", 90.0, None, None, "AAAI 2025"), ("MoCoDAD", 89.0, None, None, "CVPR 2023"),
                               ("COSKAD", 87.8, None, None, "2024")],
    ("hr_avenue", "mpedrnn"): [("TrajREC", 89.4, None, None, "WACV 2024, unsmoothed, max over people"),
                               ("MPED-RNN", 86.3, None, None, "CVPR 2019")],
    ("hr_shanghaitech", "mocodad"): [("DCMD", 78.6, None, None, "AAAI 2025"), ("MoCoDAD", 77.6, None, None, "CVPR 2023"),
                                     ("COSKAD", 77.1, None, None, "2024")],
    ("hr_shanghaitech", "mpedrnn"): [("MPED-RNN", 75.4, None, None, "CVPR 2019, per-camera evaluation")],
    # STG-NF's code takes normal frames as the positive class, so its AUC-PR (84.06) is not ours
    ("poselift", "stgnf"): [("Shopformer", 69.15, 44.49, 0.38, "CVPRW 2025"), ("STG-NF", 67.46, None, 0.39, "PoseLift, WACV 2025 workshops")],
}
# Papers' own settings (other pose extractions, or video frames): context only, never in a column of ours
OWN_SETTING = {
    ("stgnf", "hr_shanghaitech"): "87.4 (paper; its own AlphaPose tracks, STG-NF protocol)",
    ("daflow", "hr_shanghaitech"): "87.8 (paper, as quoted by others; its own pose extraction)",
    ("msgflow", "hr_shanghaitech"): "88.1 (paper; its own setting)",
    ("dsnf", "hr_shanghaitech"): "not known here",
    ("gmfcvae", "hr_shanghaitech"): "n/a (paper on video frames: Ped2 92.2, Avenue 83.4)",
    ("gmfcvae", "hr_avenue"): "n/a (paper on video frames: Avenue 83.4)",
}


def records_text(dataset: str, protocol: str) -> str:
    """``DCMD 90.0, MoCoDAD 89.0`` for one (dataset, protocol), or ``-``."""
    return ", ".join(f"{m} {percent_text(auc)}" for m, auc, *_ in RECORDS.get((dataset, protocol), [])) or "-"


def percent_text(value: float) -> str:
    """A published percentage as printed in its paper: 90.0, 87.8, 69.15."""
    text = f"{value:.2f}"
    return text[:-1] if text.endswith("0") else text


EVAL_KEYS = ("protocols", "exclude_clips", "ignore_ranges", "full_masks", "smoothing_sigmas", "window_to_frame", "mocodad")
_DATAMODULES: dict[str, PoseDataModule] = {}  # one set-up datamodule per dataset config (re-scoring many runs)


def current_eval_settings(dataset: str, overrides: list[str] | None = None) -> dict:
    """The dataset's evaluation settings as the config tree defines them today (``overrides``:
    a run's own command line, e.g. a table cell's, instead of ``dataset=<name>``)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from vadflow.config import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=(overrides or [f"dataset={dataset}"]) + ["paths.output_dir=."])
    ds = OmegaConf.to_container(cfg.dataset, resolve=True)
    return {k: ds.get(k) for k in EVAL_KEYS}


# objective class -> the conf/loss name a reader types (loss=vq is the generic weighted Objective)
LOSS_NAMES = {"MeanNLL": "nll", "AWAM": "awam", "GMMEnergy": "gmm_energy"}  # class names older runs recorded


def loss_of_run(run: Path, recorded: str | None = None) -> str:
    """The run's objective: as metrics.json names it, else from its resolved config's loss (runs
    that recorded a class name, or none)."""
    import yaml

    from vadflow.losses import objective_name

    if recorded in LOSS_NAMES:
        return LOSS_NAMES[recorded]
    if recorded and recorded != "Objective":
        return recorded
    cfg_file = run / ".hydra" / "config.yaml"
    loss = (yaml.safe_load(cfg_file.read_text()) or {}).get("loss", {}) if cfg_file.is_file() else {}
    target = str(loss.get("_target_", "")).rsplit(".", 1)[-1]
    if target in LOSS_NAMES:
        return LOSS_NAMES[target]
    awam = "AWAM" in str((loss.get("reducer") or {}).get("_target_", ""))
    return objective_name(loss.get("weights") or {}, awam)


TRAIN_VISIBLE_SUFFIX = " (training NLL over detected joints)"  # method.model.train_visible_only=true
RESCORE_DIRS = "eval_*"  # re-scorings of a run's checkpoint (python -m vadflow.rescore --name eval_...)


def rescore_overrides(scores_dir: Path) -> tuple[dict, dict]:
    """(dataset_overrides, model_overrides) a vadflow-eval re-scoring ran with (its .hydra/config.yaml)."""
    import yaml

    cfg_file = scores_dir / ".hydra" / "config.yaml"
    cfg = yaml.safe_load(cfg_file.read_text()) if cfg_file.is_file() else {}
    return dict(cfg.get("dataset_overrides") or {}), dict(cfg.get("model_overrides") or {})


def scoring_label(model_cfg: dict) -> str:
    """How the run's window scores treat undetected joints (flows: score_visible_only; GMFC-VAE:
    mask_imputed)."""
    if model_cfg.get("score_visible_only") or model_cfg.get("mask_imputed"):
        return "detected joints"
    return "all joints"


def rescore(run: Path, data_root: str, cache_dir: str, scores_dir: Path | None = None) -> dict | None:
    """``scores_dir``: a re-scoring of the run's checkpoint (default: the run's own scores)."""
    metrics = json.loads((run / "metrics.json").read_text())
    ckpt = torch.load(run / "model.ckpt", weights_only=True)
    ds = dict(ckpt["dataset"])
    dataset_overrides, model_overrides = rescore_overrides(scores_dir) if scores_dir is not None else ({}, {})
    ds.update(dataset_overrides)
    results = rescore_window_scores(ds, (scores_dir or run) / "window_scores.npz", data_root, cache_dir)
    model_cfg = {**dict(ckpt["method"].get("model", {})), **model_overrides}
    return {
        "scoring": scoring_label(model_cfg),
        "training": "detected joints" if model_cfg.get("train_visible_only") else "all joints",
        "method": metrics["method"], "dataset": metrics["dataset"], "seed": metrics["seed"],
        "missing_joints": ds.get("missing_joints", "impute"), "official_quirks": bool(ds.get("official_quirks", False)),
        "short_tracks": ds.get("short_tracks", "skip"),
        "loss": loss_of_run(run, metrics.get("loss")),
        "n_params": metrics.get("n_params"), "train_seconds": metrics.get("train_seconds"),
        "results": {r["protocol"]: r for r in results}, "run": str(run),
    }


def rescore_window_scores(dataset_cfg: dict, scores_file: Path, data_root: str, cache_dir: str, run_overrides: list[str] | None = None,
                          **eval_overrides) -> list[dict]:
    """A run's saved window scores under today's protocol definitions (the dataset's, or those of
    the run's own command line ``run_overrides``; ``eval_overrides`` replace dataset evaluation
    settings, e.g. ``mocodad={...}``): nothing is trained or scored again."""
    ds = {**dataset_cfg, **current_eval_settings(dataset_cfg["name"], run_overrides)}
    for key, value in eval_overrides.items():
        ds[key] = {**(ds.get(key) or {}), **value} if isinstance(value, dict) else value
    dm_key = json.dumps({k: v for k, v in ds.items() if k not in EVAL_KEYS}, sort_keys=True, default=str) + data_root + cache_dir
    if dm_key not in _DATAMODULES:
        dm = PoseDataModule(**{**ds, "data_root": data_root, "cache_dir": cache_dir})
        dm.setup()
        _DATAMODULES.clear()  # one dataset's windows at a time
        _DATAMODULES[dm_key] = dm
    dm = _DATAMODULES[dm_key]
    protocols = scoring.protocols_of(ds)
    scores = np.load(scores_file)
    train_score = scores["train_score"] if "train_score" in scores.files else None
    if scoring.needs_training_scores(protocols) and (train_score is None or not len(train_score)):
        raise ValueError(f"{scores_file}: no training-window scores saved (train_score); the mocodad protocol needs them: re-run vadflow-eval")
    offsets = scoring.mocodad_offsets(protocols, train_score)
    return scoring.evaluate_windows(dm.test_windows, scores["index"], scores["score"], protocols, dm.masks_for, dm.name, offsets)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table (no trailing newline)."""
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows])


def write_table(out_dir: Path, name: str, header: list[str], rows: list[list[str]]) -> str:
    """``<name>.md`` (markdown) and ``<name>.csv`` in ``out_dir``; returns the markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / f"{name}.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([header] + rows)
    md = markdown_table(header, rows) + "\n"
    (out_dir / f"{name}.md").write_text(md)
    return md


def fmt(values: list[float]) -> str:
    v = 100 * np.asarray(values)
    return f"{v.mean():.1f} ± {v.std(ddof=0):.1f}" if len(v) > 1 else f"{v.mean():.1f}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=str(ROOT / "runs" / "train"))
    parser.add_argument("--methods", default="stgnf", help="comma-separated")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results"))
    parser.add_argument("--name", default="stgnf_real")
    parser.add_argument("--offset-quantiles", default=None,
                        help="comma-separated quantiles: print each run's mocodad AUC with the score offset at each training-score quantile (the rule's sensitivity), then stop")
    parser.add_argument("--datasets", default=None, help="with --offset-quantiles: comma-separated datasets (default: every dataset found)")
    args = parser.parse_args(argv)
    if args.offset_quantiles:
        print(offset_rule_table(Path(args.runs), [float(q) for q in args.offset_quantiles.split(",")], args.methods, args.datasets))
        return
    data_root, cache_dir = default_path("data_root"), default_path("cache_dir")
    methods = set(args.methods.split(","))
    rows = defaultdict(list)
    for run in find_runs(Path(args.runs)):
        metrics = json.loads((run / "metrics.json").read_text())
        if metrics["method"] not in methods:
            continue
        recs = [rescore(run, data_root, cache_dir)]
        for scores_dir in sorted(run.glob(RESCORE_DIRS)):
            if (scores_dir / "window_scores.npz").exists():
                recs.append(rescore(run, data_root, cache_dir, scores_dir))
        for rec in recs:
            method = rec["method"] + (TRAIN_VISIBLE_SUFFIX if rec["training"] == "detected joints" else "")
            rows[(method, rec["dataset"], rec["missing_joints"], rec["official_quirks"], rec["loss"], rec["scoring"], rec["short_tracks"])].append(rec)
    out_dir = Path(args.out)
    header = ["method", "dataset", "missing joints", "window score over", "short test tracks", "loss", "seeds", "MPED-RNN protocol AUC", "STG-NF protocol AUC",
              "STG-NF protocol, unsmoothed", "full-ShanghaiTech approx. (STG-NF scoring)", "params", "train s (mean)",
              "published on this data, by protocol"]
    table = []
    for (method, dataset, missing, quirks, loss, score_over, short), recs in sorted(
            rows.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] != "impute", kv[0][5] != "detected joints", kv[0][6] != "skip", kv[0][6])):
        def res(protocol: str, key: str, recs=recs) -> list[float]:
            return [r["results"][protocol][key] for r in recs if protocol in r["results"]]

        label = missing + (" + official quirks" if quirks else "")
        table.append([
            method, dataset, label, score_over, short, loss, ",".join(str(r["seed"]) for r in sorted(recs, key=lambda r: r["seed"])),
            fmt(res("mpedrnn", "auc")) if res("mpedrnn", "auc") else "-",
            fmt(res("stgnf", "auc")) if res("stgnf", "auc") else "-",
            fmt(res("stgnf", "auc_raw")) if res("stgnf", "auc_raw") else "-",
            fmt(res("stgnf_full", "auc")) if res("stgnf_full", "auc") else "-",
            str(recs[0]["n_params"]), f"{np.mean([r['train_seconds'] or 0 for r in recs]):.0f}",
            "; ".join(f"{p}: {records_text(dataset, p)}" for p in ("mocodad", "mpedrnn", "stgnf") if (dataset, p) in RECORDS) or "-",
        ])
    md = write_table(out_dir, args.name, header, table)
    print(md)
    print(summary_table(rows, out_dir, args.name + "_summary"))
    if any(key[6] != "skip" for key in rows):
        print(summary_table(rows, out_dir, args.name + "_summary_short_tracks", short_tracks="reflect"))
    n_runs = sum(len(v) for v in rows.values())
    print(f"\nwritten: {out_dir / (args.name + '.md')}, {args.name}_summary.md and .csv ({n_runs} runs of {', '.join(sorted(methods))} under {args.runs})")


def find_runs(root: Path) -> list[Path]:
    """Every training run under ``root``, at any depth (single runs, multirun job folders, the
    table's cells): a folder with metrics.json, window_scores.npz and model.ckpt."""
    return sorted(p.parent for p in root.rglob("metrics.json")
                  if (p.parent / "window_scores.npz").is_file() and (p.parent / "model.ckpt").is_file())


def offset_rule_table(runs: Path, quantiles: list[float], methods: str, datasets: str | None) -> str:
    """mocodad AUC (%) of every run folder under ``runs`` (any depth) for each score-offset
    quantile: mean ± std over the runs of each (dataset, method)."""
    data_root, cache_dir = default_path("data_root"), default_path("cache_dir")
    wanted_methods = set(methods.split(",")) if methods else None
    wanted_datasets = set(datasets.split(",")) if datasets else None
    found = defaultdict(lambda: defaultdict(list))
    for scores_file in sorted(runs.rglob("window_scores.npz")):
        run = scores_file.parent
        if not (run / "model.ckpt").is_file() or not (run / "metrics.json").is_file():
            continue
        metrics = json.loads((run / "metrics.json").read_text())
        if (wanted_methods and metrics["method"] not in wanted_methods) or (wanted_datasets and metrics["dataset"] not in wanted_datasets):
            continue
        ds = dict(torch.load(run / "model.ckpt", weights_only=True)["dataset"])
        for q in quantiles:
            res = rescore_window_scores(ds, scores_file, data_root, cache_dir, protocols=["mocodad"], mocodad={"offset_quantile": q})
            found[(metrics["dataset"], metrics["method"])][q].append(100 * res[0]["auc"])
    header = ["dataset", "method", "runs"] + [f"offset q={q:g}" for q in quantiles]
    rows = [[dataset, method, str(len(by_q[quantiles[0]]))] + [f"{np.mean(by_q[q]):.1f} ± {np.std(by_q[q]):.1f}" for q in quantiles]
            for (dataset, method), by_q in sorted(found.items())]
    return "mocodad protocol, micro AUC (%) by score-offset rule (a quantile of the training windows' scores)\n" + markdown_table(header, rows)


DATASET_TITLES = {"hr_shanghaitech": "HR-ShanghaiTech", "hr_avenue": "HR-Avenue", "poselift": "PoseLift"}
TABLE_PROTOCOLS = ("mocodad", "mpedrnn", "stgnf")  # the protocols the field's records were set with
PROTOCOL_TITLES = {"mocodad": "MoCoDAD", "mpedrnn": "MPED-RNN", "stgnf": "STG-NF", "mpedrnn_pooled": "MPED-RNN pooled", "stgnf_full": "STG-NF full"}


def summary_table(rows: dict, out_dir: Path, name: str, short_tracks: str = "skip") -> str:
    """One row per method: vadflow's missing-joint handling (impute, no quirks, the run's own loss,
    scores over detected joints where measured, ``short_tracks`` as given), both protocols per
    dataset, seeds in brackets."""
    best: dict[tuple[str, str], list[dict]] = {}
    for (method, dataset, missing, quirks, loss, score_over, short), recs in rows.items():
        if missing != "impute" or quirks or short != short_tracks:
            continue
        key = (method, dataset)
        rank = (score_over == "detected joints", len(recs))
        if key not in best or rank > best[key][0]:
            best[key] = [rank, recs, loss, score_over]
    methods = sorted({m for m, _ in best}, key=lambda m: list(METHOD_ORDER).index(m) if m in METHOD_ORDER else 99)
    header = ["method", "params"] + [f"{DATASET_TITLES[d]} {PROTOCOL_TITLES[p]}" for d in DATASET_TITLES for p in TABLE_PROTOCOLS] + ["loss", "score over"]
    table = []
    for method in methods:
        row = [method, ""]
        losses, scorings = set(), set()
        for dataset in DATASET_TITLES:
            entry = best.get((method, dataset))
            if entry is None:
                row += ["-"] * len(TABLE_PROTOCOLS)
                continue
            _, recs, loss, scoring = entry
            row[1] = str(recs[0]["n_params"])
            losses.add(loss)
            scorings.add(scoring)
            for protocol in TABLE_PROTOCOLS:
                v = [r["results"][protocol]["auc"] for r in recs if protocol in r["results"]]
                row.append(f"{fmt(v)} ({len(v)})" if v else "-")
        table.append(row + ["/".join(sorted(losses)), "/".join(sorted(scorings))])
    return write_table(out_dir, name, header, table)


METHOD_ORDER = ("stgnf", "stgnf" + TRAIN_VISIBLE_SUFFIX, "daflow", "daflow_random", "dsnf", "gmfcvae", "msgflow")


if __name__ == "__main__":
    main()
