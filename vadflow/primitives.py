"""MSG-Flow's motion primitives, made visible: which codes the training windows use, and what they mean.

    python -m vadflow.primitives --run runs/train/synthetic/msgflow/<time>_seed29 [--out DIR] [--top 8]
    python -m vadflow.primitives --ckpt path/to/model.ckpt --out DIR

Every training window (no flips, fixed order; the dataset is the one stored in the checkpoint) is
cut into sub-windows and tokenised by the trained VQ encoder. Writes to ``--out`` (default
``<run>/primitives``):

* ``codebook_usage.png``: how many training sub-windows map to each code (sorted by code index),
  with the usage perplexity in the title;
* ``code_<k>.png`` for the ``--top`` most used codes: the mean normalised pose sequence of all
  sub-windows mapped to code k (model input coordinates, imputed joints included), drawn as a strip
  of skeletons, one per frame (OpenPose-18 edges);
* ``primitives.json``: the usage counts and the codes drawn.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from vadflow.checkpoint import load_method, read_checkpoint
from vadflow.config import datamodule_kwargs, set_threads
from vadflow.data.datamodule import PoseDataModule
from vadflow.data.types import DataError
from vadflow.nn.graph import OPENPOSE_EDGES


@torch.no_grad()
def code_statistics(method, loader) -> tuple[np.ndarray, np.ndarray]:
    """Usage count per code (K,) and the mean sub-window per code (K, C, L, V) over ``loader``."""
    tokens = method.conditioner  # the VQ-token conditioner (MSG-Flow's semantic level)
    K, C, L, V = tokens.quantizer.num_codes, method.in_channels, tokens.sub_len, method.n_joints
    counts = torch.zeros(K, dtype=torch.float64)
    sums = torch.zeros(K, C * L * V, dtype=torch.float64)
    method.eval()
    for batch in loader:
        xs, _ = tokens.subwindows(batch["x"].float())
        codes = tokens.quantizer(tokens.encoder(xs), update=False).codes.reshape(-1)
        counts += torch.bincount(codes, minlength=K).double()
        sums.index_add_(0, codes, xs.reshape(-1, xs.shape[-1]).double())
    means = sums / counts.clamp_min(1.0)[:, None]
    return counts.numpy(), means.view(K, C, L, V).numpy()


def usage_png(path: Path, counts: np.ndarray) -> Path:
    p = counts / max(counts.sum(), 1.0)
    perplexity = float(np.exp(-(p[p > 0] * np.log(p[p > 0])).sum()))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.18 * len(counts)), 3), dpi=100)
    ax.bar(np.arange(len(counts)), counts, width=0.8)
    ax.set(xlabel="code", ylabel="training sub-windows",
           title=f"codebook usage: {int((counts > 0).sum())}/{len(counts)} codes used, perplexity {perplexity:.1f}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def code_png(path: Path, k: int, pose: np.ndarray, count: float, total: float) -> Path:
    """``pose`` (2, L, V): one skeleton per frame, left to right (image y axis points down)."""
    x, y = pose[0], pose[1]
    L = x.shape[0]
    step = 1.3 * max(float(np.ptp(x)), 0.5)
    fig, ax = plt.subplots(figsize=(1.4 * L + 0.5, 3), dpi=100)
    for t in range(L):
        xt = x[t] - x[t].mean() + t * step
        for i, j in OPENPOSE_EDGES:
            ax.plot([xt[i], xt[j]], [y[t, i], y[t, j]], "-", color=plt.cm.viridis(t / max(L - 1, 1)), lw=2)
        ax.plot(xt, y[t], "k.", ms=3)
    ax.invert_yaxis()
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"code {k}: {int(count)} sub-windows ({100 * count / max(total, 1):.1f} %), {L} frames")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def default_paths() -> dict:
    """data_root / cache_dir from conf/paths (environment variables VADFLOW_DATA, VADFLOW_CACHE)."""
    from vadflow.config import default_path

    return {"data_root": default_path("data_root"), "cache_dir": default_path("cache_dir")}


def run_primitives(ckpt_path, out_dir, top: int = 8, data_root: str | None = None, cache_dir: str | None = None,
                   max_windows: int | None = None) -> dict:
    ckpt = read_checkpoint(ckpt_path)
    method, method_cfg = load_method(ckpt, ckpt_path)
    if not hasattr(getattr(method, "conditioner", None), "quantizer"):
        raise DataError(f"{ckpt_path}: not an MSG-Flow checkpoint (method {method_cfg.get('name')!r} has no motion codebook)")
    if "dataset" not in ckpt:
        raise DataError(f"{ckpt_path}: the checkpoint stores no dataset config")
    paths = default_paths() if data_root is None or cache_dir is None else {}
    paths = {"data_root": data_root or paths["data_root"], "cache_dir": cache_dir or paths["cache_dir"]}
    dm = PoseDataModule(**datamodule_kwargs(dict(ckpt["dataset"]), paths))
    dm.setup("fit")
    counts, means = code_statistics(method, dm.statistics_dataloader(max_windows))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [usage_png(out / "codebook_usage.png", counts)]
    drawn = [int(k) for k in np.argsort(-counts, kind="stable")[:top] if counts[k] > 0]
    files += [code_png(out / f"code_{k}.png", k, means[k], counts[k], counts.sum()) for k in drawn]
    info = {"checkpoint": str(ckpt_path), "dataset": ckpt["dataset"]["name"], "counts": counts.astype(int).tolist(),
            "codes_drawn": drawn, "sub_len": method.conditioner.sub_len}
    (out / "primitives.json").write_text(json.dumps(info, indent=2))
    return {"files": [str(f) for f in files], **info}


def main(argv=None) -> int:
    from vadflow.cli import friendly_errors

    ap = argparse.ArgumentParser(prog="python -m vadflow.primitives", description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="run directory holding model.ckpt")
    src.add_argument("--ckpt", help="an MSG-Flow model.ckpt")
    ap.add_argument("--out", help="output folder (default: <run or checkpoint folder>/primitives)")
    ap.add_argument("--top", type=int, default=8, help="draw the N most used codes (default 8)")
    ap.add_argument("--data-root", help="dataset root (default: conf/paths, VADFLOW_DATA)")
    ap.add_argument("--cache-dir", help="prepared-data cache (default: conf/paths, VADFLOW_CACHE)")
    ap.add_argument("--max-windows", type=int, help="use an evenly spaced subset of the training windows")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    set_threads(args.threads)
    ckpt = Path(args.run) / "model.ckpt" if args.run else Path(args.ckpt)
    out = Path(args.out) if args.out else ckpt.parent / "primitives"
    with friendly_errors():
        res = run_primitives(ckpt, out, args.top, args.data_root, args.cache_dir, args.max_windows)
        print(f"{res['dataset']}: {int(sum(res['counts']))} sub-windows, codes drawn {res['codes_drawn']}; wrote {len(res['files'])} PNGs to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
