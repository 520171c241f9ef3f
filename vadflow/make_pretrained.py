"""Ship trained runs as vadflow-score's pretrained models: vadflow/pretrained/<method>_hr_shanghaitech.ckpt.

    python -m vadflow.make_pretrained runs/train/hr_shanghaitech/<method>/<run> ...

For each run: the checkpoint with today's scoring options (flows score detected joints only, as the
configs now do under ``missing_joints=impute``), the false-alarm calibration on the run's normal
training clips, and a row in vadflow/pretrained/README.md with the run's test metrics (its
``eval_visible_only/`` re-scoring where there is one) and the command that trained it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from vadflow.checkpoint import PRETRAINED_DIR, load_method, read_checkpoint
from vadflow.config import default_path
from vadflow.data.cache import load_prepared
from vadflow.scoring.calibration import calibrate_method, threshold_for_far

FLOWS = {"stgnf", "daflow", "dsnf"}  # their score option for missing joints


def ship(run: Path, data_root: str, cache_dir: str) -> dict:
    ckpt = read_checkpoint(run / "model.ckpt")
    name = ckpt["method"]["name"]
    if name in FLOWS and ckpt["dataset"].get("missing_joints") == "impute":
        ckpt["method"]["model"]["score_visible_only"] = True
    method, cfg = load_method(ckpt, run / "model.ckpt")
    ds = ckpt["dataset"]
    train, _, _ = load_prepared(ds["name"], data_root, cache_dir, ds.get("missing_joints", "impute"), ds.get("conf_threshold", 0.0))
    ckpt["calibration"] = calibrate_method(method, train, ds, int(cfg["model"]["seg_len"]))
    metrics_file = run / "eval_visible_only" / "metrics.json"
    metrics = json.loads((metrics_file if metrics_file.is_file() else run / "metrics.json").read_text())
    trained = json.loads((run / "metrics.json").read_text())
    overrides = (run / ".hydra" / "overrides.yaml").read_text().split("\n") if (run / ".hydra" / "overrides.yaml").is_file() else []
    args = [o[2:] for o in overrides if o.startswith("- ") and not o[2:].startswith(("logger=", "threads="))]
    out = PRETRAINED_DIR / f"{name}_{ds['name']}.ckpt"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, out)
    return {
        "method": name, "file": out.name, "kb": out.stat().st_size // 1024, "params": trained.get("n_params"), "seed": trained.get("seed"),
        "mpedrnn": metrics["protocols"]["mpedrnn"]["auc"], "stgnf": metrics["protocols"]["stgnf"]["auc"],
        "command": "vadflow-train " + " ".join(args), "commit": trained.get("git_commit", trained.get("commit", "?")),
        "thr1": threshold_for_far(ckpt["calibration"], 0.01), "cal_frames": ckpt["calibration"]["n_frames"],
    }


def main(argv: list[str]) -> int:
    import os

    torch.set_num_threads(int(os.environ.get("THREADS", 1)))
    rows = [ship(Path(r), default_path("data_root"), default_path("cache_dir")) for r in argv]
    lines = [
        "# Pretrained models (HR-ShanghaiTech)",
        "",
        "Trained by vadflow on the HR-ShanghaiTech trajectories (`missing_joints=impute`), one seed each, and",
        "shipped so `vadflow-score --ckpt NAME` works out of the box. AUCs are on the HR-ShanghaiTech test",
        "set (MPED-RNN HR protocol: cover, no smoothing; STG-NF protocol: centre, Gaussian cascade).",
        "Each checkpoint carries a false-alarm calibration: frame-score quantiles on the normal training clips",
        "(windows at stride 1, STG-NF smoothing); `--far 0.01` picks the 1 % point.",
        "",
        "| name | params | file | seed | AUC MPED-RNN protocol | AUC STG-NF protocol | threshold at 1 % false alarms | calibration frames | trained with |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['method']} | {r['params']} | {r['file']} ({r['kb']} kB) | {r['seed']} | {100 * r['mpedrnn']:.1f} | "
                     f"{100 * r['stgnf']:.1f} | {r['thr1']:.3g} | {r['cal_frames']} | `{r['command']}` |")
    lines += ["", "Rebuilt by `python -m vadflow.make_pretrained RUN_DIR ...` from those training runs.", ""]
    (PRETRAINED_DIR / "README.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
