"""Window scores -> frame scores -> AUC under each protocol. Every protocol lives here, and only here.

Convention: a window score is an *anomaly* score (higher = more anomalous; for flows, the NLL).
The abnormal frames are the positive class for every metric (AUC-ROC, AUC-PR, EER). STG-NF's code
works with normality = -NLL, "min over persons", "+inf -> max finite" and "normal = positive
class"; with anomaly scores these are the same operations mirrored, and the AUC-ROC is identical,
but its AUC-PR (normal = positive) is a different number and is not comparable with ours.

Protocols (``PROTOCOLS``), each as its reference code does it:

* ``stgnf`` - STG-NF's scoring (``orhir/STG-NF`` ``utils/scoring_utils.py``): each window's score
  is written at its centre frame (start + T//2) for its person; per frame the max over persons;
  frames with no scored person take the most normal score of the whole evaluated set (filled after
  all clips are joined); each clip is smoothed by a cascade of Gaussian filters, sigma = 1..6
  (scipy ``gaussian_filter1d``, mode reflect); micro AUC over all frames joined. HR clip list (the
  dataset's ``exclude_clips``, e.g. HR-ShanghaiTech without 12_0152).
* ``mpedrnn`` - MPED-RNN's own evaluation (``RomeroBarata/skeleton_based_anomaly_detection``,
  ``tbad/combined_model/evaluate.py``): a person's score on a frame is the mean over *every* window
  of that person covering the frame; per frame the max over people; no-person frames most normal;
  no smoothing; every released mask (12_0152 included). Then, camera by camera (the scene id, the
  clip name before its first ``_``), the frame scores pass through sklearn's
  ``quantile_transform`` (1000 quantiles, uniform output), the cameras are joined in sorted order
  and one AUC is computed; frames in the dataset's ``ignore_ranges`` (HR-Avenue keep-mask) are left
  out. On a one-camera dataset the transform is monotone and changes nothing.
* ``mpedrnn_pooled`` - the same without the per-camera step (every camera's raw scores pooled):
  not MPED-RNN's evaluation on a multi-camera dataset, kept under its own name for comparison.
* ``mocodad`` - MoCoDAD's post-processing (``aleflabo/MoCoDAD`` ``models/mocodad.py:post_processing``
  and ``utils/eval_utils.py``), used by MoCoDAD, COSKAD and DCMD. Per clip (the HR clip list) and
  person, a frame's score is the max over the person's windows covering it and 0 where none does
  (MoCoDAD writes a window's loss at its frames *minus one*, ``frame_offset`` -1; a window
  covering frame 0 so writes at index -1, which numpy takes as the clip's last frame, and so do we); ``pad_scores`` zeroes ``pad`` frames on the present side of every absence;
  clip score = mean over persons (absent = 0) + (max - min over persons of ``log1p``); the
  keep-mask *removes* frames; each clip is shifted right by ``shift`` frames (zeros in front) and
  smoothed by one ``gaussian_filter1d(sigma)``; micro AUC over the joined clips. MoCoDAD fuses
  losses that are >= 0 and about 0 for a normal window, and the fusion is not invariant to a shift
  of the scores, so a window's score enters as ``max(score - score_offset, 0)`` with the offset
  fixed from training windows only (``score_offset`` of :func:`evaluate_protocol`).
* ``stgnf_full`` - the full-ShanghaiTech approximation: STG-NF scoring over all 107 official test
  masks (``dataset.full_masks``). Poses exist for 101 of them; clips without poses are scored as
  frames with no person (most normal), with a printed warning. An approximation, named as such.

``window_to_frame`` is an option of the stgnf and mpedrnn protocols: ``centre`` (STG-NF: the
window's score lands on its centre frame only) or ``cover`` (mean over the person's windows
covering the frame). Smoothing (``sigmas``) is an option of those protocols too; each result names
protocol and smoothing. Every metric is computed once, in float64, from de-duplicated window
scores, so it does not depend on the number of processes, the batch order, or padding added by
distributed samplers.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.stats import rankdata

from vadflow.data.cameras import camera_of
from vadflow.data.types import DataError

log = logging.getLogger(__name__)
STGNF_SIGMAS = (1, 2, 3, 4, 5, 6)


MOCODAD_KEYS = ("shift", "sigma", "pad", "frame_offset", "offset_quantile")


@dataclass(frozen=True)
class Protocol:
    name: str
    sigmas: tuple[float, ...] = ()
    exclude_clips: tuple[str, ...] = ()
    ignore_ranges: dict = field(default_factory=dict)  # clip -> [(first, last), ...] inclusive
    window_to_frame: str = "centre"  # centre | cover (stgnf, mpedrnn); mocodad has its own rule
    per_camera_quantiles: bool = False  # MPED-RNN: quantile-transform each camera's frame scores
    shift: int = 0  # mocodad: frames the clip score is shifted right before smoothing
    sigma: float = 0.0  # mocodad: one gaussian_filter1d
    pad: int = -1  # mocodad: pad_scores' pad_size (-1 = off)
    frame_offset: int = -1  # mocodad: a window's score is written at its frames + frame_offset
    offset_quantile: float = 0.0  # mocodad: score offset = this quantile of the training windows' scores

    @property
    def kind(self) -> str:
        return "mocodad" if self.name == "mocodad" else "frame_max"

    @property
    def smoothing(self) -> str:
        if self.kind == "mocodad":
            pad = f", pad {self.pad}" if self.pad >= 0 else ""
            return f"shift {self.shift}, gaussian sigma={self.sigma:g}{pad}"
        return smoothing_label(self.sigmas)


def smoothing_label(sigmas) -> str:
    """How a cascade of Gaussian filters is named next to every number it produced."""
    return "gaussian cascade sigma=" + ",".join(f"{s:g}" for s in sigmas) if sigmas else "none"


def _ranges(ignore_ranges) -> dict:
    return {str(k): [tuple(int(v) for v in r) for r in rs] for k, rs in (ignore_ranges or {}).items()}


def make_protocol(name: str, exclude_clips=(), ignore_ranges=None, sigmas=None, window_to_frame=None, mocodad=None) -> Protocol:
    """Build a named protocol from a dataset's clip lists; ``sigmas`` / ``window_to_frame``
    override the stgnf/mpedrnn defaults; ``mocodad`` = {shift, sigma, pad, frame_offset} (the
    dataset's MoCoDAD test configuration)."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}: known are {sorted(PROTOCOLS)}")
    if name == "mocodad":
        params = dict(mocodad or {})
        unknown = sorted(set(params) - set(MOCODAD_KEYS))
        missing = [k for k in ("shift", "sigma", "pad", "offset_quantile") if k not in params]
        if unknown or missing:
            raise ValueError(f"the mocodad protocol takes {list(MOCODAD_KEYS)} (dataset.mocodad); unknown {unknown}, missing {missing}")
        if window_to_frame not in (None, "cover") or sigmas not in (None, [], ()):
            raise ValueError("the mocodad protocol has its own window->frame rule and smoothing (dataset.mocodad), "
                             "not dataset.window_to_frame / smoothing_sigmas")
        return Protocol(name, (), tuple(exclude_clips), _ranges(ignore_ranges), "cover", False, int(params["shift"]),
                        float(params["sigma"]), int(params["pad"]), int(params.get("frame_offset", -1)),
                        float(params["offset_quantile"]))
    if name in ("stgnf", "stgnf_full"):
        default_sigmas, exclude, ignore, assign = STGNF_SIGMAS, tuple(exclude_clips) if name == "stgnf" else (), {}, "centre"
    else:  # mpedrnn, mpedrnn_pooled: every released mask, keep-mask, raw
        default_sigmas, exclude, ignore, assign = (), (), _ranges(ignore_ranges), "cover"
    chosen = default_sigmas if sigmas is None else tuple(float(s) for s in sigmas)
    assign = window_to_frame or assign
    if assign not in ("centre", "cover"):
        raise ValueError(f"window_to_frame must be 'centre' or 'cover', got {assign!r}")
    return Protocol(name, tuple(chosen), exclude, ignore, assign, per_camera_quantiles=name == "mpedrnn")


PROTOCOLS = {
    "stgnf": "STG-NF scoring (HR clip list, centre frame, cascaded smoothing)",
    "mpedrnn": "MPED-RNN's evaluation (all masks, keep-mask, raw, per-camera quantile transform)",
    "mpedrnn_pooled": "MPED-RNN's frame scores with every camera pooled (no per-camera step)",
    "mocodad": "MoCoDAD/COSKAD/DCMD post-processing (person fusion, padding, shift, Gaussian)",
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


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """AUC-PR as average precision (sklearn's definition): sum over thresholds of
    (recall step) x precision, abnormal = positive, tied scores one threshold."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == labels.size:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    y, s = labels[order], scores[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(y)[last_of_tie]
    fp = np.cumsum(~y)[last_of_tie]
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * tp / (tp + fp)))


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at every distinct threshold, from (0, 0) to (1, 1); abnormal = positive."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    y, s = labels[order], scores[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    tp, fp = np.cumsum(y)[last_of_tie], np.cumsum(~y)[last_of_tie]
    return np.r_[0.0, fp / max(1, fp[-1])], np.r_[0.0, tp / max(1, tp[-1])]


def equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> float:
    """The error rate where the false-positive rate equals the false-negative rate (1 - TPR),
    linearly interpolated between the two ROC points that bracket the crossing."""
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        return float("nan")
    fpr, tpr = roc_points(labels, scores)
    gap = (1.0 - tpr) - fpr  # decreasing from 1 to -1 along the curve
    i = int(np.argmax(gap <= 0))
    if gap[i] == 0 or i == 0:
        return float(fpr[i])
    t = gap[i - 1] / (gap[i - 1] - gap[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


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


def _track_frame_means(n_frames, first, span, track, values, begin=None, end=None):
    """Per (track, frame) mean of ``values`` over the track's windows covering the frame:
    ``(frame, track, mean)``, one entry per covered pair."""
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
    mean = np.bincount(inv, weights=np.broadcast_to(np.asarray(values, np.float64)[:, None], pos.shape)[inside]) / np.bincount(inv)
    return uniq % base, uniq // base, mean


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
    frame, trk, mean = _track_frame_means(n_frames, first, span, track, score, begin, end)
    n_tracks = np.bincount(frame, minlength=n_frames)[:n_frames].astype(np.int64)  # one key per (track, frame)
    order = np.lexsort((mean, frame))  # by frame, then score: the last of each frame is its max
    frame, trk, mean = frame[order], trk[order], mean[order]
    last = np.r_[frame[1:] != frame[:-1], True]
    out[frame[last]], driver[frame[last]] = mean[last], trk[last]
    return out, driver, n_tracks


def driver_means(n_frames: int, first: np.ndarray, span: np.ndarray, track: np.ndarray, values: np.ndarray, driver: np.ndarray,
                 begin: np.ndarray | None = None, end: np.ndarray | None = None) -> np.ndarray:
    """Per frame, the mean of ``values`` over the windows of the track that drives the frame
    (``driver`` from :func:`cover_max_over_tracks`; NaN where none does): with a score's parts
    as ``values``, which part drove the frame (additive parts sum to its score)."""
    out = np.full(n_frames, np.nan)
    if not len(values):
        return out
    frame, trk, mean = _track_frame_means(n_frames, first, span, track, values, begin, end)
    hit = trk == np.asarray(driver)[frame]
    out[frame[hit]] = mean[hit]
    return out


def smooth(scores: np.ndarray, sigmas) -> np.ndarray:
    for sigma in sigmas:
        scores = gaussian_filter1d(scores, sigma, mode="reflect")
    return scores


# ----------------------------------------------------------------------------- MPED-RNN's per-camera step
def per_camera_quantiles(scores: np.ndarray, clips: list[str], lengths: list[int]) -> np.ndarray:
    """MPED-RNN's ``quantile_transform_errors``: each camera's frame scores (all its clips joined)
    through sklearn's ``quantile_transform`` (1000 quantiles, or as many as there are frames;
    uniform output). ``subsample`` is sklearn's old default (1e5, above any camera here), so the
    transform is deterministic and uses every frame."""
    from sklearn.preprocessing import quantile_transform

    offsets = np.r_[0, np.cumsum(lengths)]
    out = np.empty_like(scores, dtype=np.float64)
    cams = np.array([camera_of(c) for c in clips])
    for cam in sorted(set(cams)):
        idx = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in np.flatnonzero(cams == cam)])
        x = scores[idx].reshape(-1, 1)
        out[idx] = quantile_transform(x, n_quantiles=min(1000, len(x)), output_distribution="uniform",
                                      subsample=100_000, random_state=0, copy=True).reshape(-1)
    return out


# ----------------------------------------------------------------------------- MoCoDAD's post-processing
def pad_absences(score: np.ndarray, pad: int) -> np.ndarray:
    """MoCoDAD's ``pad_scores`` on one person's frame scores (a copy). The absences are the runs
    of zero score among frames ``0 .. n-2`` (the reference never looks at the last frame); a run
    spanning all of them is left alone; every other run is widened by ``pad`` frames on the side(s)
    where the person is present, and the widened range (end exclusive, as the reference's
    ``range``) is set to 0. A run reaching frame ``n-2`` is not widened to the right."""
    n = len(score)
    out = np.array(score, dtype=np.float64)
    if pad < 0:
        return out
    absent = np.flatnonzero(out[: max(n - 1, 0)] == 0)
    if not len(absent):
        return out
    breaks = np.flatnonzero(np.diff(absent) > 1)
    starts, ends = absent[np.r_[0, breaks + 1]], absent[np.r_[breaks, len(absent) - 1]]
    zero = []
    for s, e in zip(starts.tolist(), ends.tolist()):
        if s == 0 and e == n - 2:
            continue
        zero.append((max(s - pad, 0), e if e == n - 2 else min(e + pad, n)))
    for lo, hi in zero:
        out[lo:hi] = 0.0
    return out


def fuse_persons(person_scores: np.ndarray) -> np.ndarray:
    """MoCoDAD's clip score from (P, n) person frame scores: mean over persons (absent = 0) plus
    the spread of ``log1p`` over persons. A clip with nobody in it scores 0 (the reference cannot
    stack an empty list)."""
    if not len(person_scores):
        return np.zeros(person_scores.shape[1] if person_scores.ndim == 2 else 0)
    logs = np.log1p(person_scores)
    return person_scores.mean(0) + (logs.max(0) - logs.min(0))


def shift_and_smooth(score: np.ndarray, shift: int, sigma: float) -> np.ndarray:
    """MoCoDAD's ``score_process``: shift right by ``shift`` (zeros in front), one Gaussian."""
    out = np.zeros_like(score)
    if shift > 0:
        out[shift:] = score[: len(score) - shift] if len(score) > shift else out[shift:]
    else:
        out[:] = score
    return gaussian_filter1d(out, sigma) if sigma > 0 else out


def score_offset(train_scores: np.ndarray, quantile: float) -> float:
    """The mocodad protocol's score offset: a quantile of the training windows' scores (normal
    data only, no test label), so that a typical normal window enters the fusion near 0."""
    train_scores = np.asarray(train_scores, dtype=np.float64)
    if not len(train_scores) or not np.isfinite(train_scores).all():
        raise ValueError("the mocodad score offset needs finite scores of training windows")
    return float(np.quantile(train_scores, quantile))


def mocodad_clip_scores(
    protocol: Protocol, lengths: list[int], keep: np.ndarray, win_clip: np.ndarray, win_person: np.ndarray,
    win_first: np.ndarray, win_span: np.ndarray, loss: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Joined-clip arrays (NaN on removed frames): the fused clip score before shift and
    smoothing, the final score, and the count of frames no window of anybody covers."""
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    fused = np.full(offsets[-1], np.nan)
    final = np.full(offsets[-1], np.nan)
    covered = np.zeros(offsets[-1], bool)
    if len(loss):
        _, track = np.unique(np.stack([win_clip, np.asarray(win_person, np.int64)]), axis=1, return_inverse=True)
        track = track.reshape(-1)
    else:
        track = np.zeros(0, np.int64)
    for i, n in enumerate(lengths):
        sel = np.flatnonzero(win_clip == i)
        persons = []
        for t in np.unique(track[sel]):
            w = sel[track[sel] == t]
            pos = (win_first[w, None] + np.arange(int(win_span[w].max()))[None]) + protocol.frame_offset
            inside = np.arange(pos.shape[1])[None] < win_span[w, None]
            pos, val = pos[inside], np.broadcast_to(loss[w, None], inside.shape)[inside]
            pos = np.where(pos < 0, pos + n, pos)  # numpy's negative index, as the reference's frames - 1
            person = np.zeros(n)
            np.maximum.at(person, pos, val)
            covered[offsets[i] + pos] = True
            persons.append(pad_absences(person, protocol.pad))
        clip = fuse_persons(np.array(persons).reshape(len(persons), n))
        k = keep[offsets[i] : offsets[i + 1]]
        fused[offsets[i] : offsets[i + 1]][k] = clip[k]
        final[offsets[i] : offsets[i + 1]][k] = shift_and_smooth(clip[k], protocol.shift, protocol.sigma)
    return fused, final, ~covered


# ----------------------------------------------------------------------------- protocol
def keep_mask(protocol: Protocol, clips: list[str], lengths: list[int]) -> np.ndarray:
    """Joined frames the protocol evaluates: all but the dataset's ``ignore_ranges``."""
    offsets = np.r_[0, np.cumsum(lengths)]
    keep = np.ones(offsets[-1], bool)
    pos = {c: i for i, c in enumerate(clips)}
    for clip, ranges in protocol.ignore_ranges.items():
        if clip in pos:
            i = pos[clip]
            for first, last in ranges:
                keep[offsets[i] + first : offsets[i] + min(last, lengths[i] - 1) + 1] = False
    return keep


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
    score_offset: float | None = None,
) -> dict:
    """Frame-level metrics of de-duplicated window scores under one protocol.

    ``win_clip_names`` (N,) clip id of each window, ``win_frame`` (N,) the frame its score is
    written to, ``win_score`` (N,) anomaly score, ``win_person`` (N,) its person (needed by
    ``cover`` and ``mocodad``). ``masks``: every labelled clip, 1 = abnormal. ``win_first`` /
    ``win_span``: the frames a window covers (default ``centre - T//2`` and ``T``; padded windows of
    short tracks cover only their track's frames). ``score_offset``: mocodad only, subtracted from
    every window score before the fusion (scores below it count as 0)."""
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
    if (protocol.window_to_frame == "cover" or protocol.kind == "mocodad") and win_person is None:
        raise ValueError(f"the {protocol.name} protocol needs each window's person")
    check_window_frames(clips, lengths, win_clip, win_frame)
    first = (win_frame - seg_len // 2) if win_first is None else np.asarray(win_first)[in_eval]
    span = np.full(len(win_frame), seg_len) if win_span is None else np.asarray(win_span)[in_eval]
    unscored = sorted(set(clips) - set(np.asarray(clips)[np.unique(win_clip)]))
    if unscored:
        log.warning("%s (%s): %d clip(s) have no scored window; their frames count as most normal: %s",
                    dataset, protocol.name, len(unscored), ", ".join(unscored[:10]) + (" ..." if len(unscored) > 10 else ""))
    labels = np.concatenate([masks[c] for c in clips]).astype(bool)
    keep = keep_mask(protocol, clips, lengths)
    offsets = np.r_[0, np.cumsum(lengths)]
    extra = {}
    if protocol.kind == "mocodad":
        if score_offset is None:
            raise ValueError("the mocodad protocol needs a score_offset (fixed from training windows)")
        loss = np.maximum(win_score[in_eval] - float(score_offset), 0.0)
        raw, final, no_window = mocodad_clip_scores(protocol, lengths, keep, win_clip, np.asarray(win_person)[in_eval],
                                                    np.asarray(first, np.int64), np.asarray(span, np.int64), loss)
        unscored_kept = no_window & keep
        extra["score_offset"] = float(score_offset)
    else:
        if protocol.window_to_frame == "cover":
            frame = cover_frame_scores(lengths, win_clip, np.asarray(win_person)[in_eval], win_frame, win_score[in_eval], seg_len, first, span)
        else:
            frame = frame_scores(clips, lengths, win_clip, win_frame, win_score[in_eval])
        finite = np.isfinite(frame)
        if not finite.any():
            raise ValueError(f"{dataset}: no window was scored in any evaluated clip")
        unscored_kept = ~finite & keep
        raw = np.where(finite, frame, frame[finite].min())  # no person -> most normal, over the whole set
        final = np.concatenate([smooth(raw[offsets[i] : offsets[i + 1]], protocol.sigmas) for i in range(len(clips))])
        if protocol.per_camera_quantiles:
            raw, final = per_camera_quantiles(raw, clips, lengths), per_camera_quantiles(final, clips, lengths)
            extra["n_cameras"] = len({camera_of(c) for c in clips})
    per_clip = []
    for i in range(len(clips)):
        sl = slice(offsets[i], offsets[i + 1])
        y, k = labels[sl][keep[sl]], keep[sl]
        if 0 < y.sum() < y.size:
            per_clip.append(roc_auc(y, final[sl][k]))
    y, s = labels[keep], final[keep]
    return {
        "protocol": protocol.name,
        "smoothing": protocol.smoothing,
        "window_to_frame": "max over covering windows (frames - 1)" if protocol.kind == "mocodad" else protocol.window_to_frame,
        "auc": roc_auc(y, s),
        "auc_pr": average_precision(y, s),
        "eer": equal_error_rate(y, s),
        "auc_raw": roc_auc(y, raw[keep]),
        "auc_macro": float(np.mean(per_clip)) if per_clip else float("nan"),
        "n_clips": len(clips),
        "n_frames": int(keep.sum()),
        "n_abnormal_frames": int(y.sum()),
        # frames no window scores enter as most normal (only a protocol's smoothing reaches them): an abnormal one is a likely miss
        "n_unscored_frames": int(unscored_kept.sum()),
        "n_unscored_abnormal_frames": int((unscored_kept & labels).sum()),
        **extra,
        "frame_scores": final,  # joined clips, NaN on frames a protocol removes (arrays are dropped before writing metrics.json)
        "keep": keep,
        "labels": labels,
        "clips": clips,
        "lengths": lengths,
    }


def format_result(res: dict, dataset: str) -> str:
    """One line that names dataset, protocol and smoothing next to every number."""
    return (
        f"{dataset} | {res['protocol']} protocol (window->frame: {res['window_to_frame']}, smoothing: {res['smoothing']}) | "
        f"micro AUC {100 * res['auc']:.2f} | AUC-PR {100 * res['auc_pr']:.2f} | EER {res['eer']:.3f} | "
        f"unsmoothed {100 * res['auc_raw']:.2f} | macro {100 * res['auc_macro']:.2f} | "
        f"{res['n_clips']} clips, {res['n_frames']} frames"
        + (f" ({res['n_unscored_frames']} unscored, {res['n_unscored_abnormal_frames']} of them abnormal)" if res.get("n_unscored_frames") else "")
    )
