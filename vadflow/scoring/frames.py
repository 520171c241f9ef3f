"""Per-clip frame scores as ``vadflow-score`` reports them: a person's frame score is the mean over
its windows covering the frame, the frame's the max over people (that person *drives* the frame),
then the smoothing. The covering rule is the protocols' (``ScoringWindows.first`` / ``span``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vadflow.scoring.inference import WindowScores
from vadflow.scoring.protocols import cover_max_over_tracks, driver_means, smooth


@dataclass
class ClipScores:
    """Per-frame results of one clip (frame i = index i)."""

    clip: str
    raw: np.ndarray  # (L,) float64, NaN where nobody is scored
    smoothed: np.ndarray  # (L,) float64
    person: np.ndarray  # (L,) int64 driving person, -1 where nobody is scored
    n_people: np.ndarray  # (L,) int64 people scored on the frame
    n_tracks: int
    n_short_tracks: int  # tracks with no window (too short or too gappy): not scored
    parts: dict[str, np.ndarray] | None = None  # the raw score's parts (e.g. pose, trajectory) of the driving person, NaN where nobody is scored


def frame_results(split, windows, scores: WindowScores, lengths: dict[str, int], sigmas, fill: float | None) -> list[ClipScores]:
    """Window scores -> per-clip frame scores. Frames with nobody scored take ``fill`` (a normal
    level; default: the clip's lowest score) before smoothing and stay NaN in ``raw``."""
    clips = list(split.clips)
    offsets = np.r_[0, np.cumsum([lengths[c] for c in clips])].astype(np.int64)
    win_clip = split.track_clip[windows.track]
    cover = (int(offsets[-1]), offsets[win_clip] + windows.first, windows.span, windows.track)
    bounds = {"begin": offsets[win_clip], "end": offsets[win_clip + 1]}
    score, driver, n_people = cover_max_over_tracks(*cover, scores.score, **bounds)
    parts = {name: driver_means(*cover, values, driver, **bounds) for name, values in (scores.parts or {}).items()}
    n_tracks = np.bincount(split.track_clip, minlength=len(clips))
    n_scored = np.bincount(split.track_clip[np.unique(windows.track)], minlength=len(clips))
    out = []
    for i, clip in enumerate(clips):
        sl = slice(offsets[i], offsets[i + 1])
        raw = score[sl]
        seen = np.isfinite(raw)
        level = fill if fill is not None else (raw[seen].min() if seen.any() else 0.0)
        out.append(ClipScores(
            clip=clip,
            raw=np.where(seen, raw, np.nan),
            smoothed=smooth(np.where(seen, raw, level), sigmas) if seen.any() else np.full(len(raw), level),
            person=np.where(seen, split.track_person[np.clip(driver[sl], 0, None)], -1),
            n_people=n_people[sl],
            n_tracks=int(n_tracks[i]),
            n_short_tracks=int(n_tracks[i] - n_scored[i]),
            parts={name: values[sl] for name, values in parts.items()} or None,
        ))
    return out
