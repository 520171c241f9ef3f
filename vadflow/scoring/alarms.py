"""Alarms: frames above a threshold, and the top anomalous segments of a clip."""
from __future__ import annotations

import numpy as np

from vadflow.scoring.frames import ClipScores


def alarms(clip: ClipScores, threshold: float) -> np.ndarray:
    """Frames above the threshold; a frame with nobody scored never raises an alarm."""
    return (clip.smoothed > threshold) & (clip.n_people > 0)


def top_segments(clip: ClipScores, threshold: float, top: int, merge_gap: int, fps: float) -> list[dict]:
    """Runs of frames above the threshold (runs closer than ``merge_gap`` frames are joined),
    the ``top`` highest peaks first; each names the person driving its peak frame and, for a
    score with parts, the part that drove it."""
    above = alarms(clip, threshold)
    if not above.any():
        return []
    edges = np.flatnonzero(np.diff(np.r_[0, above.astype(np.int8), 0]))
    runs = [[int(s), int(e) - 1] for s, e in zip(edges[::2], edges[1::2])]
    merged = [runs[0]]
    for s, e in runs[1:]:
        if s - merged[-1][1] - 1 <= merge_gap:
            merged[-1][1] = e
        else:
            merged.append([s, e])
    segments = [_segment(clip, s, e, fps) for s, e in merged]
    return sorted(segments, key=lambda d: -d["peak_score"])[:top]


def _segment(clip: ClipScores, s: int, e: int, fps: float) -> dict:
    peak = s + int(np.argmax(clip.smoothed[s : e + 1]))
    people = clip.person[s : e + 1]
    people = people[people >= 0]
    driver = int(clip.person[peak]) if clip.person[peak] >= 0 else (int(np.bincount(people).argmax()) if len(people) else -1)
    segment = {
        "start": s, "end": e, "peak_frame": peak, "peak_score": float(clip.smoothed[peak]),
        "mean_score": float(clip.smoothed[s : e + 1].mean()), "person": driver,
        "start_s": round(s / fps, 3), "end_s": round((e + 1) / fps, 3),
    }
    if clip.parts:  # which part of the score drove the segment: its mean over the segment's scored frames
        means = {name: float(np.nanmean(v[s : e + 1])) if np.isfinite(v[s : e + 1]).any() else None for name, v in clip.parts.items()}
        segment["parts"] = means
        known = {k: v for k, v in means.items() if v is not None}
        segment["driven_by"] = max(known, key=known.get) if known else None
    return segment
