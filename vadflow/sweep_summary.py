"""The end of a Hydra multirun: mean ± std over seeds per (method, dataset, variant), under every
protocol, written to the sweep folder (``summary.md``, ``summary.csv``, ``summary.json``), printed,
and logged to W&B when the sweep logged there.

A job's *variant* is what its command line sets differently from the sweep's other jobs, seed
aside (``backbone=dual_attention``, ``trajectory=flow``, ...), so one sweep over seeds and options
gives one row per option. Jobs are read from their ``metrics.json``; a job that failed has none
and is counted, not averaged.
"""
from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("vadflow.sweep")
METRICS = ("auc", "auc_pr", "eer", "auc_raw")


def job_overrides(job_dir: Path) -> set[str]:
    """The job's command-line overrides, seed and hydra.* aside."""
    import yaml

    overrides_file = job_dir / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    return {o for o in overrides or [] if not o.split("=", 1)[0].lstrip("+~").startswith(("seed", "hydra"))}


def summarise_runs(job_dirs: list[Path]) -> list[dict]:
    """One row per (method, dataset, variant, protocol): seeds, mean and std of each metric."""
    overrides = {job: job_overrides(job) for job in job_dirs}
    common = set.intersection(*overrides.values()) if overrides else set()
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for job in job_dirs:
        metrics_file = job / "metrics.json"
        if metrics_file.is_file():
            m = json.loads(metrics_file.read_text())
            variant = " ".join(sorted(overrides[job] - common)) or "-"
            groups.setdefault((m["method"], m["dataset"], variant), []).append(m)
    rows = []
    for (method, dataset, variant), runs in sorted(groups.items()):
        for protocol in runs[0]["protocols"]:
            res = [r["protocols"][protocol] for r in runs if protocol in r["protocols"]]
            row = {"method": method, "dataset": dataset, "variant": variant, "protocol": protocol,
                   "headline": protocol == runs[0]["protocol"], "seeds": sorted(r["seed"] for r in runs), "n": len(res)}
            for key in METRICS:
                values = np.array([r[key] for r in res if key in r], dtype=float)
                row[f"{key}_mean"], row[f"{key}_std"] = (float(values.mean()), float(values.std())) if len(values) else (None, None)
            rows.append(row)
    return rows


def write_summary(sweep_dir: Path, rows: list[dict], n_jobs: int) -> str:
    def pct(row, key):
        mean, std = row[f"{key}_mean"], row[f"{key}_std"]
        return "-" if mean is None else f"{100 * mean:.1f} ± {100 * std:.1f}"

    header = ["method", "dataset", "variant", "protocol", "seeds", "AUC-ROC", "AUC-PR", "EER (%)", "AUC-ROC unsmoothed"]
    body = [[r["method"], r["dataset"], r["variant"], r["protocol"] + ("*" if r["headline"] else ""), ",".join(map(str, r["seeds"])),
             pct(r, "auc"), pct(r, "auc_pr"), pct(r, "eer"), pct(r, "auc_raw")] for r in rows]
    n_done = len({(r["method"], r["dataset"], r["variant"], s) for r in rows for s in r["seeds"]})
    md = "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(b) + " |" for b in body])
    md += f"\n\n{n_done} of {n_jobs} jobs wrote metrics; mean ± std over seeds; `*` the dataset's headline protocol.\n"
    (sweep_dir / "summary.md").write_text(md)
    with open(sweep_dir / "summary.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([header] + body)
    (sweep_dir / "summary.json").write_text(json.dumps(rows, indent=2))
    return md


def log_summary_to_wandb(logger_cfg, rows: list[dict], sweep_dir: Path) -> None:
    """One W&B run of job type ``sweep-summary`` in the sweep's group: the table, and one summary
    key per row (``<method>/<dataset>/<variant>/<protocol>/auc_mean``) a dashboard can chart."""
    import wandb

    from vadflow.config import wandb_offline

    cfg = logger_cfg.wandb
    run = wandb.init(project=str(cfg.project), group=f"sweep-{sweep_dir.name}", job_type="sweep-summary", name=f"summary-{sweep_dir.name}",
                     dir=str(sweep_dir), mode="offline" if wandb_offline() else "online", reinit="finish_previous")
    columns = ["method", "dataset", "variant", "protocol", "n"] + [f"{k}_{s}" for k in METRICS for s in ("mean", "std")]
    run.log({"summary": wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])})
    run.summary.update({f"{r['method']}/{r['dataset']}/{r['variant']}/{r['protocol']}/{k}": r[k]
                        for r in rows for k in ("auc_mean", "auc_std", "auc_pr_mean", "eer_mean") if r[k] is not None})
    run.finish()


class MultirunSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        jobs = sorted(p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml"))
        rows = summarise_runs(jobs)
        if not rows:
            log.warning("multirun %s: no job wrote metrics.json, no summary", sweep_dir)
            return
        print(write_summary(sweep_dir, rows, len(jobs)))
        print(f"sweep summary written to {sweep_dir / 'summary.md'}")
        logger_cfg = config.get("logger")
        if logger_cfg and "wandb" in logger_cfg:
            log_summary_to_wandb(logger_cfg, rows, sweep_dir)
