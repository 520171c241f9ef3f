"""The prepare step's cache: a pure function of (source files, settings), keyed by both.

One uncompressed ``.npz`` per (dataset, settings): contiguous arrays for train and test plus the
masks. Loading it takes well under 2 s even for HR-ShanghaiTech. The key hashes every source
file's path, size and mtime, every setting that changes the content, and the source code of the
prepare step (``PREPARE_MODULES``), so editing a file, a setting or the code that reads them
prepares again, and nothing else does.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from vadflow.data.prepare_arrays import PreparedSplit, prepare_split
from vadflow.data.readers import SkipLog
from vadflow.data.sources import load_raw, source_files

log = logging.getLogger(__name__)
CACHE_VERSION = 1  # bump for a change of the file layout that the code digest would not see
# the modules whose code decides a cache's content: readers, sources, arrays, the generator, this file
PREPARE_MODULES = ("readers.py", "sources.py", "prepare_arrays.py", "synthetic.py", "types.py", "cache.py")


def prepare_code_digest(folder: Path = Path(__file__).resolve().parent, modules=PREPARE_MODULES) -> str:
    digest = hashlib.sha1()
    for name in modules:
        digest.update(name.encode() + b"\0" + (Path(folder) / name).read_bytes())
    return digest.hexdigest()[:16]


def cache_key(name: str, data_root, settings: dict) -> str:
    fingerprint = {"version": CACHE_VERSION, "code": prepare_code_digest(), "dataset": name, "settings": settings}
    if name != "synthetic":
        files = []
        for src in source_files(name, data_root):
            paths = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
            files += [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
        fingerprint["files"] = files
    digest = hashlib.sha1(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{name}-{digest}"


def load_prepared(
    name: str,
    data_root,
    cache_dir,
    missing_joints: str = "impute",
    conf_threshold: float = 0.0,
    synthetic: dict | None = None,
    force: bool = False,
    fix_train_frame_offset: bool = False,
    strict: bool = False,
) -> tuple[PreparedSplit, PreparedSplit, dict]:
    """Return ``(train, test, info)``, preparing and caching on first use. ``info["skipped"]``:
    what the readers skipped or repaired, per kind, with every file name (kept in the cache, so a
    cached load reports it too; ``<key>.skipped.json`` beside the cache lists it). ``strict``: any
    skip is an error."""
    settings = {"missing_joints": missing_joints, "conf_threshold": float(conf_threshold)}
    if fix_train_frame_offset:  # only when set, so the caches of the default reading keep their keys
        settings["fix_train_frame_offset"] = True
    if name == "synthetic":
        settings["synthetic"] = dict(synthetic or {})
    key = cache_key(name, data_root, settings)
    path = Path(cache_dir) / f"{key}.npz"
    t0 = time.perf_counter()
    if path.exists() and not force:
        cached = read_cache(path)
        if cached is not None:
            train, test, skipped = cached
            if strict and skipped:
                SkipLog.from_summary(skipped).check_strict(name)
            return train, test, {"cache": str(path), "cached": True, "seconds": time.perf_counter() - t0, "skipped": skipped}
    skips = SkipLog()
    raw_train, raw_test = load_raw(name, data_root, synthetic, fix_train_frame_offset, skips=skips)
    train = prepare_split(raw_train, missing_joints, conf_threshold, where=f"{name} train: ", skips=skips)
    test = prepare_split(raw_test, missing_joints, conf_threshold, where=f"{name} test: ", skips=skips)
    if strict:  # the rows and tracks prepare_split drops count too
        skips.check_strict(name)
    for clip in sorted(set(raw_test.masks) - {t.clip for t in raw_test.tracks}):
        log.warning("%s: clip %s has a frame mask but no test tracks: a protocol that evaluates it counts its frames as "
                    "most normal (dataset.exclude_clips leaves it out)", raw_test.mask_files.get(clip, clip), clip)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, **train.arrays("train_"), **test.arrays("test_"), skipped_json=np.array(json.dumps(skips.summary())))
    os.replace(tmp, path)  # atomic: parallel jobs never read half a file
    if skips:
        skips.report(name, path.with_suffix(".skipped.json"))
    seconds = time.perf_counter() - t0
    log.info("prepared %s in %.1f s -> %s", name, seconds, path)
    return train, test, {"cache": str(path), "cached": False, "seconds": seconds, "skipped": skips.summary()}


def read_cache(path: Path) -> tuple[PreparedSplit, PreparedSplit, dict] | None:
    """A cache file's splits and skip list; None (after one warning) if it is truncated or corrupt,
    so the caller prepares again and replaces it atomically."""
    try:
        with np.load(path, allow_pickle=False) as z:
            train, test = PreparedSplit.from_arrays(z, "train_"), PreparedSplit.from_arrays(z, "test_")
            skipped = json.loads(str(z["skipped_json"]))  # every cache this code keys has it (the key holds the code's digest)
    except Exception as exc:  # noqa: BLE001 - zip, npy, json and key errors all mean the same: rebuild
        log.warning("%s: unreadable cache file (%s: %s), preparing it again", path, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return None
    return train, test, skipped
