"""Raw tracks -> one contiguous array per split, with missing joints handled.

Missing-joint handling (``missing_joints``):

* ``impute`` (default). A joint is *missing* when it is ``(0, 0)`` or its confidence is at most
  ``conf_threshold``. A row with no joint at all is dropped, so it counts as a missing frame (the
  window rule tolerates at most 2 per window). Each missing joint is then filled, per track:
  1. linear interpolation in time between the same joint's nearest detections before and after
     (using real frame numbers, so gaps are respected); held constant before the first and after
     the last detection;
  2. a joint never detected in the whole track copies its nearest skeleton neighbour that is
     (``FALLBACK`` below: an eye from the other eye or the nose, a knee from the hip, ...);
  3. anything still empty takes the mean of the row's filled joints.
  A visibility mask (True = detected) is kept; normalisation statistics use visible joints only.
* ``zeros``: the official STG-NF behaviour. Rows and joints are kept as they are, so an undetected
  joint is a real point at pixel (0, 0) and enters every statistic.

The 18-joint layout is STG-NF's: COCO-17 plus a neck (mean of the shoulders, visible only if both
are), reordered to OpenPose order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vadflow.data.readers import SkipLog
from vadflow.data.types import DataError, RawSplit

OPENPOSE_ORDER = np.array([0, 17, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3])
N_JOINTS = 18
# COCO-17 index -> neighbours to borrow a position from when the joint is never seen in a track
FALLBACK = {
    0: [1, 2, 3, 4, 5, 6], 1: [2, 0, 3, 4], 2: [1, 0, 4, 3], 3: [1, 4, 0, 2], 4: [2, 3, 0, 1],
    5: [6, 0, 11], 6: [5, 0, 12], 7: [5, 9, 8], 8: [6, 10, 7], 9: [7, 10, 5], 10: [8, 9, 6],
    11: [12, 5, 13], 12: [11, 6, 14], 13: [11, 15, 14], 14: [12, 16, 13], 15: [13, 16, 11], 16: [14, 15, 12],
}


def track_of_rows(track_ptr: np.ndarray) -> np.ndarray:
    """(R,) index of the track each row belongs to, from the (N_tracks + 1,) row offsets."""
    return np.repeat(np.arange(len(track_ptr) - 1), np.diff(track_ptr))


@dataclass
class PreparedSplit:
    """All tracks of a split as contiguous arrays (rows sorted by track, then frame)."""

    kp: np.ndarray  # (R, 18, 2) float32 pixels (imputed where missing, unless missing_joints=zeros)
    vis: np.ndarray  # (R, 18) bool, True = detected
    frames: np.ndarray  # (R,) int64
    track_ptr: np.ndarray  # (N_tracks + 1,) int64 row offsets
    track_clip: np.ndarray  # (N_tracks,) int64 index into clips
    track_person: np.ndarray  # (N_tracks,) int64
    clips: list[str]  # every clip of the split (with tracks or with a mask)
    masks: dict[str, np.ndarray]  # clip -> (L,) uint8, test only
    track_source: np.ndarray | None = None  # (N_tracks,) str: the file each track was read from
    mask_files: dict[str, str] = field(default_factory=dict)  # clip -> the file its mask was read from

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        out = {f"{prefix}{k}": getattr(self, k) for k in ("kp", "vis", "frames", "track_ptr", "track_clip", "track_person")}
        out[f"{prefix}clips"] = np.array(self.clips, dtype=str)
        out[f"{prefix}track_source"] = self.sources()
        mask_clips = sorted(self.masks)
        out[f"{prefix}mask_clips"] = np.array(mask_clips, dtype=str)
        out[f"{prefix}mask_files"] = np.array([self.mask_files.get(c, "") for c in mask_clips], dtype=str)
        out[f"{prefix}mask_ptr"] = np.cumsum([0] + [len(self.masks[c]) for c in mask_clips]).astype(np.int64)
        out[f"{prefix}mask_values"] = np.concatenate([self.masks[c] for c in mask_clips]) if mask_clips else np.zeros(0, np.uint8)
        return out

    @classmethod
    def from_arrays(cls, z, prefix: str) -> "PreparedSplit":
        mask_clips = [str(c) for c in z[f"{prefix}mask_clips"]]
        ptr, values = z[f"{prefix}mask_ptr"], z[f"{prefix}mask_values"]
        masks = {c: values[ptr[i] : ptr[i + 1]] for i, c in enumerate(mask_clips)}
        return cls(
            **{k: z[f"{prefix}{k}"] for k in ("kp", "vis", "frames", "track_ptr", "track_clip", "track_person")},
            clips=[str(c) for c in z[f"{prefix}clips"]],
            masks=masks,
            track_source=z[f"{prefix}track_source"],
            mask_files={c: str(f) for c, f in zip(mask_clips, z[f"{prefix}mask_files"]) if str(f)},
        )

    def sources(self) -> np.ndarray:
        """Each track's file; ``clip <c> person <p>`` for tracks that came from no file."""
        if self.track_source is not None and len(self.track_source) == self.n_tracks:
            return np.asarray(self.track_source, dtype=str)
        return np.array([f"clip {self.clips[c]} person {p}" for c, p in zip(self.track_clip, self.track_person)], dtype=str)

    @property
    def n_tracks(self) -> int:
        return len(self.track_person)

    def clip_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """Clip index (into ``clips``) of the given rows."""
        return self.track_clip[track_of_rows(self.track_ptr)[rows]]


def prepare_split(raw: RawSplit, missing_joints: str = "impute", conf_threshold: float = 0.0, where: str = "",
                  skips: SkipLog | None = None) -> PreparedSplit:
    """``skips`` counts, per file, the rows dropped for holding no detected joint (and tracks left
    with no row at all)."""
    if missing_joints not in ("impute", "zeros"):
        raise ValueError(f"missing_joints must be 'impute' or 'zeros', got {missing_joints!r}")
    clips = raw.clips
    clip_index = {c: i for i, c in enumerate(clips)}
    tracks = sorted(raw.tracks, key=lambda t: (t.clip, t.person))
    if tracks:
        kp17 = np.concatenate([t.kp for t in tracks])
        frames = np.concatenate([t.frames for t in tracks])
        lengths = np.array([len(t.frames) for t in tracks], np.int64)
    else:
        kp17, frames, lengths = np.zeros((0, 17, 3), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    vis17 = (kp17[..., 2] > conf_threshold) & ~((kp17[..., 0] == 0) & (kp17[..., 1] == 0))
    xy17 = kp17[..., :2].copy()
    source = [t.shown for t in tracks]
    if missing_joints == "impute":
        keep = vis17.any(1)  # a row with no joint is a missing frame
        track_id = track_of_rows(np.r_[0, np.cumsum(lengths)])[keep]
        xy17, vis17, frames = xy17[keep], vis17[keep], frames[keep]
        kept = np.bincount(track_id, minlength=len(tracks)).astype(np.int64)
        if skips is not None:
            for i in np.flatnonzero(kept < lengths):
                skips.note("rows without a detected joint dropped", source[i], int(lengths[i] - kept[i]))
                if kept[i] == 0:
                    skips.note("tracks with no detected joint skipped", source[i])
        lengths = kept
        xy17 = impute_missing(xy17, vis17, frames, lengths)
    _check_masks(raw, tracks, frames, lengths, where)
    kp18, vis18 = to_openpose18(xy17, vis17)
    nonempty = lengths > 0
    return PreparedSplit(
        kp=kp18,
        vis=vis18,
        frames=frames,
        track_ptr=np.r_[0, np.cumsum(lengths[nonempty])].astype(np.int64),
        track_clip=np.array([clip_index[t.clip] for t in tracks], np.int64)[nonempty],
        track_person=np.array([t.person for t in tracks], np.int64)[nonempty],
        clips=clips,
        masks=dict(raw.masks),
        track_source=np.array(source, dtype=str)[nonempty] if tracks else np.zeros(0, dtype=str),
        mask_files=dict(raw.mask_files),
    )


def _check_masks(raw: RawSplit, tracks, frames, lengths, where: str) -> None:
    """A track frame beyond its clip's mask means labels and poses disagree: fail loudly."""
    if not raw.masks:
        return
    ends = np.r_[0, np.cumsum(lengths)]
    for i, t in enumerate(tracks):
        if lengths[i] == 0:
            continue
        mask = raw.masks.get(t.clip)
        if mask is None:
            raise DataError(f"{t.shown}: {where}clip {t.clip} has test tracks but no frame mask (add <clip>.npy beside the other masks)")
        last = int(frames[ends[i + 1] - 1])
        if last >= len(mask):
            raise DataError(
                f"{raw.mask_files.get(t.clip, f'the mask of clip {t.clip}')}: {where}the mask has {len(mask)} frames, "
                f"but {t.shown} reaches frame {last} (mask too short, or the tracks belong to another clip)"
            )


def impute_missing(xy: np.ndarray, vis: np.ndarray, frames: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Fill missing joints (see module docstring), vectorised over all rows of all tracks."""
    n_rows = len(frames)
    out = xy.copy()
    if n_rows == 0:
        return out
    row = np.arange(n_rows)
    ends = np.cumsum(lengths)
    track_start = np.repeat(ends - lengths, lengths)
    track_end = np.repeat(ends, lengths)
    filled = vis.copy()
    t = frames.astype(np.float64)
    for j in range(xy.shape[1]):
        seen = vis[:, j]
        if seen.all():
            continue
        # nearest detection before / after each row, inside the same track
        prev = np.maximum.accumulate(np.where(seen, row, -1))
        nxt = np.minimum.accumulate(np.where(seen, row, n_rows)[::-1])[::-1]
        has_prev = prev >= track_start
        has_next = nxt < track_end
        prev_c, next_c = np.clip(prev, 0, None), np.clip(nxt, None, n_rows - 1)
        both = ~seen & has_prev & has_next
        w = np.zeros(n_rows)
        span = t[next_c] - t[prev_c]
        w[both] = (t[both] - t[prev_c][both]) / span[both]
        interp = (1 - w)[:, None] * xy[prev_c, j] + w[:, None] * xy[next_c, j]
        out[both, j] = interp[both]
        only_prev = ~seen & has_prev & ~has_next
        only_next = ~seen & ~has_prev & has_next
        out[only_prev, j] = xy[prev_c[only_prev], j]
        out[only_next, j] = xy[next_c[only_next], j]
        filled[:, j] = seen | has_prev | has_next
    for _ in range(2):  # joints never seen in their track: borrow from skeleton neighbours
        for j, neighbours in FALLBACK.items():
            for nb in neighbours:
                take = ~filled[:, j] & filled[:, nb]
                out[take, j] = out[take, nb]
                filled[take, j] = True
    if not filled.all():  # last resort: the mean of what the row has
        w = filled.astype(np.float32)[..., None]
        mean = (out * w).sum(1) / np.maximum(w.sum(1), 1)
        rows, joints = np.nonzero(~filled)
        out[rows, joints] = mean[rows]
    return out


def to_openpose18(xy17: np.ndarray, vis17: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCO-17 -> STG-NF's 18 joints: append a neck (mean of the shoulders), reorder to OpenPose."""
    neck = 0.5 * (xy17[:, 5] + xy17[:, 6])
    xy18 = np.concatenate([xy17, neck[:, None]], 1)[:, OPENPOSE_ORDER].astype(np.float32)
    vis18 = np.concatenate([vis17, (vis17[:, 5] & vis17[:, 6])[:, None]], 1)[:, OPENPOSE_ORDER]
    return np.ascontiguousarray(xy18), np.ascontiguousarray(vis18)
