"""Plain containers passed between readers, the synthetic generator and the cache.

Readers return these and nothing else: numpy arrays, no torch, no files.
Keypoints are always COCO-17 order (nose, l-eye, r-eye, l-ear, r-ear, l-sho, r-sho, l-elb, r-elb,
l-wri, r-wri, l-hip, r-hip, l-knee, r-knee, l-ank, r-ank) in pixels, with a third channel that is
the detector confidence (AlphaPose JSON) or 1.0 / 0.0 for detected / missing (MPED-RNN CSV, where a
missing joint is stored as ``0, 0``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

N_JOINTS_COCO = 17


class DataError(ValueError):
    """Bad input data. The message always names the file (or clip) and the problem."""


class ConfigError(DataError):
    """A config value, key or combination the code cannot use (one line, exit 2)."""


@dataclass
class Track:
    """One person's pose track inside one clip."""

    clip: str  # clip id, e.g. "01_0014"
    person: int  # person / track id inside the clip
    frames: np.ndarray  # (n,) int64, strictly increasing frame indices (0-based)
    kp: np.ndarray  # (n, 17, 3) float32: x px, y px, confidence (0 = missing joint)
    source: str = ""  # the file it was read from, named in every skip and error about it

    @property
    def shown(self) -> str:
        """How messages name the track: its file, else its clip and person."""
        return self.source or f"clip {self.clip} person {self.person}"

    def __post_init__(self):
        self.frames = np.asarray(self.frames, dtype=np.int64)
        self.kp = np.asarray(self.kp, dtype=np.float32)
        if self.kp.ndim != 3 or self.kp.shape[1:] != (N_JOINTS_COCO, 3) or len(self.kp) != len(self.frames):
            raise DataError(
                f"clip {self.clip} person {self.person}: keypoints have shape {self.kp.shape}, "
                f"expected ({len(self.frames)}, 17, 3)"
            )


@dataclass
class RawSplit:
    """All tracks of one split (train or test) plus, for test, the per-clip frame masks."""

    tracks: list[Track]
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # clip -> (L,) uint8, 1 = abnormal
    mask_files: dict[str, str] = field(default_factory=dict)  # clip -> the file its mask was read from

    @property
    def clips(self) -> list[str]:
        names = {t.clip for t in self.tracks} | set(self.masks)
        return sorted(names)
