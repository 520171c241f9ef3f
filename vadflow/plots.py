"""Figures of an evaluation: ROC curve and frame score over time (PNG, matplotlib Agg)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402


def roc_png(path: Path, labels: np.ndarray, scores: np.ndarray, title: str) -> Path:
    fpr, tpr, _ = roc_curve(labels.astype(int), scores)
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.plot(fpr, tpr, lw=1.5)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def timeline_png(path: Path, scores: np.ndarray, mask: np.ndarray | None, title: str, raw: np.ndarray | None = None,
                 threshold: float | None = None, segments=(), parts: dict[str, np.ndarray] | None = None) -> Path:
    """Frame anomaly score over time: ground-truth abnormal frames shaded red (when a mask is
    given), detected segments shaded orange, the threshold dashed, the raw score faint. With
    ``parts`` (the raw score's additive parts, e.g. pose and trajectory) a second panel shows
    each part of the person driving the frame: which one raised the alarm."""
    if parts:
        fig, (ax, ax_parts) = plt.subplots(2, 1, figsize=(8, 3.8), dpi=100, sharex=True, height_ratios=(2.5, 1.3))
    else:
        fig, ax = plt.subplots(figsize=(8, 2.5), dpi=100)
    frames = np.arange(len(scores))
    if raw is not None:
        ax.plot(frames, raw, lw=0.6, color="0.6", alpha=0.7, label="raw")
    ax.plot(frames, scores, lw=1, label="smoothed" if raw is not None else None)
    finite = np.concatenate([scores[np.isfinite(scores)]] + ([raw[np.isfinite(raw)]] if raw is not None else []))
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    if mask is not None:
        ax.fill_between(frames, lo, hi, where=mask.astype(bool), color="tab:red", alpha=0.2, label="abnormal (GT)")
    for k, (start, end) in enumerate(segments):
        ax.axvspan(start - 0.5, end + 0.5, color="tab:orange", alpha=0.25, label="detected" if k == 0 else None)
    if threshold is not None:
        ax.axhline(threshold, color="k", ls="--", lw=0.8, label="threshold")
    ax.set(xlabel="" if parts else "frame", ylabel="anomaly score", title=title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=7)
    if parts:
        for name, values in parts.items():
            ax_parts.plot(frames, values, lw=0.8, label=name)
        for start, end in segments:
            ax_parts.axvspan(start - 0.5, end + 0.5, color="tab:orange", alpha=0.25)
        ax_parts.set(xlabel="frame", ylabel="part of raw score")
        ax_parts.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def evaluation_figures(out_dir: Path, masks: dict, protocol: str, dataset: str, n_clips: int = 3) -> dict[str, list[Path]]:
    """ROC and the timelines of the ``n_clips`` clips with the most abnormal frames, from the saved
    ``frame_scores_<protocol>.npz`` of a run directory. Frames the protocol removes (its saved
    ``keep`` mask, e.g. HR-Avenue's excluded ranges under ``mocodad``) are left out of the ROC and
    drawn as gaps in the timelines, exactly as the AUC counts them."""
    saved = np.load(out_dir / f"frame_scores_{protocol}.npz")
    clips, scores = [str(c) for c in saved["clips"]], saved["scores"]
    keep = saved["keep"].astype(bool) if "keep" in saved.files else np.isfinite(scores)
    lengths = [len(masks[c]) for c in clips]
    offsets = np.r_[0, np.cumsum(lengths)]
    labels = np.concatenate([masks[c] for c in clips])
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(exist_ok=True)
    roc = roc_png(fig_dir / f"roc_{protocol}.png", labels[keep], scores[keep], f"{dataset}, {protocol} protocol")
    order = sorted(range(len(clips)), key=lambda i: -int(masks[clips[i]].sum()))[:n_clips]
    timelines = [
        timeline_png(fig_dir / f"timeline_{protocol}_{clips[i]}.png", scores[offsets[i] : offsets[i + 1]], masks[clips[i]], f"{dataset} {clips[i]} ({protocol})")
        for i in order
    ]
    return {"roc": [roc], "timelines": timelines}
