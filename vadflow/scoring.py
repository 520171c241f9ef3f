"""Window scores -> frame scores -> AUC. Every evaluation protocol lives here, and only here.

Convention: a window score is an *anomaly* score (higher = more anomalous; for flows, the NLL).
STG-NF's code works with normality = -NLL, "min over persons", "+inf -> max finite" and
"normal = positive class"; with anomaly scores these are the same operations mirrored: max over
persons, no-person frames -> the smallest finite anomaly of the evaluated set (most normal),
abnormal = positive class. The AUC is identical.

Protocols (``PROTOCOLS``):

* ``stgnf`` - STG-NF's scoring: each window's score is written at its centre frame
  (start + T//2) for its person; per frame the max over persons; frames with no scored person take
  the most normal score of the whole evaluated set (filled after all clips are joined); each clip
  is smoothed by a cascade of Gaussian filters, sigma = 1..6 (scipy ``gaussian_filter1d``, mode
  reflect); micro AUC over all frames joined. HR clip list (the dataset's ``exclude_clips``, e.g.
  HR-ShanghaiTech without 12_0152).
* ``mpedrnn`` - MPED-RNN's HR evaluation: a person's score on a frame is assembled from *every*
  window of that person covering the frame (their mean; MPED-RNN averages overlapping segments),
  then the max over people; no-person frames most normal; no smoothing; every released mask
  (12_0152 included); frames in the dataset's ``ignore_ranges`` (HR-Avenue keep-mask) left out.

* ``stgnf_full`` - the full-ShanghaiTech approximation: STG-NF scoring over all 107 official test
  masks (``dataset.full_masks``). Poses exist for 101 of them; clips without poses are scored as
  frames with no person (most normal), with a printed warning. An approximation, named as such.

``window_to_frame`` is an option of every protocol: ``centre`` (STG-NF: the window's score lands on
its centre frame only) or ``cover`` (mean over the person's windows covering the frame).

Smoothing is an option of every protocol (``sigmas``); each result names protocol and smoothing.
The AUC is computed once, in float64, from de-duplicated window scores, so it does not depend on the
number of processes, the batch order, or padding added by distributed samplers.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.stats import rankdata

from vadflow.data.types import DataError

log = logging.getLogger(__name__)
STGNF_SIGMAS = (1, 2, 3, 4, 5, 6)


@dataclass(frozen=True)
class Protocol:
    name: str
    sigmas: tuple[float, ...] = ()
    exclude_clips: tuple[str, ...] = ()
    ignore_ranges: dict = field(default_factory=dict)  # clip -> [(first, last), ...] inclusive
    window_to_frame: str = "centre"  # centre | cover

    @property
    def smoothing(self) -> str:
        return "gaussian cascade sigma=" + ",".join(f"{s:g}" for s in self.sigmas) if self.sigmas else "none"


def make_protocol(name: str, exclude_clips=(), ignore_ranges=None, sigmas=None, window_to_frame=None) -> Protocol:
    """Build a named protocol from a dataset's clip lists; ``sigmas`` / ``window_to_frame`` override."""
    if name == "stgnf":
        default_sigmas, exclude, ignore, assign = STGNF_SIGMAS, tuple(exclude_clips), {}, "centre"
    elif name == "stgnf_full":
        default_sigmas, exclude, ignore, assign = STGNF_SIGMAS, (), {}, "centre"
    elif name == "mpedrnn":
        default_sigmas, exclude, assign = (), (), "cover"
        ignore = {str(k): [tuple(int(v) for v in r) for r in rs] for k, rs in (ignore_ranges or {}).items()}
    else:
        raise ValueError(f"unknown protocol {name!r}: known are {sorted(PROTOCOLS)}")
    chosen = default_sigmas if sigmas is None else tuple(float(s) for s in sigmas)
    assign = window_to_frame or assign
    if assign not in ("centre", "cover"):
        raise ValueError(f"window_to_frame must be 'centre' or 'cover', got {assign!r}")
    return Protocol(name, tuple(chosen), exclude, ignore, assign)


PROTOCOLS = {
    "stgnf": "STG-NF scoring (HR clip list, smoothed)",
    "mpedrnn": "MPED-RNN HR evaluation (all masks, keep-mask, raw)",
    "stgnf_full": "STG-NF scoring over the full ShanghaiTech test masks (approximation)",
}


# ----------------------------------------------------------------------------- AUC
def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve, abnormal (label 1) = positive, higher score = more anomalous.

    Mann-Whitney form in float64 with tied scores counted as 1/2: exact, and independent of
    input order. (torchmetrics' AUROC would squash raw NLLs through a sigmoid: never use it here.)"""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in shape")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or inf: the AUC would be meaningless")
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)  # average ranks for ties
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


# ----------------------------------------------------------------------------- gathering
def dedup_window_scores(index: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique window indices with their score. Distributed samplers pad the last batch with
    duplicates; a duplicate must carry the same score (up to float noise), else something is wrong."""
    index = np.asarray(index, dtype=np.int64)
    score = np.asarray(score, dtype=np.float64)
    uniq, first, inverse = np.unique(index, return_index=True, return_inverse=True)
    kept = score[first]
    if len(uniq) != len(index):
        spread = np.abs(score - kept[inverse]).max()
        if spread > 1e-3 * max(1.0, float(np.abs(kept).max())):
            raise ValueError(f"window scores disagree between duplicates (max difference {spread:g})")
    return uniq, kept


def frame_scores(
    clips: list[str], lengths: list[int], win_clip: np.ndarray, win_frame: np.ndarray, win_score: np.ndarray
) -> np.ndarray:
    """All clips' frames joined (clip order as given): per frame the max window anomaly score over
    persons, ``-inf`` where no window scores the frame. ``win_clip`` indexes ``clips``."""
    check_window_frames(clips, lengths, win_clip, win_frame)
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    out = np.full(offsets[-1], -np.inf)
    if len(win_score):
        np.maximum.at(out, offsets[win_clip] + win_frame, win_score)
    return out


def check_window_frames(clips: list[str], lengths: list[int], win_clip: np.ndarray, win_frame: np.ndarray) -> None:
    """A window scoring a frame beyond its clip's mask means labels and poses disagree."""
    if not len(win_frame):
        return
    lengths_arr = np.asarray(lengths)
    bad = (win_frame < 0) | (win_frame >= lengths_arr[win_clip])
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"clip {clips[win_clip[i]]}: a window scores frame {win_frame[i]} but the clip's mask has "
            f"{lengths_arr[win_clip[i]]} frames (label/frame mismatch)"
        )


def cover_frame_scores(
    lengths: list[int], win_clip: np.ndarray, win_person: np.ndarray, win_frame: np.ndarray, win_score: np.ndarray, seg_len: int,
    win_first: np.ndarray | None = None, win_span: np.ndarray | None = None,
) -> np.ndarray:
    """Like :func:`frame_scores`, but each window scores every frame it covers
    (``centre - T//2 .. centre - T//2 + T - 1``, or ``win_first .. win_first + win_span - 1``); a
    person's frame score is the mean over its covering windows, and the frame's score the max over persons."""
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    if not len(win_score):
        return np.full(offsets[-1], -np.inf)
    _, track = np.unique(np.stack([win_clip, np.asarray(win_person, np.int64)]), axis=1, return_inverse=True)
    start = np.asarray(win_frame, np.int64) - seg_len // 2 if win_first is None else np.asarray(win_first, np.int64)
    first = offsets[win_clip] + start
    span = np.full(len(win_score), seg_len, np.int64) if win_span is None else np.asarray(win_span, np.int64)
    score, _, _ = cover_max_over_tracks(int(offsets[-1]), first, span, track.reshape(-1), win_score,
                                     begin=offsets[win_clip], end=offsets[win_clip + 1])
    return score


def cover_max_over_tracks(
    n_frames: int, first: np.ndarray, span: np.ndarray, track: np.ndarray, score: np.ndarray,
    begin: np.ndarray | None = None, end: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Window scores -> frame scores over ``n_frames`` joined frame positions.

    Window ``i`` covers positions ``first[i] .. first[i] + span[i] - 1`` (clipped to
    ``[begin[i], end[i])``, its clip). A track's score on a frame is the mean over its covering
    windows; the frame's score is the max over tracks. Returns ``(score, track, n_tracks)``:
    ``-inf`` and ``-1`` where no window covers the frame; ``track`` is the track that drives each
    frame, ``n_tracks`` how many tracks cover it."""
    out, driver = np.full(n_frames, -np.inf), np.full(n_frames, -1, np.int64)
    if not len(score):
        return out, driver, np.zeros(n_frames, np.int64)
    first, span, track = (np.asarray(a, np.int64) for a in (first, span, track))
    width = int(span.max())
    pos = first[:, None] + np.arange(width)[None]  # (N, width)
    inside = np.arange(width)[None] < span[:, None]
    if begin is not None:
        inside &= pos >= np.asarray(begin)[:, None]
    if end is not None:
        inside &= pos < np.asarray(end)[:, None]
    base = n_frames + 1
    key = (np.broadcast_to(track[:, None], pos.shape)[inside]) * base + pos[inside]
    uniq, inv = np.unique(key, return_inverse=True)
    mean = np.bincount(inv, weights=np.broadcast_to(np.asarray(score, np.float64)[:, None], pos.shape)[inside]) / np.bincount(inv)
    frame, trk = uniq % base, uniq // base
    n_tracks = np.bincount(frame, minlength=n_frames)[:n_frames].astype(np.int64)  # one key per (track, frame)
    order = np.lexsort((mean, frame))  # by frame, then score: the last of each frame is its max
    frame, trk, mean = frame[order], trk[order], mean[order]
    last = np.r_[frame[1:] != frame[:-1], True]
    out[frame[last]], driver[frame[last]] = mean[last], trk[last]
    return out, driver, n_tracks


def smooth(scores: np.ndarray, sigmas) -> np.ndarray:
    for sigma in sigmas:
        scores = gaussian_filter1d(scores, sigma, mode="reflect")
    return scores


# ----------------------------------------------------------------------------- protocol
def evaluate_protocol(
    protocol: Protocol,
    masks: dict[str, np.ndarray],
    win_clip_names: np.ndarray,
    win_frame: np.ndarray,
    win_score: np.ndarray,
    dataset: str = "",
    win_person: np.ndarray | None = None,
    seg_len: int = 24,
    win_first: np.ndarray | None = None,
    win_span: np.ndarray | None = None,
) -> dict:
    """Frame-level AUCs of de-duplicated window scores under one protocol.

    ``win_clip_names`` (N,) clip id of each window, ``win_frame`` (N,) the frame its score is
    written to, ``win_score`` (N,) anomaly score, ``win_person`` (N,) its person (needed by
    ``window_to_frame=cover``). ``masks``: every labelled clip, 1 = abnormal. ``win_first`` /
    ``win_span``: the frames a window covers under ``cover`` (default ``centre - T//2`` and ``T``;
    padded windows of short tracks cover only their track's frames)."""
    win_score = np.asarray(win_score, dtype=np.float64)
    if not np.isfinite(win_score).all():
        raise ValueError(f"{dataset}: {int((~np.isfinite(win_score)).sum())} window scores are NaN or inf")
    clips = [c for c in sorted(masks) if c not in set(protocol.exclude_clips)]
    if not clips:
        raise DataError(f"{dataset}: no labelled clip left to evaluate under the {protocol.name} protocol")
    clip_pos = {c: i for i, c in enumerate(clips)}
    win_clip_names = np.asarray(win_clip_names)
    in_eval = np.array([c in clip_pos for c in win_clip_names], dtype=bool) if len(win_clip_names) else np.zeros(0, bool)
    win_clip = np.array([clip_pos[c] for c in win_clip_names[in_eval]], dtype=np.int64)
    lengths = [len(masks[c]) for c in clips]
    win_frame = np.asarray(win_frame)[in_eval]
    if protocol.window_to_frame == "cover":
        if win_person is None:
            raise ValueError("window_to_frame=cover needs each window's person")
        check_window_frames(clips, lengths, win_clip, win_frame)
        first = None if win_first is None else np.asarray(win_first)[in_eval]
        span = None if win_span is None else np.asarray(win_span)[in_eval]
        raw = cover_frame_scores(lengths, win_clip, np.asarray(win_person)[in_eval], win_frame, win_score[in_eval], seg_len, first, span)
    else:
        raw = frame_scores(clips, lengths, win_clip, win_frame, win_score[in_eval])
    finite = np.isfinite(raw)
    if not finite.any():
        raise ValueError(f"{dataset}: no window was scored in any evaluated clip")
    unscored = sorted(set(clips) - set(np.asarray(clips)[np.unique(win_clip)]))
    if unscored:
        log.warning("%s (%s): %d clip(s) have no scored window; their frames count as most normal: %s",
                    dataset, protocol.name, len(unscored), ", ".join(unscored[:10]) + (" ..." if len(unscored) > 10 else ""))
    filled = np.where(finite, raw, raw[finite].min())  # no person -> most normal, over the whole set
    labels = np.concatenate([masks[c] for c in clips]).astype(bool)
    keep = np.ones(len(labels), bool)
    offsets = np.r_[0, np.cumsum(lengths)]
    for clip, ranges in protocol.ignore_ranges.items():
        if clip in clip_pos:
            i = clip_pos[clip]
            for first, last in ranges:
                keep[offsets[i] + first : offsets[i] + min(last, lengths[i] - 1) + 1] = False
    smoothed = np.concatenate([smooth(filled[offsets[i] : offsets[i + 1]], protocol.sigmas) for i in range(len(clips))])
    per_clip = []
    for i in range(len(clips)):
        sl = slice(offsets[i], offsets[i + 1])
        y, k = labels[sl][keep[sl]], keep[sl]
        if 0 < y.sum() < y.size:
            per_clip.append(roc_auc(y, smoothed[sl][k]))
    return {
        "protocol": protocol.name,
        "smoothing": protocol.smoothing,
        "window_to_frame": protocol.window_to_frame,
        "auc": roc_auc(labels[keep], smoothed[keep]),
        "auc_raw": roc_auc(labels[keep], filled[keep]),
        "auc_macro": float(np.mean(per_clip)) if per_clip else float("nan"),
        "n_clips": len(clips),
        "n_frames": int(keep.sum()),
        "n_abnormal_frames": int(labels[keep].sum()),
        "n_unscored_frames": int((~finite & keep).sum()),
        "frame_scores": smoothed,  # joined clips (arrays are dropped before writing metrics.json)
        "clips": clips,
    }


def format_result(res: dict, dataset: str) -> str:
    """One line that names dataset, protocol and smoothing next to every number."""
    return (
        f"{dataset} | {res['protocol']} protocol (window->frame: {res['window_to_frame']}, smoothing: {res['smoothing']}) | "
        f"micro AUC {100 * res['auc']:.2f} | unsmoothed {100 * res['auc_raw']:.2f} | macro {100 * res['auc_macro']:.2f} | "
        f"{res['n_clips']} clips, {res['n_frames']} frames"
    )
