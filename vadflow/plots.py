"""Figures of an evaluation: ROC curves and frame scores over time (PNG, matplotlib Agg), for a
run directory (``evaluation_figures``) and for the results table (``roc_grid``, ``timeline_grid``).
Sized to be read at the README's width (about 8 inches)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402


def roc_png(path: Path, labels: np.ndarray, scores: np.ndarray, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    _roc(ax, labels, scores, "AUC")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _roc(ax, labels: np.ndarray, scores: np.ndarray, label: str, **style) -> None:
    from vadflow.scoring import roc_auc

    fpr, tpr, _ = roc_curve(labels.astype(int), scores)
    auc = roc_auc(labels, scores)
    ax.plot(fpr, tpr, lw=1.2, label=f"{label} {100 * auc:.1f}", **style)
    ax.plot([0, 1], [0, 1], "k:", lw=0.6)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="lower right", fontsize=6, title="AUC-ROC (%)" if label != "AUC" else None, title_fontsize=6)


def _shade(ax, frames: np.ndarray, lo: float, hi: float, mask: np.ndarray | None, excluded: np.ndarray | None) -> None:
    """Ground truth in red, frames the protocol leaves out of the AUC in grey."""
    if mask is not None:
        ax.fill_between(frames, lo, hi, where=mask.astype(bool), color="tab:red", alpha=0.2, label="abnormal (GT)", step="mid")
    if excluded is not None and excluded.any():
        ax.fill_between(frames, lo, hi, where=excluded.astype(bool), color="0.5", alpha=0.35, label="not evaluated", step="mid")


def timeline_png(path: Path, scores: np.ndarray, mask: np.ndarray | None, title: str, raw: np.ndarray | None = None,
                 threshold: float | None = None, segments=(), parts: dict[str, np.ndarray] | None = None,
                 excluded: np.ndarray | None = None) -> Path:
    """Frame anomaly score over time: ground-truth abnormal frames shaded red (when a mask is
    given), frames the protocol does not evaluate grey, detected segments shaded orange, the
    threshold dashed, the raw score faint. With ``parts`` (the raw score's additive parts, e.g.
    pose and trajectory) a second panel shows each part of the person driving the frame: which
    one raised the alarm."""
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
    _shade(ax, frames, lo, hi, mask, excluded)
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
    greyed in the timelines, exactly as the AUC counts them."""
    saved = np.load(out_dir / f"frame_scores_{protocol}.npz")
    clips, scores = [str(c) for c in saved["clips"]], saved["scores"]
    keep = saved["keep"].astype(bool) if "keep" in saved.files else np.isfinite(scores)
    lengths = [len(masks[c]) for c in clips]
    offsets = np.r_[0, np.cumsum(lengths)]
    labels = np.concatenate([masks[c] for c in clips])
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(exist_ok=True)
    roc = roc_png(fig_dir / f"roc_{protocol}.png", labels[keep], scores[keep], f"{dataset}, {protocol} protocol")
    order = most_abnormal(clips, masks)[:n_clips]
    timelines = [
        timeline_png(fig_dir / f"timeline_{protocol}_{clips[i]}.png", scores[offsets[i] : offsets[i + 1]], masks[clips[i]],
                     f"{dataset} {clips[i]} ({protocol} protocol)", excluded=~keep[offsets[i] : offsets[i + 1]])
        for i in order
    ]
    return {"roc": [roc], "timelines": timelines}


def most_abnormal(clips: list[str], masks: dict) -> list[int]:
    """Clip indices, the most abnormal frames first; clips with at least 10 % of each class before
    clips that are (nearly) abnormal or normal throughout, which show no contrast."""
    def key(i):
        mask = masks[clips[i]]
        abnormal = int(mask.sum())
        return (not 0.1 <= abnormal / max(len(mask), 1) <= 0.9, -abnormal)

    return sorted(range(len(clips)), key=key)


def roc_grid(path: Path, panels: list[tuple[str, list[tuple[str, np.ndarray, np.ndarray]]]]) -> Path:
    """One ROC panel per dataset (its title names dataset and protocol), a curve per method with
    its AUC in the legend. ``panels``: (title, [(method, labels, scores), ...]) on the evaluated frames."""
    fig, axes = plt.subplots(1, len(panels), figsize=(2.8 * len(panels), 3.0), dpi=110, squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, (title, curves) in zip(axes[0], panels):
        for k, (label, labels, scores) in enumerate(curves):
            _roc(ax, labels, scores, label, color=colours(k % 10))
        ax.set_title(title, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.label.set_size(7)
        ax.yaxis.label.set_size(7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def timeline_grid(path: Path, panels: list[dict]) -> Path:
    """One row per dataset: the frame scores over time of its test clip with the most abnormal
    frames, a line per method (each min-max scaled over the clip's evaluated frames, so methods
    on different scales share an axis), truth shaded red, frames the protocol leaves out grey.
    ``panels``: dicts with title, labels (L,), keep (L,), scores {method: (L,)}."""
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 0.5 + 1.8 * len(panels)), dpi=110, squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, panel in zip(axes[:, 0], panels):
        frames = np.arange(len(panel["labels"]))
        keep = panel["keep"].astype(bool)
        _shade(ax, frames, 0.0, 1.0, panel["labels"], ~keep)
        for k, (label, scores) in enumerate(panel["scores"].items()):
            seen = keep & np.isfinite(scores)
            lo, hi = (scores[seen].min(), scores[seen].max()) if seen.any() else (0.0, 1.0)
            ax.plot(frames, np.where(seen, (scores - lo) / max(hi - lo, 1e-12), np.nan), lw=0.8, color=colours(k % 10), label=label)
        ax.set_title(panel["title"], fontsize=8)
        ax.set_ylabel("score (scaled)", fontsize=7)
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("frame", fontsize=7)
    legend = {}  # one legend for every panel, above them
    for ax in axes[:, 0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(list(legend.values()), list(legend), loc="upper center", ncol=min(len(legend), 5), fontsize=6, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / (0.5 + 1.8 * len(panels))))
    fig.savefig(path)
    plt.close(fig)
    return path
