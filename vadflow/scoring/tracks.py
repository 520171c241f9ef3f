"""A checkpoint's scoring settings applied to prepared tracks: windows -> window scores -> per-clip
frame scores, the same way for scored, calibration and normal tracks (``vadflow-score``)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from vadflow.data.inputs import clip_lengths
from vadflow.data.prepare_arrays import PreparedSplit
from vadflow.data.windows import ScoringWindows, frame_size_of
from vadflow.methods import needs_trajectory
from vadflow.scoring.frames import ClipScores, frame_results
from vadflow.scoring.inference import WindowScores, score_windows
from vadflow.scoring.protocols import STGNF_SIGMAS


@dataclass
class TrackScoring:
    """The window rule and smoothing a checkpoint's dataset fixes (``for_dataset``), with the
    options a user may change (stride, smoothing, short tracks, frame size)."""

    method: torch.nn.Module
    seg_len: int
    frame_size: tuple[int, int]
    missing_joints: str = "impute"
    conf_threshold: float = 0.0
    max_missing: int = 2
    stride: int = 1
    sigmas: tuple = STGNF_SIGMAS
    short_tracks: str = "skip"
    short_min_len: int = 8
    official_quirks: bool = False
    track_ends: bool = False

    @classmethod
    def for_dataset(cls, method, dataset_cfg: dict, seg_len: int, **kw) -> "TrackScoring":
        base = {"frame_size": frame_size_of(dataset_cfg), "missing_joints": dataset_cfg.get("missing_joints", "impute"),
                "conf_threshold": float(dataset_cfg.get("conf_threshold", 0.0)), "max_missing": int(dataset_cfg.get("max_missing_frames", 2)),
                "stride": int(dataset_cfg.get("test_stride", 1)), "short_tracks": dataset_cfg.get("short_tracks", "skip"),
                "short_min_len": int(dataset_cfg.get("short_min_len", 8)), "official_quirks": bool(dataset_cfg.get("official_quirks", False)),
                "track_ends": bool(dataset_cfg.get("track_ends", False))}
        return cls(method, seg_len, **{**base, **{k: v for k, v in kw.items() if v is not None}})

    def windows(self, split: PreparedSplit) -> ScoringWindows:
        return ScoringWindows.of_split(split, self.seg_len, self.frame_size, self.stride, self.max_missing, self.official_quirks,
                                       self.short_tracks, self.short_min_len, self.missing_joints == "impute", needs_trajectory(self.method),
                                       self.track_ends)

    def run(self, split: PreparedSplit, masks: dict, fill: float | None, sigmas=None) -> tuple[ScoringWindows, WindowScores, list[ClipScores]]:
        windows = self.windows(split)
        scores = score_windows(self.method, windows)
        clips = frame_results(split, windows, scores, clip_lengths(split, masks), self.sigmas if sigmas is None else sigmas, fill)
        return windows, scores, clips
