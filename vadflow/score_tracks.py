"""vadflow-score: where are the anomalies in my own pose tracks?

    vadflow-score --ckpt stgnf tracks/ --out scores/            # a shipped model, by name
    vadflow-score --ckpt runs/train/.../model.ckpt a.json b/ --out scores/ --masks gt/ --render

INPUT is an AlphaPose tracked-person JSON (one clip), an MPED-RNN track folder (one CSV per person:
one clip), or a folder holding either (every JSON file and every folder of CSVs is a clip; a
nested CSV folder ``01/0014`` becomes clip ``01_0014``, as in the MPED-RNN release).

The pipeline is the evaluation's, so scores mean the same as in the results table: the
checkpoint's missing-joint handling and window rule, every window (stride 1) scored by the method,
a person's frame score = mean over its windows covering the frame, the frame's score = max over
people (that person *drives* the frame), then smoothing (STG-NF's Gaussian cascade by default).

Per clip it writes ``<clip>.csv`` (per-frame smoothed and raw score, driving person, people
scored), ``<clip>.json`` (summary and the top anomalous segments: start, end, person, peak score),
``<clip>.png`` (score over time, segments and, with ``--masks``, the ground truth shaded), and with
``--render`` ``<clip>_segments.png`` (the driving person's skeleton across each top segment; joints
coloured by the method's per-joint map, e.g. GMFC-VAE's sample energy). ``summary.json`` lists
every clip.

Threshold: ``--threshold X`` (fixed, on the smoothed score) or ``--far R``: the score exceeded by a
fraction R of frames with people in the normal training data, from the calibration stored in the
checkpoint (``vadflow-train`` stores it; ``vadflow-score --calibrate`` adds it to older ones).
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vadflow.data.cameras import row_camera_slots
from vadflow.data.prepare_arrays import PreparedSplit, prepare_split, track_of_rows
from vadflow.data.readers import SkipLog, parse_alphapose_json, parse_mask, parse_mpedrnn_csvs
from vadflow.data.types import DataError, RawSplit, Track
from vadflow.data.windows import WindowBuilder, scoring_windows
from vadflow.methods import needs_trajectory
from vadflow.scoring import STGNF_SIGMAS, cover_max_over_tracks, driver_means, roc_auc, smooth

log = logging.getLogger("vadflow.score")
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
CALIBRATION_LEVELS = np.linspace(0.0, 1.0, 2001)  # quantile levels stored in a checkpoint
JSON_SUFFIX = "_alphapose_tracked_person"
MAP_LABELS = {"gmfcvae": "GMFC-VAE sample energy"}  # default: the method's per-joint score map


# ----------------------------------------------------------------------------- inputs
@dataclass
class ClipSource:
    name: str
    kind: str  # "json" | "csv_dir"
    path: Path


def find_clips(inputs: list[str]) -> list[ClipSource]:
    """Every clip under the given files / folders (see the module docstring), sorted by name."""
    found: list[ClipSource] = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise DataError(f"{path}: no such file or folder")
        if path.is_file():
            if path.suffix.lower() != ".json":
                raise DataError(f"{path}: expected an AlphaPose .json file, an MPED-RNN track folder, or a folder of either")
            found.append(ClipSource(_json_clip_name(path), "json", path))
            continue
        before = len(found)
        for folder in [path, *sorted(p for p in path.rglob("*") if p.is_dir())]:
            if any(folder.glob("*.csv")):
                rel = folder.relative_to(path).parts
                found.append(ClipSource("_".join(rel) if rel else folder.name, "csv_dir", folder))
        found += [ClipSource(_json_clip_name(f), "json", f) for f in sorted(path.rglob("*.json"))]
        if len(found) == before:
            raise DataError(f"{path}: no AlphaPose .json file and no folder of MPED-RNN .csv tracks inside")
    names = [c.name for c in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"two inputs give the same clip name {dupes[0]!r}: " + ", ".join(str(c.path) for c in found if c.name == dupes[0]))
    return sorted(found, key=lambda c: c.name)


def _json_clip_name(path: Path) -> str:
    stem = path.stem
    return stem[: -len(JSON_SUFFIX)] if stem.endswith(JSON_SUFFIX) else stem


def read_clip(src: ClipSource, skips: SkipLog) -> list[Track]:
    if src.kind == "json":
        return parse_alphapose_json(str(src.path), src.path.read_bytes(), src.name, skips)
    files = sorted(src.path.glob("*.csv"))
    tracks = []
    for i, (name, frames, kp) in enumerate(parse_mpedrnn_csvs([(str(f), f.read_bytes()) for f in files], skips)):
        stem = Path(name).stem
        tracks.append(Track(src.name, int(stem) if re.fullmatch(r"\d+", stem) else i, frames, kp, source=name))
    return tracks


def _read_one(src: ClipSource) -> tuple[list[Track], SkipLog]:
    skips = SkipLog()
    return read_clip(src, skips), skips


def read_clips(sources: list[ClipSource], skips: SkipLog, workers: int | None = None) -> list[list[Track]]:
    """Every clip's tracks; several files are parsed in parallel processes (JSON parsing is
    CPU-bound Python: one hour of 25 fps tracks is ~300 MB of JSON)."""
    workers = min(workers or torch.get_num_threads(), len(sources))
    if workers <= 1:
        return [read_clip(src, skips) for src in sources]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        results = list(pool.map(_read_one, sources))
    for _, counts in results:
        skips.merge(counts)
    return [tracks for tracks, _ in results]


def read_masks(folder: str | None, clips: list[str]) -> dict[str, np.ndarray]:
    """``<clip>.npy`` ground-truth masks (1 = abnormal) for the clips that have one."""
    if not folder:
        return {}
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: --masks must be a folder of <clip>.npy files")
    masks = {c: parse_mask(str(root / f"{c}.npy"), (root / f"{c}.npy").read_bytes()) for c in clips if (root / f"{c}.npy").is_file()}
    if not masks:
        raise DataError(f"{root}: no <clip>.npy mask for any of the clips {', '.join(clips[:5])}")
    return masks


# ----------------------------------------------------------------------------- scoring
@dataclass
class ClipScores:
    """Per-frame results of one clip (frame i = index i)."""

    clip: str
    raw: np.ndarray  # (L,) float64, NaN where nobody is scored
    smoothed: np.ndarray  # (L,) float64
    person: np.ndarray  # (L,) int64 driving person, -1 where nobody is scored
    n_people: np.ndarray  # (L,) int64 people scored on the frame
    n_tracks: int
    n_short_tracks: int  # tracks with no full window (too short or too gappy): not scored
    parts: dict[str, np.ndarray] | None = None  # the raw score's parts (e.g. pose, trajectory) of the driving person, NaN where nobody is scored


@dataclass
class ScoredWindows:
    """Every scored window of a split: first and last row, track, score (for --render and calibration)."""

    starts: np.ndarray
    last: np.ndarray
    track: np.ndarray
    score: np.ndarray
    parts: dict[str, np.ndarray] | None = None  # methods with score_parts: the score's parts per window (combine_parts joins them)


def score_windows(method, split: PreparedSplit, seg_len: int, frame_size, stride: int = 1, max_missing: int = 2,
                  use_visibility: bool = True, short_tracks: str = "skip", short_min_len: int = 8,
                  batch_size: int = 8192) -> tuple[ScoredWindows, WindowBuilder]:
    starts, last = scoring_windows(split.frames, split.track_ptr, seg_len, stride, max_missing,
                                   short_tracks=short_tracks, short_min_len=short_min_len)
    builder = WindowBuilder(split.kp, split.vis, seg_len, frame_size, use_visibility, pad_mode=short_tracks if short_tracks != "skip" else "reflect")
    if needs_trajectory(method):  # batches carry the box trajectory and camera
        builder.row_camera = torch.from_numpy(row_camera_slots(split.clips, split.track_clip, split.track_ptr))
    scores = np.empty(len(starts))
    parts = {} if hasattr(method, "score_parts") else None
    was_training = method.training
    method.eval()  # batch norm must use its running statistics (Lightning leaves modules in train mode)
    with torch.inference_mode():
        for i in range(0, len(starts), batch_size):
            sl = slice(i, i + batch_size)
            padded = None if short_tracks == "skip" else torch.from_numpy(last[sl])
            batch = builder.batch(torch.from_numpy(starts[sl]), last=padded)
            batch["index"] = torch.arange(len(batch["x"]))
            if parts is None:
                scores[sl] = method.score(batch).double().numpy()
                continue
            window_parts = method.score_parts(batch)
            for name, value in window_parts.items():
                parts.setdefault(name, np.empty(len(starts)))[sl] = value.double().numpy()
            scores[sl] = method.combine_parts(window_parts).double().numpy()
    method.train(was_training)
    if not np.isfinite(scores).all():
        raise DataError(f"the model gave {int((~np.isfinite(scores)).sum())} NaN/inf window scores (check the input coordinates and --frame-size)")
    return ScoredWindows(starts, last, track_of_rows(split.track_ptr)[starts], scores, parts), builder


def frame_results(split: PreparedSplit, windows: ScoredWindows, lengths: dict[str, int], seg_len: int,
                  sigmas, fill: float | None) -> list[ClipScores]:
    """Window scores -> per-clip frame scores. A window covers the frames from its first to its
    last pose; frames with nobody scored take ``fill`` (a normal level; default: the clip's
    lowest score) before smoothing and stay NaN in ``raw``."""
    clips = list(split.clips)
    offsets = np.r_[0, np.cumsum([lengths[c] for c in clips])].astype(np.int64)
    win_clip = split.track_clip[windows.track]
    first = split.frames[windows.starts]
    last = split.frames[windows.last]
    cover = (int(offsets[-1]), offsets[win_clip] + first, last - first + 1, windows.track)
    bounds = {"begin": offsets[win_clip], "end": offsets[win_clip + 1]}
    score, driver, n_people = cover_max_over_tracks(*cover, windows.score, **bounds)
    parts = {name: driver_means(*cover, values, driver, **bounds) for name, values in (windows.parts or {}).items()}
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


# ----------------------------------------------------------------------------- threshold
def calibration_from_scores(clips: list[ClipScores], sigmas, stride: int, source: str) -> dict:
    """Quantiles of normal frame scores (frames with a person), raw and smoothed, stored in the
    checkpoint; ``threshold_for_far`` reads them."""
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


def calibrate_method(method, train: PreparedSplit, dataset_cfg: dict, seg_len: int, stride: int = 1,
                     sigmas=STGNF_SIGMAS, max_windows: int = 200_000, source: str = "") -> dict:
    """Score the normal training clips with the scoring pipeline and store their quantiles.
    With more than ``max_windows`` windows, whole clips are taken evenly (frame-level scores need
    whole clips)."""
    pipe = Pipeline.for_dataset(method, dataset_cfg, seg_len, stride=stride, sigmas=sigmas)
    return pipe.calibration(_subset_clips(train, seg_len, stride, max_windows), source or f"{dataset_cfg.get('name', '?')} training clips")


def normal_level(clips: list[ClipScores]) -> float:
    """Frames with nobody count as clearly normal: the 1st percentile of normal frame scores."""
    raw = np.concatenate([c.raw for c in clips]) if clips else np.zeros(0)
    raw = raw[np.isfinite(raw)]
    return float(np.quantile(raw, 0.01)) if len(raw) else 0.0


def _subset_clips(split: PreparedSplit, seg_len: int, stride: int, max_windows: int) -> PreparedSplit:
    n_win = np.bincount(split.track_clip, weights=np.maximum(np.diff(split.track_ptr) - seg_len, -1) // stride + 1,
                        minlength=len(split.clips))
    if n_win.sum() <= max_windows:
        return split
    keep_n = max(1, int(len(split.clips) * max_windows / n_win.sum()))
    keep = np.unique(np.linspace(0, len(split.clips) - 1, keep_n).round().astype(int))
    return select_clips(split, keep)


def select_clips(split: PreparedSplit, clip_ids: np.ndarray) -> PreparedSplit:
    tracks = np.flatnonzero(np.isin(split.track_clip, clip_ids))
    rows = np.concatenate([np.arange(split.track_ptr[t], split.track_ptr[t + 1]) for t in tracks]) if len(tracks) else np.zeros(0, np.int64)
    remap = -np.ones(len(split.clips), np.int64)
    remap[clip_ids] = np.arange(len(clip_ids))
    clips = [split.clips[i] for i in clip_ids]
    return PreparedSplit(
        kp=split.kp[rows], vis=split.vis[rows], frames=split.frames[rows],
        track_ptr=np.r_[0, np.cumsum(np.diff(split.track_ptr)[tracks])].astype(np.int64),
        track_clip=remap[split.track_clip[tracks]], track_person=split.track_person[tracks],
        clips=clips, masks={c: split.masks[c] for c in clips if c in split.masks},
    )


def threshold_for_far(calibration: dict, far: float, smoothed: bool = True) -> float:
    if not 0.0 < far < 1.0:
        raise DataError(f"--far must lie in (0, 1), got {far}")
    q = calibration["smoothed_quantiles" if smoothed else "raw_quantiles"]
    return float(np.interp(1.0 - far, calibration["levels"], q))


def _clip_lengths(split: PreparedSplit, masks: dict) -> dict[str, int]:
    ends = {}
    if split.n_tracks:
        last = split.frames[split.track_ptr[1:] - 1]
        for c, f in zip(split.track_clip, last):
            ends[split.clips[c]] = max(ends.get(split.clips[c], 0), int(f) + 1)
    return {c: len(masks[c]) if c in masks else ends.get(c, 0) for c in split.clips}


# ----------------------------------------------------------------------------- segments
def alarms(clip: ClipScores, threshold: float) -> np.ndarray:
    """Frames above the threshold; a frame with nobody scored never raises an alarm."""
    return (clip.smoothed > threshold) & (clip.n_people > 0)


def top_segments(clip: ClipScores, threshold: float, top: int, merge_gap: int, fps: float) -> list[dict]:
    """Runs of frames above the threshold (runs closer than ``merge_gap`` frames are joined),
    the ``top`` highest peaks first; each names the person driving its peak frame."""
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
    segments = []
    for s, e in merged:
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
        segments.append(segment)
    return sorted(segments, key=lambda d: -d["peak_score"])[:top]


# ----------------------------------------------------------------------------- outputs
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


def render_segments(path: Path, method, split: PreparedSplit, builder: WindowBuilder, windows: ScoredWindows,
                    clip_index: int, segments: list[dict], seg_len: int, n_frames: int, map_label: str) -> Path | None:
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
            mine, mine_last = windows.starts[sel], windows.last[sel]
            if len(mine):
                with torch.inference_mode():
                    x, vis = builder(torch.from_numpy(mine), last=torch.from_numpy(mine_last))
                    maps = method.score_map({"x": x, "vis": vis, "index": torch.arange(len(x))}).float().numpy()
                for k, r in enumerate(rows):
                    cover = (mine <= r) & (r <= mine_last)
                    if cover.any():  # position r - start holds row r in full and padded windows alike
                        values[k] = maps[cover, r - mine[cover]].mean(0)
        where.append(_trajectory_of(split, lo, hi, rows, seg, builder.scale.tolist()))
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


# ----------------------------------------------------------------------------- driver
def resolve_checkpoint(name: str) -> Path:
    path = Path(name)
    if path.is_file():
        return path
    shipped = PRETRAINED_DIR / f"{name}_hr_shanghaitech.ckpt"
    if shipped.is_file():
        return shipped
    known = sorted(p.name.split("_hr_")[0] for p in PRETRAINED_DIR.glob("*.ckpt"))
    raise DataError(f"{name}: checkpoint not found (a file, or a shipped model: {', '.join(known)})")


def parse_sigmas(text: str | None) -> tuple[float, ...]:
    """``--sigmas 1,2,3``: Gaussian sigmas applied in turn; default STG-NF's cascade, ``0`` = none."""
    if text is None:
        return STGNF_SIGMAS
    try:
        return tuple(v for v in (float(t) for t in text.split(",")) if v > 0)
    except ValueError as exc:
        raise DataError(f"--sigmas must be comma-separated numbers, got {text!r}") from exc


def parse_frame_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[x,]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        raise DataError(f"--frame-size must look like 856x480, got {text!r}")
    return int(m.group(1)), int(m.group(2))


@dataclass
class Pipeline:
    """A checkpoint's scoring settings, applied the same way to scored, calibration and normal tracks."""

    method: torch.nn.Module
    seg_len: int
    frame_size: tuple[int, int]
    missing_joints: str = "impute"
    conf_threshold: float = 0.0
    max_missing: int = 2
    stride: int = 1
    sigmas: tuple = STGNF_SIGMAS
    short_tracks: str = "skip"

    @classmethod
    def for_dataset(cls, method, dataset_cfg: dict, seg_len: int, **kw) -> "Pipeline":
        size = (856, 480) if dataset_cfg.get("official_quirks") else tuple(int(v) for v in dataset_cfg.get("frame_size", (856, 480)))
        base = {"frame_size": size, "missing_joints": dataset_cfg.get("missing_joints", "impute"),
                "conf_threshold": float(dataset_cfg.get("conf_threshold", 0.0)), "max_missing": int(dataset_cfg.get("max_missing_frames", 2))}
        return cls(method, seg_len, **{**base, **{k: v for k, v in kw.items() if v is not None}})

    def read(self, inputs: list[str], masks_dir: str | None = None) -> tuple[PreparedSplit, dict]:
        sources = find_clips(inputs)
        skips = SkipLog()
        tracks = [t for clip_tracks in read_clips(sources, skips) for t in clip_tracks]
        masks = read_masks(masks_dir, [s.name for s in sources])
        split = with_clips(prepare_split(RawSplit(tracks), self.missing_joints, self.conf_threshold, skips=skips), [s.name for s in sources])
        check_mask_lengths(split, masks, masks_dir)
        skips.report(", ".join(inputs))
        return split, masks

    def run(self, split: PreparedSplit, masks: dict, fill: float | None, sigmas=None):
        windows, builder = score_windows(self.method, split, self.seg_len, self.frame_size, self.stride, self.max_missing,
                                         self.missing_joints == "impute", self.short_tracks)
        lengths = _clip_lengths(split, masks)
        return windows, builder, frame_results(split, windows, lengths, self.seg_len, self.sigmas if sigmas is None else sigmas, fill)

    def calibration(self, split: PreparedSplit, source: str) -> dict:
        """Quantiles of the frame scores of normal tracks (``threshold_for_far`` reads them)."""
        windows, _, raw = self.run(split, {}, fill=0.0, sigmas=())
        level = normal_level(raw)
        clips = frame_results(split, windows, _clip_lengths(split, {}), self.seg_len, self.sigmas, fill=level)
        return {**calibration_from_scores(clips, self.sigmas, self.stride, source), "fill": level, "short_tracks": self.short_tracks}


def score_inputs(args) -> dict:
    from vadflow.checkpoint import load_method, read_checkpoint
    from vadflow.plots import timeline_png

    t0 = time.perf_counter()
    ckpt_path = resolve_checkpoint(args.ckpt)
    ckpt = read_checkpoint(ckpt_path)
    method, method_cfg = load_method(ckpt, ckpt_path)
    dataset_cfg = dict(ckpt.get("dataset") or {})
    sigmas = parse_sigmas(args.sigmas)
    pipe = Pipeline.for_dataset(method, dataset_cfg, int(method_cfg["model"]["seg_len"]), conf_threshold=args.conf_threshold,
                                stride=args.stride, sigmas=sigmas, short_tracks=args.short_tracks)
    if args.frame_size:
        pipe.frame_size = parse_frame_size(args.frame_size)
    calibration = ckpt.get("calibration")
    if args.normal:  # the user's own normal footage beats the model's training data for a threshold
        normal_split, _ = pipe.read(args.normal)
        calibration = pipe.calibration(normal_split, f"your normal tracks ({', '.join(args.normal)})")
    threshold, threshold_info = _choose_threshold(args, calibration, pipe)

    timings = {"load model and calibrate": time.perf_counter() - t0}
    t1 = time.perf_counter()
    split, masks = pipe.read(args.inputs, args.masks)
    timings["read and prepare tracks"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    windows, builder, results = pipe.run(split, masks, calibration.get("fill") if calibration else None)
    timings["score windows and frames"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"checkpoint": str(ckpt_path), "method": method_cfg["name"], "frame_size": list(pipe.frame_size), "fps": args.fps,
               "window": pipe.seg_len, "stride": pipe.stride, "missing_joints": pipe.missing_joints, "short_tracks": pipe.short_tracks,
               "smoothing": _smoothing_name(sigmas), "threshold": threshold_info, "clips": []}
    map_label = MAP_LABELS.get(method_cfg["name"], f"{method_cfg['name']} per-joint score")
    for i, clip in enumerate(results):
        mask = masks.get(clip.clip)
        segments = top_segments(clip, threshold, args.top, args.merge_gap, args.fps) if threshold is not None else []
        info = {
            "clip": clip.clip, "n_frames": len(clip.raw), "n_tracks": clip.n_tracks, "n_tracks_not_scored": clip.n_short_tracks,
            "frames_with_people": int((clip.n_people > 0).sum()),
            "max_score": float(np.nanmax(clip.smoothed)) if len(clip.smoothed) else None,
            "frames_above_threshold": int(alarms(clip, threshold).sum()) if threshold is not None else None,
            "segments": segments,
        }
        if mask is not None and 0 < mask.sum() < len(mask):
            info["auc"] = roc_auc(mask, clip.smoothed)
            info["auc_note"] = f"frame AUC of this clip, smoothed score ({_smoothing_name(sigmas)})"
        write_csv(out / f"{clip.clip}.csv", clip, threshold, mask)
        (out / f"{clip.clip}.json").write_text(json.dumps({**summary, "clips": None, **info}, indent=2))
        timeline_png(out / f"{clip.clip}.png", clip.smoothed, mask, f"{clip.clip} ({method_cfg['name']})", raw=clip.raw,
                     threshold=threshold, segments=[(s["start"], s["end"]) for s in segments], parts=clip.parts)
        if args.render and segments:
            render_segments(out / f"{clip.clip}_segments.png", method, split, builder, windows, i, segments, pipe.seg_len, args.render_frames, map_label)
        summary["clips"].append({k: v for k, v in info.items() if k != "segments"} | {"n_segments": len(segments)})
    timings["write outputs"] = time.perf_counter() - t1
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    summary["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    summary["n_windows"] = int(len(windows.score))
    summary["n_poses"] = int(len(split.frames))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def with_clips(split: PreparedSplit, clips: list[str]) -> PreparedSplit:
    """The split with ``clips`` as its clip list, so inputs whose tracks were all empty still get
    (empty) results instead of vanishing."""
    names = [split.clips[c] for c in split.track_clip]
    index = {c: i for i, c in enumerate(clips)}
    split.track_clip = np.array([index[n] for n in names], np.int64)
    split.clips = list(clips)
    return split


def check_mask_lengths(split: PreparedSplit, masks: dict, folder) -> None:
    for clip, last in _clip_lengths(split, {}).items():
        if clip in masks and last > len(masks[clip]):
            raise DataError(f"{Path(folder) / clip}.npy: the mask has {len(masks[clip])} frames but the tracks of clip {clip} "
                            f"reach frame {last - 1} (label/frame mismatch)")


def _choose_threshold(args, calibration: dict | None, pipe: Pipeline) -> tuple[float | None, dict]:
    if args.threshold is not None:
        return float(args.threshold), {"mode": "fixed", "value": float(args.threshold)}
    if calibration is None:
        log.warning("the checkpoint has no calibration: no threshold, no segments (pass --threshold X, --normal TRACKS, or add one with --calibrate)")
        return None, {"mode": "none"}
    if [float(s) for s in pipe.sigmas] != calibration["sigmas"] or pipe.stride != calibration["stride"] \
            or pipe.short_tracks != calibration.get("short_tracks", "skip"):
        log.warning("smoothing, stride or short-track option differ from the calibration's: the false-alarm rate will not hold")
    value = threshold_for_far(calibration, args.far)
    return value, {"mode": "calibrated", "value": value, "far": args.far, "calibrated_on": calibration["source"],
                   "n_calibration_frames": calibration["n_frames"]}


def _smoothing_name(sigmas) -> str:
    return "gaussian cascade sigma=" + ",".join(f"{s:g}" for s in sigmas) if sigmas else "none"


def calibrate_checkpoint(args) -> Path:
    """``--calibrate``: score the checkpoint's own training data and store the calibration."""
    from vadflow.checkpoint import load_method, read_checkpoint
    from vadflow.data.cache import load_prepared

    ckpt_path = resolve_checkpoint(args.ckpt)
    ckpt = read_checkpoint(ckpt_path)
    if "dataset" not in ckpt:
        raise DataError(f"{ckpt_path}: --calibrate needs a vadflow checkpoint (it names its training dataset)")
    method, method_cfg = load_method(ckpt, ckpt_path)
    ds = ckpt["dataset"]
    train, _, _ = load_prepared(ds["name"], args.data_root, args.cache_dir, ds.get("missing_joints", "impute"),
                                ds.get("conf_threshold", 0.0), ds.get("synthetic"),
                                fix_train_frame_offset=bool(ds.get("fix_train_frame_offset", False)))
    sigmas = parse_sigmas(args.sigmas)
    ckpt["calibration"] = calibrate_method(method, train, ds, int(method_cfg["model"]["seg_len"]), args.stride, sigmas)
    target = Path(args.out) if args.out else ckpt_path
    torch.save(ckpt, target)
    cal = ckpt["calibration"]
    print(f"calibrated {ckpt_path} on {cal['n_frames']} frames of {cal['source']}: threshold at 1% false alarms "
          f"{threshold_for_far(cal, 0.01):.4g}, at 0.1% {threshold_for_far(cal, 0.001):.4g} -> {target}")
    return target


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vadflow-score", description="Score your own pose tracks with a trained vadflow model.",
                                 epilog="Example: vadflow-score --ckpt stgnf tracks/ --out scores/ --render")
    ap.add_argument("inputs", nargs="*", help="AlphaPose JSON files, MPED-RNN track folders, or folders of either")
    ap.add_argument("--ckpt", default="stgnf", help="checkpoint file, or a shipped model name (stgnf, daflow, dsnf, gmfcvae, msgflow)")
    ap.add_argument("--out", default="scores", help="output folder")
    ap.add_argument("--frame-size", default=None, help="WIDTHxHEIGHT of the videos in pixels (default: the checkpoint's dataset)")
    ap.add_argument("--conf-threshold", type=float, default=None, help="AlphaPose joints at or below this confidence count as missing")
    ap.add_argument("--masks", default=None, help="folder of <clip>.npy ground-truth masks (shaded in the plots, AUC per clip)")
    ap.add_argument("--threshold", type=float, default=None, help="fixed threshold on the smoothed score")
    ap.add_argument("--far", type=float, default=0.01, help="false-alarm rate on normal frames (the model's training data, or --normal) for the calibrated threshold")
    ap.add_argument("--sigmas", default=None, help="smoothing: comma-separated Gaussian sigmas in frames, applied in turn (default 1,2,3,4,5,6; 0 = none)")
    ap.add_argument("--stride", type=int, default=1, help="window stride (1 scores every window)")
    ap.add_argument("--short-tracks", default="skip", choices=["skip", "reflect", "edge"],
                    help="tracks shorter than a window: skip (as in training), or score one padded window each")
    ap.add_argument("--normal", action="append", default=None, metavar="TRACKS",
                    help="your own normal tracks (same formats; repeat for several): calibrate --far on them instead of the checkpoint's")
    ap.add_argument("--top", type=int, default=5, help="top segments kept per clip")
    ap.add_argument("--merge-gap", type=int, default=12, help="join segments closer than this many frames")
    ap.add_argument("--fps", type=float, default=25.0, help="frame rate, for times in seconds")
    ap.add_argument("--render", action="store_true", help="draw the driving person's skeleton over each top segment")
    ap.add_argument("--render-frames", type=int, default=8, help="frames drawn per segment with --render")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: every core available)")
    ap.add_argument("--calibrate", action="store_true", help="compute the threshold calibration on the checkpoint's training data and store it")
    ap.add_argument("--data-root", default=None, help="with --calibrate: data root (default $VADFLOW_DATA or ../shared/datasets)")
    ap.add_argument("--cache-dir", default=None, help="with --calibrate: prepare cache (default $VADFLOW_CACHE or .cache)")
    return ap


def main(argv=None) -> int:
    import os

    from vadflow.cli import friendly_errors
    from vadflow.config import set_threads

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    set_threads(args.threads)
    with friendly_errors():
        if args.stride < 1 or args.top < 1 or args.fps <= 0:
            raise DataError("--stride and --top must be >= 1 and --fps > 0")
        if args.calibrate:
            args.data_root = args.data_root or os.environ.get("VADFLOW_DATA") or str(Path(__file__).resolve().parents[2] / "shared" / "datasets")
            args.cache_dir = args.cache_dir or os.environ.get("VADFLOW_CACHE") or ".cache"
            calibrate_checkpoint(args)
            return 0
        if not args.inputs:
            raise DataError("no INPUT given (AlphaPose JSON files, MPED-RNN track folders, or folders of either)")
        summary = score_inputs(args)
        _print_summary(summary, Path(args.out))
    return 0


def _print_summary(summary: dict, out: Path) -> None:
    th = summary["threshold"]
    th_text = {"fixed": lambda: f"fixed threshold {th['value']:.4g}",
               "calibrated": lambda: f"threshold {th['value']:.4g} ({100 * th['far']:g}% false alarms on {th['calibrated_on']})",
               "none": lambda: "no threshold"}[th["mode"]]()
    print(f"{summary['method']} | {len(summary['clips'])} clips, {summary['n_poses']} poses, {summary['n_windows']} windows | "
          f"smoothing {summary['smoothing']} | {th_text} | {summary['seconds']:.1f} s")
    for c in summary["clips"]:
        auc = f" | clip AUC {100 * c['auc']:.1f}" if "auc" in c else ""
        print(f"  {c['clip']}: {c['n_frames']} frames, {c['n_tracks']} tracks ({c['n_tracks_not_scored']} too short to score), "
              f"{c['n_segments']} segments above threshold{auc}")
    print(f"results written to {out}/")


if __name__ == "__main__":
    sys.exit(main())
