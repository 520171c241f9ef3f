"""Which camera (scene) a clip was filmed by: the name before the first ``_`` (``01_0014`` -> ``01``),
as in ShanghaiTech, HR-Avenue and PoseLift, and vadflow's synthetic data.

Models that condition on the camera look it up in a fixed number of slots, so a checkpoint needs
no stored vocabulary: a numeric scene id takes slot ``1 + id mod (CAMERA_SLOTS - 1)``, any other
name a slot from its CRC-32. Slot 0 is "camera unknown" (a clip named without a scene id, or a
camera the model never saw in training).
"""
from __future__ import annotations

import zlib

import numpy as np

CAMERA_SLOTS = 64


def camera_of(clip: str) -> str:
    """The camera (scene id) of a clip: its name before the first ``_`` (``01_0014`` -> ``01``)."""
    return str(clip).split("_")[0]


def camera_slot(clip: str) -> int:
    name = camera_of(clip)
    if "_" not in str(clip) or not name:
        return 0
    value = int(name) if name.isdigit() else zlib.crc32(name.encode())
    return 1 + value % (CAMERA_SLOTS - 1)


def row_camera_slots(clips: list[str], track_clip: np.ndarray, track_ptr: np.ndarray) -> np.ndarray:
    """(R,) int64: the camera slot of every row of a split's contiguous arrays."""
    per_clip = np.array([camera_slot(c) for c in clips], dtype=np.int64)
    return np.repeat(per_clip[track_clip], np.diff(track_ptr))
