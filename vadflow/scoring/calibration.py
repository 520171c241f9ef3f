"""False-alarm-rate calibration: quantiles of the frame scores of normal tracks, stored in the
checkpoint, and the threshold that a chosen fraction of normal frames exceeds."""
from __future__ import annotations

import numpy as np

from vadflow.data.inputs import clip_lengths, select_clips
from vadflow.data.prepare_arrays import PreparedSplit
from vadflow.data.types import DataError
from vadflow.scoring.frames import ClipScores, frame_results
from vadflow.scoring.protocols import STGNF_SIGMAS
from vadflow.scoring.tracks import TrackScoring

CALIBRATION_LEVELS = np.linspace(0.0, 1.0, 2001)  # quantile levels stored in a checkpoint


def calibration_from_scores(clips: list[ClipScores], sigmas, stride: int, source: str) -> dict:
    """Quantiles of normal frame scores (frames with a person), raw and smoothed;
    :func:`threshold_for_far` reads them."""
    raw = np.concatenate([c.raw[c.n_people > 0] for c in clips])
    smoothed = np.concatenate([c.smoothed[c.n_people > 0] for c in clips])
    if not len(raw):
        raise DataError(f"{source}: no frame with a scored person to calibrate on")
    return {
        "source": source,
        "stride": int(stride),
        "sigmas": [float(s) for s in sigmas],
        "n_frames": int(len(raw)),
        "n_clips": len(clips),
        "levels": CALIBRATION_LEVELS.tolist(),
        "smoothed_quantiles": np.quantile(smoothed, CALIBRATION_LEVELS).tolist(),
        "raw_quantiles": np.quantile(raw, CALIBRATION_LEVELS).tolist(),
    }


def normal_level(clips: list[ClipScores]) -> float:
    """Frames with nobody count as clearly normal: the 1st percentile of normal frame scores."""
    raw = np.concatenate([c.raw for c in clips]) if clips else np.zeros(0)
    raw = raw[np.isfinite(raw)]
    return float(np.quantile(raw, 0.01)) if len(raw) else 0.0


def calibrate(scoring: TrackScoring, split: PreparedSplit, source: str) -> dict:
    """Quantiles of the frame scores of normal tracks, with the fill level for frames with nobody."""
    windows, scores, raw = scoring.run(split, {}, fill=0.0, sigmas=())
    level = normal_level(raw)
    clips = frame_results(split, windows, scores, clip_lengths(split, {}), scoring.sigmas, fill=level)
    return {**calibration_from_scores(clips, scoring.sigmas, scoring.stride, source), "fill": level, "short_tracks": scoring.short_tracks}


def calibrate_method(method, train: PreparedSplit, dataset_cfg: dict, seg_len: int, stride: int = 1,
                     sigmas=STGNF_SIGMAS, max_windows: int = 200_000, source: str = "") -> dict:
    """Score the normal training clips the way ``vadflow-score`` scores tracks and store their
    quantiles. With more than ``max_windows`` windows, whole clips are taken evenly (frame-level
    scores need whole clips)."""
    scoring = TrackScoring.for_dataset(method, dataset_cfg, seg_len, stride=stride, sigmas=sigmas, short_tracks="skip")
    subset = _subset_clips(train, seg_len, stride, max_windows)
    return calibrate(scoring, subset, source or f"{dataset_cfg.get('name', '?')} training clips")


def threshold_for_far(calibration: dict, far: float, smoothed: bool = True) -> float:
    if not 0.0 < far < 1.0:
        raise DataError(f"--far must lie in (0, 1), got {far}")
    q = calibration["smoothed_quantiles" if smoothed else "raw_quantiles"]
    return float(np.interp(1.0 - far, calibration["levels"], q))


def _subset_clips(split: PreparedSplit, seg_len: int, stride: int, max_windows: int) -> PreparedSplit:
    n_win = np.bincount(split.track_clip, weights=np.maximum(np.diff(split.track_ptr) - seg_len, -1) // stride + 1,
                        minlength=len(split.clips))
    if n_win.sum() <= max_windows:
        return split
    keep_n = max(1, int(len(split.clips) * max_windows / n_win.sum()))
    keep = np.unique(np.linspace(0, len(split.clips) - 1, keep_n).round().astype(int))
    return select_clips(split, keep)
