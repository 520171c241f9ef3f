"""Where each named dataset's files are, and how their paths map to clip ids.

``load_raw(name, data_root, ...)`` returns ``(train RawSplit, test RawSplit)``. A dataset can sit
in ``data_root`` either as its released archive or unpacked; both are read the same way.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from vadflow.data.readers import SkipLog, iter_files, parse_alphapose_json, parse_mask, parse_mpedrnn_csvs
from vadflow.data.types import DataError, RawSplit, Track

log = logging.getLogger(__name__)

# HR-ShanghaiTech / HR-Avenue as released with MPED-RNN: (archive, folder inside it)
MPEDRNN_ARCHIVE = "mpedrnn-hr.tar.xz"
CSV_BATCH = 2000  # track files parsed per batch
_HR_FOLDERS = {"hr_shanghaitech": "HR-ShanghaiTech", "hr_avenue": "HR-Avenue"}
# both HR datasets share one layout: kind -> regex on the path inside the dataset folder;
# groups build the clip id (and the track id)
_HR_PATHS = {
    "train": re.compile(r"training/trajectories/\d+/(\d+)_(\d+)/(\d+)\.csv$"),
    "test": re.compile(r"testing/trajectories/(\d+)/(\d+)/(\d+)\.csv$"),
    "mask": re.compile(r"testing/frame_level_masks/\d+/(\d+)_(\d+)\.npy$"),
}
# frames of each published CUHK Avenue test video (15,324 in all): a mask of another length does
# not label that clip. HR-ShanghaiTech's masks are checked against the official ShanghaiTech
# labels (dataset.full_masks) by the DataModule.
HR_AVENUE_TEST_FRAMES = {
    f"01_{i + 1:02d}": n for i, n in enumerate(
        [1439, 1211, 923, 947, 1007, 1283, 605, 36, 1175, 841, 472, 1271, 549, 507, 1001, 740, 426, 294, 248, 273, 76])
}


def _locate(data_root: Path, candidates: list[str], what: str) -> Path:
    for cand in candidates:
        path = data_root / cand
        if path.exists():
            return path
    raise DataError(
        f"{what}: none of {candidates} found under data root {data_root} "
        "(set paths.data_root=... or the VADFLOW_DATA environment variable)"
    )


def source_files(name: str, data_root: str | Path) -> list[Path]:
    """The files or folders a dataset is read from; their fingerprints key the cache."""
    root = Path(data_root)
    if name in _HR_FOLDERS:
        return [_locate(root, [_HR_FOLDERS[name], MPEDRNN_ARCHIVE], name)]
    if name == "poselift":
        return [_locate(root, ["PoseLift", "poselift.tar.xz"], name)]
    if name == "shanghaitech_sample":
        return [
            _locate(root, ["samples/01_0014_alphapose_tracked_person.json"], name),
            _locate(root, ["shanghaitech-gt/test_frame_mask/01_0014.npy"], name),
        ]
    raise DataError(f"unknown dataset {name!r}: known are synthetic, hr_shanghaitech, hr_avenue, poselift, shanghaitech_sample")


def load_raw(name: str, data_root: str | Path, synthetic: dict | None = None,
             fix_train_frame_offset: bool = False, skips: SkipLog | None = None) -> tuple[RawSplit, RawSplit]:
    """``fix_train_frame_offset``: HR-ShanghaiTech only, see :func:`undo_train_frame_offset`.
    What the readers skip or repair is noted in ``skips`` (and reported once, with file names)."""
    if fix_train_frame_offset and name != "hr_shanghaitech":
        raise DataError(f"dataset.fix_train_frame_offset applies to hr_shanghaitech only (its training CSVs), not {name}")
    if name == "synthetic":
        from vadflow.data.synthetic import generate_synthetic

        return generate_synthetic(**(synthetic or {}))
    sources = source_files(name, data_root)
    own_log = skips is None
    skips = SkipLog() if own_log else skips
    if name in _HR_FOLDERS:
        train, test = _load_mpedrnn(name, sources[0], skips)
        if fix_train_frame_offset:
            train = RawSplit([t for t in map(undo_train_frame_offset, train.tracks) if len(t.frames)])
    elif name == "poselift":
        train, test = _load_alphapose_tree(sources[0], "PoseLift", skips)
    else:  # shanghaitech_sample: one test clip, no training data
        json_path, mask_path = sources
        tracks = parse_alphapose_json(str(json_path), json_path.read_bytes(), "01_0014", skips)
        train, test = RawSplit([]), RawSplit(tracks, {"01_0014": parse_mask(str(mask_path), mask_path.read_bytes())},
                                             {"01_0014": str(mask_path)})
    if own_log:  # else the caller reports it (with the log file)
        skips.report(name)
    return train, test


def _load_mpedrnn(name: str, source: Path, skips: SkipLog) -> tuple[RawSplit, RawSplit]:
    folder = _HR_FOLDERS[name]
    inner = (lambda p: p) if source.is_dir() else (lambda p: p[len(folder) + 1 :] if p.startswith(folder + "/") else None)
    pending = {"train": [], "test": []}  # raw CSV bytes not parsed yet
    tracks: dict[str, list[Track]] = {"train": [], "test": []}
    masks: dict[str, np.ndarray] = {}
    mask_files: dict[str, str] = {}
    ids: dict[str, tuple[str, int]] = {}

    def keep(path: str) -> bool:
        rel = inner(path)
        return rel is not None and (rel.endswith(".csv") or rel.endswith(".npy"))

    def flush(split: str) -> None:  # parse in batches: peak memory stays a few hundred MB
        tracks[split] += [Track(ids[p][0], ids[p][1], f, kp, source=p) for p, f, kp in parse_mpedrnn_csvs(pending[split], skips)]
        pending[split] = []

    for path, data in _progress(iter_files(source, keep), f"reading {name}"):
        rel, shown = inner(path), shown_name(source, path)
        if (m := _HR_PATHS["mask"].search(rel)) is not None:
            clip = f"{m.group(1)}_{m.group(2)}"
            _add_mask(masks, mask_files, clip, shown, parse_mask(shown, data))
            continue
        for split in ("train", "test"):
            if (m := _HR_PATHS[split].search(rel)) is not None:
                pending[split].append((shown, data))
                ids[shown] = (f"{m.group(1)}_{m.group(2)}", int(m.group(3)))
                if len(pending[split]) >= CSV_BATCH:
                    flush(split)
                break
    for split in pending:
        flush(split)
    if not tracks["train"] or not tracks["test"] or not masks:
        missing = [what for what, found in (("training tracks", tracks["train"]), ("test tracks", tracks["test"]), ("masks", masks)) if not found]
        raise DataError(f"{source}: no {folder} {' or '.join(missing)} found (is this the MPED-RNN HR release? "
                        "expected training/trajectories/, testing/trajectories/, testing/frame_level_masks/)")
    if name == "hr_avenue":
        for clip, mask in masks.items():
            frames = HR_AVENUE_TEST_FRAMES.get(clip)
            if frames is not None and len(mask) != frames:
                raise DataError(f"{mask_files[clip]}: {len(mask)} frames, but Avenue test video {clip} has {frames} "
                                f"(mask too {'long' if len(mask) > frames else 'short'})")
    return RawSplit(tracks["train"]), RawSplit(tracks["test"], masks, mask_files)


def shown_name(source: Path, path: str) -> str:
    """How a file is named to the user: its path, or the archive's path and the member's."""
    return str(Path(source) / path)


def _add_mask(masks: dict, mask_files: dict, clip: str, path: str, mask: np.ndarray) -> None:
    if clip in masks:
        raise DataError(f"{path}: a second mask for clip {clip} (the first is {mask_files[clip]})")
    masks[clip], mask_files[clip] = mask, path


def undo_train_frame_offset(track: Track) -> Track:
    """HR-ShanghaiTech's training CSVs (not its test CSVs) repeat one pose: the row at frame 1 is
    the row at frame 2 again, and every row from frame 2 on belongs one frame earlier (checked on
    the release: frames 1 and 2 identical in every training track that holds both, no such repeat
    in any test track or in HR-Avenue). Undone as TrajREC's ``fix_skeleton_data.py`` does: drop the
    frame-1 row and move every later row back one frame; frame 0 stays. The reference protocols
    (MPED-RNN, MoCoDAD, STG-NF) read the CSVs unchanged, which is the default."""
    frames, kp = track.frames, track.kp
    drop = frames == 1
    later = frames >= 2
    frames = np.where(later, frames - 1, frames)[~drop]
    return Track(track.clip, track.person, frames, kp[~drop], source=track.source)


def _load_alphapose_tree(source: Path, folder: str, skips: SkipLog) -> tuple[RawSplit, RawSplit]:
    """STG-NF layout: pose/{train,test}/<clip>_alphapose_tracked_person.json, gt/test_frame_mask/<clip>.npy."""
    pose_re = re.compile(r"pose/(train|test)/(.+?)_alphapose_tracked_person\.json$")
    mask_re = re.compile(r"gt/test_frame_mask/(.+)\.npy$")
    tracks = {"train": [], "test": []}
    masks, mask_files = {}, {}
    keep = lambda p: pose_re.search(p) is not None or mask_re.search(p) is not None  # noqa: E731
    for path, data in _progress(iter_files(source, keep), f"reading {folder}"):
        shown = shown_name(source, path)
        if (m := pose_re.search(path)) is not None:
            tracks[m.group(1)] += parse_alphapose_json(shown, data, m.group(2), skips)
        elif (m := mask_re.search(path)) is not None:
            _add_mask(masks, mask_files, m.group(1), shown, parse_mask(shown, data))
    if not tracks["train"]:
        raise DataError(f"{source}: no training tracks: pose/train holds no *_alphapose_tracked_person.json with a person in it")
    if not masks:
        raise DataError(f"{source}: no test masks: gt/test_frame_mask holds no <clip>.npy")
    if not tracks["test"]:
        raise DataError(f"{source}: no test tracks: pose/test holds no *_alphapose_tracked_person.json with a person in it")
    return RawSplit(tracks["train"]), RawSplit(tracks["test"], masks, mask_files)


def _progress(iterable, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return iterable
    return tqdm(iterable, desc=desc, unit=" files", mininterval=1.0, leave=False, disable=None)  # None: only on a terminal
