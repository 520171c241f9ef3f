"""A user's pose tracks: which clips a list of files and folders holds, read with the dataset
readers (``readers.py``) and prepared like any split (``prepare_arrays.py``).

An input is an AlphaPose tracked-person JSON (one clip), an MPED-RNN track folder (one CSV per
person: one clip), or a folder holding either (every JSON file and every folder of CSVs is a clip;
a nested CSV folder ``01/0014`` becomes clip ``01_0014``, as in the MPED-RNN release). Labels are
a folder of ``<clip>.npy`` masks.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vadflow.data.prepare_arrays import PreparedSplit, prepare_split
from vadflow.data.readers import SkipLog, parse_alphapose_json, parse_mask, parse_mpedrnn_csvs
from vadflow.data.types import DataError, RawSplit, Track

JSON_SUFFIX = "_alphapose_tracked_person"


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


def with_clips(split: PreparedSplit, clips: list[str]) -> PreparedSplit:
    """The split with ``clips`` as its clip list, so inputs whose tracks were all empty still get
    (empty) results instead of vanishing."""
    names = [split.clips[c] for c in split.track_clip]
    index = {c: i for i, c in enumerate(clips)}
    split.track_clip = np.array([index[n] for n in names], np.int64)
    split.clips = list(clips)
    return split


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


def read_inputs(inputs: list[str], masks_dir: str | None = None, missing_joints: str = "impute",
                conf_threshold: float = 0.0) -> tuple[PreparedSplit, dict]:
    """The prepared split of every clip under ``inputs`` (every input clip listed, also one whose
    tracks were all empty) and the masks found for them; what the readers skip is reported once."""
    sources = find_clips(inputs)
    skips = SkipLog()
    tracks = [t for clip_tracks in read_clips(sources, skips) for t in clip_tracks]
    masks = read_masks(masks_dir, [s.name for s in sources])
    split = with_clips(prepare_split(RawSplit(tracks), missing_joints, conf_threshold, skips=skips), [s.name for s in sources])
    check_mask_lengths(split, masks, masks_dir)
    skips.report(", ".join(inputs))
    return split, masks


def last_frames(split: PreparedSplit) -> dict[str, int]:
    """Per clip, one past the last frame that has a pose (0 for a clip without tracks)."""
    ends = {c: 0 for c in split.clips}
    if split.n_tracks:
        for c, f in zip(split.track_clip, split.frames[split.track_ptr[1:] - 1]):
            ends[split.clips[c]] = max(ends[split.clips[c]], int(f) + 1)
    return ends


def clip_lengths(split: PreparedSplit, masks: dict) -> dict[str, int]:
    """Frames of each clip: its mask's length, else up to its last pose."""
    ends = last_frames(split)
    return {c: len(masks[c]) if c in masks else ends[c] for c in split.clips}


def check_mask_lengths(split: PreparedSplit, masks: dict, folder) -> None:
    for clip, last in last_frames(split).items():
        if clip in masks and last > len(masks[clip]):
            raise DataError(f"{Path(folder) / clip}.npy: the mask has {len(masks[clip])} frames but the tracks of clip {clip} "
                            f"reach frame {last - 1} (label/frame mismatch)")
