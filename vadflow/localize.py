"""Draw where a method finds the anomaly: skeleton strips with joints coloured by their anomaly map.

    vadflow-eval ckpt_path=RUN/model.ckpt save_maps=true paths.output_dir=EVAL
    python -m vadflow.localize --maps EVAL/score_maps.npz --clip 01_0014 --top 3 --out top.png

For the ``--top`` highest-scoring windows of one clip (non-overlapping: a window is skipped if it
overlaps an already chosen window of the same person), one row per window shows ``--frames``
evenly spaced frames of the normalised pose, each joint coloured by its per-frame, per-joint score
(e.g. GMFC-VAE's sample energy); one colour scale for the whole figure. The window coordinates are
rebuilt from the dataset recorded in ``score_maps.npz`` (``--data-root`` / ``--cache-dir`` override
where it is read from).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def pick_windows(score: np.ndarray, person: np.ndarray, start: np.ndarray, seg_len: int, top: int) -> list[int]:
    """Positions of the ``top`` highest scores, skipping windows that overlap a chosen one of the same person."""
    chosen: list[int] = []
    for i in np.argsort(-score, kind="stable"):
        if all(person[i] != person[j] or abs(int(start[i]) - int(start[j])) >= seg_len for j in chosen):
            chosen.append(int(i))
        if len(chosen) == top:
            break
    return chosen


def window_poses(dataset_cfg: dict, paths_cfg: dict, index: np.ndarray):
    """Normalised coordinates (N, 2, T, V) and visibility (N, T, V) of test windows by dataset index."""
    import torch

    from vadflow.config import datamodule_kwargs
    from vadflow.data.datamodule import PoseDataModule

    dm = PoseDataModule(**datamodule_kwargs(dataset_cfg, paths_cfg))
    dm.setup("test")
    batch = dm.test_set.__getitems__(torch.as_tensor(index, dtype=torch.long))
    return batch["x"].numpy(), batch["vis"].numpy().astype(bool)


def draw_trajectory(ax, where: dict) -> None:
    """The whole frame with the person's box-centre path (grey), the part in the window or
    segment (red) and the boxes at the drawn frames: where they are, how big, how fast."""
    from matplotlib.patches import Rectangle

    width, height = where["frame_size"]
    ax.add_patch(Rectangle((0, 0), width, height, fill=False, color="k", lw=0.8))
    ax.plot(*where["path"].T, color="0.65", lw=1)
    ax.plot(*where["segment"].T, color="tab:red", lw=1.5)
    for x0, y0, x1, y1 in where["boxes"]:
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="tab:red", lw=0.6, alpha=0.7))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)  # image y points down
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("where (whole frame)", fontsize=7)


def draw(out: Path, poses: np.ndarray, vis: np.ndarray, maps: np.ndarray | None, titles: list[str], n_frames: int,
         frame_labels: list[list[int]] | None = None, map_label: str = "anomaly map (e.g. sample energy)",
         trajectories: list[dict] | None = None) -> None:
    """One row per window: ``n_frames`` panels of the pose (``poses`` (N, 2, T, V), y down), joints
    coloured by ``maps`` (N, T, V) on one scale for the figure, or plain when ``maps`` is None.
    With ``trajectories`` (one per row: ``frame_size``, ``path`` and ``segment`` (K, 2) box centres
    in pixels, ``boxes`` (F, 4) x0 y0 x1 y1 at the drawn frames) a first column draws the row's
    trajectory in the whole frame (:func:`draw_trajectory`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors

    from vadflow.nn.graph import OPENPOSE_EDGES

    n_win, _, seg_len, _ = poses.shape
    frames = np.unique(np.linspace(0, seg_len - 1, n_frames).round().astype(int))
    lo, hi = np.percentile(maps, [1, 99]) if maps is not None else (0.0, 1.0)  # robust: one extreme joint does not wash out the rest
    norm = colors.Normalize(vmin=float(lo), vmax=float(hi) if hi > lo else float(lo) + 1)
    cmap = plt.get_cmap("inferno")
    extra = 1 if trajectories else 0
    fig, axes = plt.subplots(n_win, len(frames) + extra, figsize=(1.6 * (len(frames) + 1.6 * extra) + 1.2, 2.4 * n_win), squeeze=False,
                             width_ratios=[1.6] * extra + [1] * len(frames))
    if trajectories:
        for w in range(n_win):
            draw_trajectory(axes[w, 0], trajectories[w])
        axes, traj_axes = axes[:, 1:], axes[:, :1]
    for w in range(n_win):
        xs, ys = poses[w, 0], poses[w, 1]
        # every panel is centred on its own frame's pose (people walk across the window), same scale
        half = 0.6 * max(float(np.ptp(xs, axis=1).max()), float(np.ptp(ys, axis=1).max())) + 0.3
        for c, t in enumerate(frames):
            ax = axes[w, c]
            for i, j in OPENPOSE_EDGES:
                ax.plot([xs[t, i], xs[t, j]], [ys[t, i], ys[t, j]], color="0.7", lw=1.2, zorder=1)
            colour = {"c": maps[w, t], "cmap": cmap, "norm": norm} if maps is not None else {"color": "tab:blue"}
            ax.scatter(xs[t], ys[t], **colour, s=22, zorder=2,
                       edgecolors=np.where(vis[w, t], "k", "none"), linewidths=0.6)
            cx, cy = 0.5 * (xs[t].min() + xs[t].max()), 0.5 * (ys[t].min() + ys[t].max())
            ax.set_xlim(cx - half, cx + half)
            ax.set_ylim(cy + half, cy - half)  # image y points down
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"frame {frame_labels[w][t]}" if frame_labels is not None else f"t={t}", fontsize=7)
        (traj_axes if trajectories else axes)[w, 0].set_ylabel(titles[w], fontsize=7)
    if maps is not None:
        fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.8, extend="both", label=map_label)
    fig.suptitle(("joints coloured by score; " if maps is not None else "") + "black edge = observed joint, none = imputed", fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vadflow.localize", description=__doc__.split("\n\n")[0])
    ap.add_argument("--maps", required=True, help="score_maps.npz written by vadflow-eval save_maps=true")
    ap.add_argument("--clip", required=True, help="test clip name, e.g. 01_0014")
    ap.add_argument("--top", type=int, default=3, help="number of most anomalous windows to draw")
    ap.add_argument("--frames", type=int, default=6, help="frames drawn per window")
    ap.add_argument("--out", default="localize.png", help="output PNG")
    ap.add_argument("--data-root", default=None, help="override the data root recorded in the maps file")
    ap.add_argument("--cache-dir", default=None, help="override the cache dir recorded in the maps file")
    args = ap.parse_args(argv)

    z = np.load(args.maps)
    clips = z["clip"].astype(str)
    sel = np.flatnonzero(clips == args.clip)
    if not len(sel):
        print(f"vadflow: error: {args.maps}: no window of clip {args.clip!r} (clips: {', '.join(sorted(set(clips))[:10])} ...)", file=sys.stderr)
        return 2
    dataset_cfg, paths_cfg = json.loads(str(z["dataset"])), json.loads(str(z["paths"]))
    if args.data_root:
        paths_cfg["data_root"] = args.data_root
    if args.cache_dir:
        paths_cfg["cache_dir"] = args.cache_dir
    maps = z["maps"][sel].astype(np.float32)
    score = z["score"][sel] if "score" in z.files else maps.reshape(len(sel), -1).max(1)
    seg_len = maps.shape[1]
    picked = pick_windows(score, z["person"][sel], z["start"][sel], seg_len, args.top)
    rows = sel[picked]
    poses, vis = window_poses(dataset_cfg, paths_cfg, z["index"][rows])
    titles = [f"{args.clip} person {z['person'][r]}\nframes {z['start'][r]}-{z['start'][r] + seg_len - 1}\nscore {float(score[p]):.3g}"
              for r, p in zip(rows, picked)]
    draw(Path(args.out), poses, vis, z["maps"][rows].astype(np.float32), titles, args.frames)
    print(f"wrote {args.out} ({len(rows)} windows of {args.clip})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
