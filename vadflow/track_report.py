"""What ``vadflow-score`` writes per clip: the per-frame CSV and the segment renderings (the
driving person's skeleton and trajectory across each top segment)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vadflow.data.prepare_arrays import PreparedSplit
from vadflow.scoring.alarms import alarms
from vadflow.scoring.frames import ClipScores


def write_csv(path: Path, clip: ClipScores, threshold: float | None, mask: np.ndarray | None) -> None:
    parts = clip.parts or {}
    cols = (["frame", "score", "score_raw", "person", "n_people"] + [f"part_{name}" for name in parts]
            + (["above_threshold"] if threshold is not None else []) + (["label"] if mask is not None else []))
    lines = [",".join(cols)]
    above = alarms(clip, threshold) if threshold is not None else None
    for f in range(len(clip.raw)):
        row = [str(f), f"{clip.smoothed[f]:.6g}", "" if np.isnan(clip.raw[f]) else f"{clip.raw[f]:.6g}",
               "" if clip.person[f] < 0 else str(int(clip.person[f])), str(int(clip.n_people[f]))]
        row += ["" if np.isnan(v[f]) else f"{v[f]:.6g}" for v in parts.values()]
        if threshold is not None:
            row.append(str(int(above[f])))
        if mask is not None:
            row.append(str(int(mask[f])))
        lines.append(",".join(row))
    path.write_text("\n".join(lines) + "\n")


def render_segments(path: Path, method, split: PreparedSplit, windows, clip_index: int, segments: list[dict], n_frames: int,
                    map_label: str) -> Path | None:
    """One row per segment: the driving person's skeleton (pixels) at ``n_frames`` evenly spaced
    frames of the segment; joints coloured by the method's per-joint map averaged over the
    person's windows covering each frame."""
    from vadflow.localize import draw

    rows_all, maps_all, vis_all, titles, labels, where = [], [], [], [], [], []
    has_map = hasattr(method, "score_map")
    for seg in segments:
        tracks = np.flatnonzero((split.track_clip == clip_index) & (split.track_person == seg["person"]))
        if not len(tracks):
            continue
        t = tracks[0]
        lo, hi = split.track_ptr[t], split.track_ptr[t + 1]
        rows = np.arange(lo, hi)[(split.frames[lo:hi] >= seg["start"]) & (split.frames[lo:hi] <= seg["end"])]
        if not len(rows):
            continue
        rows = rows[np.unique(np.linspace(0, len(rows) - 1, n_frames).round().astype(int))]
        rows = np.pad(rows, (0, n_frames - len(rows)), mode="edge")  # short segment: repeat the last frame
        values = np.zeros((n_frames, split.kp.shape[1]), np.float32)
        if has_map:
            sel = (windows.track == t) & (windows.starts <= rows.max()) & (windows.last >= rows.min())
            if sel.any():
                with torch.inference_mode():
                    maps = method.score_map(windows.batch(np.flatnonzero(sel))).float().numpy()
                values = values_at_rows(maps, windows.starts[sel], windows.last[sel], windows.lead[sel], rows)
        where.append(_trajectory_of(split, lo, hi, rows, seg, windows.builder.scale.tolist()))
        rows_all.append(split.kp[rows].transpose(2, 0, 1))  # (2, F, V) pixels, y down
        vis_all.append(split.vis[rows])
        maps_all.append(values)
        titles.append(f"person {seg['person']}\nframes {seg['start']}-{seg['end']}\npeak {seg['peak_score']:.3g}")
        labels.append([int(f) for f in split.frames[rows]])
    if not rows_all:
        return None
    draw(path, np.stack(rows_all), np.stack(vis_all), np.stack(maps_all) if has_map else None, titles, n_frames,
         frame_labels=labels, map_label=map_label, trajectories=where)
    return path


def values_at_rows(maps: np.ndarray, starts: np.ndarray, last: np.ndarray, lead: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(len(rows), V): each row's per-joint values, averaged over the windows that hold it (zeros
    where none does). ``maps`` is (W, T, V) for windows whose real poses are rows ``starts``..``last``;
    a padded window has ``lead`` padding positions first, so row r sits at position
    ``lead + r - start`` in full and padded windows alike."""
    values = np.zeros((len(rows), maps.shape[2]), np.float32)
    for k, r in enumerate(rows):
        cover = (starts <= r) & (r <= last)
        if cover.any():
            values[k] = maps[cover, lead[cover] + r - starts[cover]].mean(0)
    return values


def _trajectory_of(split: PreparedSplit, lo: int, hi: int, rows: np.ndarray, seg: dict, frame_size) -> dict:
    """The track's box-centre path (detected joints' box), its part in the segment, and the boxes
    at the drawn rows, in pixels: the trajectory panel of ``render_segments``."""
    kp, vis = split.kp[lo:hi], split.vis[lo:hi]
    seen = vis | ~vis.any(1, keepdims=True)  # a row with no detection: every joint
    big = np.finfo(np.float32).max
    lo_xy = np.where(seen[..., None], kp, big).min(1)
    hi_xy = np.where(seen[..., None], kp, -big).max(1)
    centre = (lo_xy + hi_xy) / 2
    inside = (split.frames[lo:hi] >= seg["start"]) & (split.frames[lo:hi] <= seg["end"])
    return {"frame_size": tuple(frame_size), "path": centre, "segment": centre[inside],
            "boxes": np.concatenate([lo_xy[rows - lo], hi_xy[rows - lo]], 1)}
