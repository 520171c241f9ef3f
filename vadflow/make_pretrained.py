"""Ship trained runs as vadflow-score's pretrained models: vadflow/pretrained/<method>_<dataset>[_<component>].ckpt.

    python -m vadflow.make_pretrained RUN_DIR [RUN_DIR ...]

For each run: the checkpoint with today's scoring options (flows score detected joints only, as the
configs now do under ``missing_joints=impute``), the false-alarm calibration on the run's normal
training clips, and its row in vadflow/pretrained/index.json: the run's test metrics under the
dataset's record protocol and MPED-RNN's (its ``eval_visible_only/`` re-scoring where there is one),
the trajectory component and the command that trained it. vadflow/pretrained/README.md is written
from every row of the index, so shipping one run keeps the others.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from vadflow.build import trajectory_kind
from vadflow.checkpoint import PRETRAINED_DIR, load_method, read_checkpoint
from vadflow.config import default_path
from vadflow.data.cache import load_prepared
from vadflow.scoring.calibration import calibrate_method, threshold_for_far

FLOWS = {"stgnf", "daflow", "dsnf"}  # their score option for missing joints


INDEX = PRETRAINED_DIR / "index.json"
RECORD_PROTOCOL = {"hr_shanghaitech": "mocodad", "hr_avenue": "mocodad", "poselift": "stgnf"}  # the protocol each dataset's records were set with
PROTOCOL_NAMES = {"mocodad": "MoCoDAD", "mpedrnn": "MPED-RNN", "stgnf": "STG-NF", "mpedrnn_pooled": "pooled MPED-RNN"}


def shipped_name(method: str, dataset: str, component: str) -> str:
    """``stgnf_hr_shanghaitech``; with a trajectory component ``gmfcvae_hr_shanghaitech_stream``."""
    return f"{method}_{dataset}" + ("" if component == "none" else f"_{component}")


def ship(run: Path, data_root: str, cache_dir: str) -> dict:
    ckpt = read_checkpoint(run / "model.ckpt")
    name = ckpt["method"]["name"]
    if name in FLOWS and ckpt["dataset"].get("missing_joints") == "impute":
        model_cfg = ckpt["method"]["model"]
        (model_cfg["pose"] if "pose" in model_cfg else model_cfg)["score_visible_only"] = True
    method, cfg = load_method(ckpt, run / "model.ckpt")
    ds = ckpt["dataset"]
    train, _, _ = load_prepared(ds["name"], data_root, cache_dir, ds.get("missing_joints", "impute"), ds.get("conf_threshold", 0.0))
    ckpt["calibration"] = calibrate_method(method, train, ds, int(cfg["model"]["seg_len"]))
    metrics_file = run / "eval_visible_only" / "metrics.json"
    metrics = json.loads((metrics_file if metrics_file.is_file() else run / "metrics.json").read_text())
    trained = json.loads((run / "metrics.json").read_text())
    overrides = (run / ".hydra" / "overrides.yaml").read_text().split("\n") if (run / ".hydra" / "overrides.yaml").is_file() else []
    args = [o[2:] for o in overrides if o.startswith("- ") and not o[2:].startswith(("logger=", "threads=", "hydra.", "calibrate=", "figures=", "+trainer.enable_progress_bar"))]
    component = trajectory_kind(ckpt["method"])
    out = PRETRAINED_DIR / f"{shipped_name(name, ds['name'], component)}.ckpt"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, out)
    record = RECORD_PROTOCOL.get(ds["name"], "stgnf")
    return {
        "method": name, "dataset": ds["name"], "component": component, "file": out.name, "kb": out.stat().st_size // 1024,
        "params": trained.get("n_params"), "seed": trained.get("seed"),
        "auc": {p: metrics["protocols"][p]["auc"] for p in (record, "mpedrnn") if p in metrics["protocols"]},
        "command": "vadflow-train " + " ".join(args), "commit": trained.get("git_commit", trained.get("commit", "?")),
        "thr1": threshold_for_far(ckpt["calibration"], 0.01), "cal_frames": ckpt["calibration"]["n_frames"],
    }


def readme(rows: list[dict]) -> str:
    lines = [
        "# Pretrained models",
        "",
        "Trained by vadflow, one seed each (`missing_joints=impute`), and shipped so `vadflow-score --ckpt NAME`",
        "works out of the box: NAME is the file's name without `.ckpt`, or the method alone for its",
        "HR-ShanghaiTech model without a trajectory component (`--ckpt gmfcvae`). AUCs are on the dataset's test",
        "set under the protocol named beside each, measured when the model was trained (`docs/protocols.md`;",
        "\"pooled MPED-RNN\": cover, no smoothing, before the per-camera step of MPED-RNN's exact protocol).",
        "Each checkpoint carries a false-alarm calibration: frame-score quantiles on the normal training clips",
        "(windows at stride 1, STG-NF smoothing); `--far 0.01` picks the 1 % point. The trajectory component:",
        "`none`, `flow`, `frame` or `stream` (`docs/trajectory.md`).",
        "",
        "| name | dataset | trajectory | params | seed | test AUC-ROC | threshold at 1 % false alarms | calibration frames | trained with |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["dataset"] != "hr_shanghaitech", r["dataset"], r["component"] != "none", r["method"])):
        aucs = ", ".join(f"{100 * v:.1f} {PROTOCOL_NAMES.get(p, p)}" for p, v in r["auc"].items())
        lines.append(f"| {r['file'].removesuffix('.ckpt')} | {r['dataset']} | {r['component']} | {r['params']} | {r['seed']} | {aucs} | "
                     f"{r['thr1']:.3g} | {r['cal_frames']} | `{r['command']}` |")
    lines += ["", "Each row is shipped by `python -m vadflow.make_pretrained RUN_DIR` from its training run (the index: `index.json`).", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    import os

    torch.set_num_threads(int(os.environ.get("THREADS", 1)))
    rows = {r["file"]: r for r in (json.loads(INDEX.read_text()) if INDEX.is_file() else [])}
    for run in argv:
        row = ship(Path(run), default_path("data_root"), default_path("cache_dir"))
        rows[row["file"]] = row
    INDEX.write_text(json.dumps(sorted(rows.values(), key=lambda r: r["file"]), indent=1) + "\n")
    text = readme(list(rows.values()))
    (PRETRAINED_DIR / "README.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
