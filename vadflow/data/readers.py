"""Readers for the pose-track formats of the field. They return plain containers (``types.py``).

* AlphaPose tracked-person JSON (STG-NF, GEPC, PoseLift):
  ``{person: {frame: {"keypoints": [x, y, c] * 17, "scores": float | null}}}``, padded or unpadded
  frame keys.
* MPED-RNN trajectory trees: one CSV per track, ``frame, x0, y0, ..., x16, y16``, no header, no
  confidences, ``0, 0`` = joint not detected.
* Per-clip frame masks (``.npy``, 1 = abnormal).

Every source can be a folder or a ``.tar.xz`` archive, read in one streaming pass without unpacking
it to disk (``iter_files``). Bad input raises :class:`DataError` naming the file and the problem;
recoverable oddities (empty files, NaN joints, duplicate frames) are skipped and counted in a
:class:`SkipLog` that is printed once.
"""
from __future__ import annotations

import io
import json
import logging
import tarfile
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from vadflow.data.types import N_JOINTS_COCO, DataError, Track

log = logging.getLogger(__name__)
CSV_COLUMNS = 1 + 2 * N_JOINTS_COCO  # frame + (x, y) * 17


class SkipLog(Counter):
    """What a reader skipped or repaired, per kind: how many (the Counter) and in which files
    (``files``), so a run reports it once, naming the files, instead of crashing."""

    SHOWN = 5  # file names printed per kind; every name goes to the summary and the log file

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.files: dict[str, list[str]] = {}

    def note(self, kind: str, name: str, n: int = 1) -> None:
        self[kind] += n
        names = self.files.setdefault(kind, [])
        if not names or names[-1] != name:
            names.append(name)

    def merge(self, other: "SkipLog") -> None:
        self.update(other)
        for kind, names in getattr(other, "files", {}).items():
            self.files.setdefault(kind, []).extend(names)

    def summary(self) -> dict:
        """``{kind: {"count": n, "files": [...]}}`` for metrics.json and the prepare info."""
        return {kind: {"count": int(n), "files": list(dict.fromkeys(self.files.get(kind, [])))} for kind, n in sorted(self.items())}

    def __reduce__(self):  # Counter pickles its counts only; worker processes return the file names too
        return (type(self).from_summary, (self.summary(),))

    @classmethod
    def from_summary(cls, summary: dict) -> "SkipLog":
        skips = cls()
        for kind, entry in summary.items():
            skips.update({kind: int(entry["count"])})
            skips.files[kind] = list(entry["files"])
        return skips

    def lines(self, source: str) -> list[str]:
        out = []
        for kind, entry in self.summary().items():
            names = entry["files"]
            shown = ", ".join(names[: self.SHOWN]) + (f", ... ({len(names) - self.SHOWN} more)" if len(names) > self.SHOWN else "")
            out.append(f"{source}: {kind}: {entry['count']} in {len(names)} file(s): {shown}")
        return out

    def report(self, source: str, log_file: str | Path | None = None) -> None:
        """One warning per kind with the first file names; every name in ``log_file`` (if given)."""
        for line in self.lines(source):
            log.warning("%s", line)
        if log_file is not None and self:
            Path(log_file).write_text(json.dumps({"source": source, "skipped": self.summary()}, indent=1))

    def check_strict(self, source: str) -> None:
        """``strict``: every skip is an error."""
        if self:
            raise DataError("strict: " + "; ".join(self.lines(source)) + " (dataset.strict=false skips them)")


# ----------------------------------------------------------------------------- sources
def iter_files(source: str | Path, keep: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """Yield ``(relative posix path, bytes)`` for every file under a folder or inside a tar archive
    whose relative path passes ``keep``. Archives are streamed once, in archive order."""
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source}: no such file or folder (check paths.data_root / VADFLOW_DATA)")
    if source.is_dir():
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            rel = path.relative_to(source).as_posix()
            if keep(rel):
                yield rel, path.read_bytes()
        return
    try:
        with tarfile.open(source, mode="r|*") as tar:
            for member in tar:
                name = member.name.lstrip("./")
                if member.isfile() and keep(name):
                    handle = tar.extractfile(member)
                    yield name, handle.read() if handle else b""
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{source}: cannot read archive ({exc})") from exc


# ----------------------------------------------------------------------------- MPED-RNN CSV
def parse_mpedrnn_csvs(files: list[tuple[str, bytes]], skips: SkipLog) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Parse many MPED-RNN track CSVs at once; returns ``(name, frames, kp)`` per non-empty file.

    All files are joined and parsed by one C-level call (``np.fromstring``): parsing 17k files
    one by one with ``np.loadtxt`` costs minutes, this costs seconds. Each file's shape is checked
    first from its line and comma counts, so a malformed file is named, never mis-parsed."""
    names, chunks, rows = [], [], []
    for name, data in files:
        text = data.strip()
        if not text:
            skips.note("empty track file skipped", name)
            continue
        n_rows = text.count(b"\n") + 1
        if text.count(b",") != n_rows * (CSV_COLUMNS - 1):
            raise DataError(f"{name}: malformed MPED-RNN CSV: expected {CSV_COLUMNS} comma-separated columns on each of {n_rows} rows")
        names.append(name)
        chunks.append(text)
        rows.append(n_rows)
    if not names:
        return []
    blob = b",".join(chunks).replace(b"\r", b"").replace(b"\n", b",")
    values = _parse_floats(blob)
    if values is None or values.size != sum(rows) * CSV_COLUMNS:  # a non-numeric field: find the file
        for name, text in zip(names, chunks):
            one = _parse_floats(text.replace(b"\r", b"").replace(b"\n", b","))
            if one is None or one.size != text.count(b",") + 1:
                raise DataError(f"{name}: malformed MPED-RNN CSV: a field is not a number")
        raise DataError("MPED-RNN CSVs: could not parse the numbers")  # pragma: no cover
    table = values.reshape(-1, CSV_COLUMNS)
    out, offset = [], 0
    for name, n in zip(names, rows):
        block = table[offset : offset + n]
        offset += n
        frames, kp = _csv_block_to_track(name, block, skips)
        if len(frames):
            out.append((name, frames, kp))
    return out


def _parse_floats(blob: bytes) -> np.ndarray | None:
    """Comma-separated numbers -> float64 array; None if some field is not a number."""
    import warnings

    with warnings.catch_warnings():  # older numpy warns and stops early, newer numpy raises
        warnings.simplefilter("ignore")
        try:
            return np.fromstring(blob.decode("ascii", errors="replace"), dtype=np.float64, sep=",")
        except ValueError:
            return None


def _csv_block_to_track(name: str, block: np.ndarray, skips: SkipLog) -> tuple[np.ndarray, np.ndarray]:
    frames_f = block[:, 0]
    if not np.all(np.isfinite(frames_f)) or np.any(frames_f < 0) or np.any(frames_f != np.round(frames_f)):
        raise DataError(f"{name}: frame column must hold non-negative integers")
    xy = block[:, 1:].reshape(-1, N_JOINTS_COCO, 2).astype(np.float32)
    conf = np.ones(xy.shape[:2], np.float32)
    return _finish_track(name, frames_f.astype(np.int64), np.concatenate([xy, conf[..., None]], -1), skips)


def _finish_track(name: str, frames: np.ndarray, kp: np.ndarray, skips: SkipLog) -> tuple[np.ndarray, np.ndarray]:
    """Shared clean-up: non-finite joints -> missing, (0, 0) -> missing, sort, drop duplicate frames."""
    bad = ~np.isfinite(kp).all(-1)
    if bad.any():
        skips.note("non-finite joints treated as missing", name, int(bad.sum()))
        kp[bad] = 0.0
    kp[(kp[..., 0] == 0) & (kp[..., 1] == 0), 2] = 0.0  # MPED-RNN / AlphaPose: (0, 0) = not detected
    order = np.argsort(frames, kind="stable")
    frames, kp = frames[order], kp[order]
    dup = np.r_[False, frames[1:] == frames[:-1]]
    if dup.any():
        skips.note("duplicate frames dropped (first kept)", name, int(dup.sum()))
        frames, kp = frames[~dup], kp[~dup]
    return frames, kp


# ----------------------------------------------------------------------------- AlphaPose JSON
def _json_loads(data: bytes):
    """orjson parses pose files several times faster; Python's json also reads the NaN / Infinity
    literals that ``json.dump`` writes (orjson refuses them), and gives the error message."""
    try:
        from orjson import loads
    except ImportError:  # pragma: no cover
        return json.loads(data)
    try:
        return loads(data)
    except ValueError:
        return json.loads(data)


def parse_alphapose_json(name: str, data: bytes, clip: str, skips: SkipLog) -> list[Track]:
    """Parse one AlphaPose tracked-person JSON into one :class:`Track` per person."""
    try:
        doc = _json_loads(data)
    except (ValueError, UnicodeDecodeError) as exc:  # json and orjson decode errors are ValueErrors
        raise DataError(f"{name}: malformed JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise DataError(f"{name}: expected an object {{person: {{frame: {{keypoints, scores}}}}}}, got {type(doc).__name__}")
    if not doc:
        skips.note("empty JSON file (no people) skipped", name)
    tracks = []
    for person_key, person in doc.items():
        try:
            person_id = int(person_key)
        except ValueError as exc:
            raise DataError(f"{name}: person key {person_key!r} is not an integer") from exc
        if not isinstance(person, dict):
            raise DataError(f"{name}: person {person_key}: expected an object of frames")
        if not person:
            skips.note("person with no frames skipped", name)
            continue
        frames, kps = [], []
        for frame_key, entry in person.items():
            try:
                frames.append(int(frame_key))
            except ValueError as exc:
                raise DataError(f"{name}: person {person_key}: frame key {frame_key!r} is not an integer") from exc
            if not isinstance(entry, dict) or "keypoints" not in entry:
                raise DataError(f"{name}: person {person_key} frame {frame_key}: expected an object with a 'keypoints' list")
            kp = entry["keypoints"]
            if not isinstance(kp, list) or len(kp) != 3 * N_JOINTS_COCO:
                raise DataError(f"{name}: person {person_key} frame {frame_key}: 'keypoints' must be a list of 51 numbers (x, y, conf) * 17")
            kps.append(kp)
        try:
            kp_arr = np.asarray(kps, dtype=np.float32).reshape(-1, N_JOINTS_COCO, 3)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{name}: person {person_key}: keypoints are not all numbers") from exc
        frames_arr = np.asarray(frames, np.int64)
        if (frames_arr < 0).any():
            raise DataError(f"{name}: person {person_key}: negative frame index")
        frames_arr, kp_arr = _finish_track(name, frames_arr, kp_arr, skips)
        tracks.append(Track(clip=clip, person=person_id, frames=frames_arr, kp=kp_arr, source=name))
    return tracks


def alphapose_json(tracks: list[Track]) -> str:
    """The inverse of :func:`parse_alphapose_json` for one clip's tracks: ``{person: {frame:
    {"keypoints": [x, y, c] * 17, "scores": null}}}`` (missing joints written as ``0, 0, 0``)."""
    doc = {}
    for t in tracks:
        kp = np.where(t.kp[..., 2:3] > 0, t.kp, 0.0).round(2).reshape(len(t.frames), -1).tolist()
        doc[str(t.person)] = {str(int(f)): {"keypoints": k, "scores": None} for f, k in zip(t.frames, kp)}
    return json.dumps(doc, separators=(",", ":"))


# ----------------------------------------------------------------------------- masks
def parse_mask(name: str, data: bytes) -> np.ndarray:
    """A per-frame label array, 1 = abnormal, as uint8."""
    if not data.startswith(b"\x93NUMPY"):
        raise DataError(f"{name}: not a readable .npy mask (no .npy header: {len(data)} bytes of something else)")
    try:
        mask = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # numpy raises several types for a broken .npy
        raise DataError(f"{name}: not a readable .npy mask ({exc})") from exc
    if mask.ndim != 1 or mask.size == 0:
        raise DataError(f"{name}: a frame mask must be a non-empty 1-D array, got shape {mask.shape}")
    if not np.isin(mask, (0, 1)).all():
        raise DataError(f"{name}: a frame mask must hold only 0 (normal) and 1 (abnormal)")
    return mask.astype(np.uint8)
