"""The one LightningDataModule: prepared arrays -> window batches. It serves data only; the
protocols and AUCs are ``vadflow.scoring``'s.

Batches are built whole (``__getitems__``): one gather + one vectorised normalisation per batch,
no per-window Python. Each batch carries every window's dataset index, so evaluation gathers
scores by index and duplicates from distributed samplers vanish. ``test_windows`` says, for each
test window, its clip, person and the frames it covers.
"""
from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vadflow.data.cache import load_prepared
from vadflow.data.cameras import row_camera_slots
from vadflow.data.prepare_arrays import PreparedSplit
from vadflow.data.injected import KINDS, check_selection, inject_anomalies
from vadflow.data.readers import SkipLog
from vadflow.data.robustness import add_keypoint_noise, contaminate
from vadflow.data.types import DataError
from vadflow.data.windows import ScoringWindows, WindowBuilder, frame_size_of, full_windows, window_starts

log = logging.getLogger(__name__)


def identity_collate(batch):
    return batch


class WindowDataset(Dataset):
    """Windows of one split; with ``flip`` the dataset doubles (index >= N: mirrored copy)."""

    def __init__(self, starts: np.ndarray, builder: WindowBuilder, flip: bool = False, last: np.ndarray | None = None,
                 lead: np.ndarray | None = None):
        self.starts = torch.from_numpy(starts)
        self.builder = builder
        self.flip = flip
        self.n = len(starts)
        # padded windows (short tracks, track ends): the last real row, and the padded positions before the first
        lead = np.zeros_like(starts) if lead is None else lead
        padded = last is not None and not full_windows(starts, last, lead, builder.seg_len).all()
        self.last = torch.from_numpy(last) if padded else None
        self.lead = torch.from_numpy(lead) if padded and lead.any() else None

    def __len__(self) -> int:
        return self.n * (2 if self.flip else 1)

    def __getitems__(self, indices) -> dict:
        index = torch.as_tensor(indices, dtype=torch.long)
        base = index % self.n
        flip = index >= self.n if self.flip else None
        batch = self.builder.batch(self.starts[base], flip, last=None if self.last is None else self.last[base],
                                   lead=None if self.lead is None else self.lead[base])
        batch["index"] = index
        return batch

    def __getitem__(self, i):  # single items (rarely used): same path
        batch = self.__getitems__([i])
        return {k: v[0] for k, v in batch.items()}


class PoseDataModule(L.LightningDataModule):
    def __init__(
        self,
        name: str,
        data_root: str,
        cache_dir: str,
        frame_size=(856, 480),
        seg_len: int = 24,
        train_stride: int = 6,
        test_stride: int = 1,
        max_missing_frames: int = 2,
        missing_joints: str = "impute",
        conf_threshold: float = 0.0,
        official_quirks: bool = False,
        flip: bool = True,
        batch_size: int = 256,
        eval_batch_size: int = 4096,
        full_masks: str | None = None,
        val_fraction: float = 0.0,
        keypoint_noise: float = 0.0,
        contamination: float | None = None,
        contamination_clips: float = 0.5,
        short_tracks: str = "skip",
        short_min_len: int = 8,
        track_ends: bool = False,
        selection: str | None = None,
        selection_kinds=None,
        selection_event_len: int | None = None,
        synthetic: dict | None = None,
        fix_train_frame_offset: bool = False,
        strict: bool = False,
        trajectory_features: bool = False,
        trajectory_summary: bool = False,
        **_protocol_keys,  # protocols, exclude_clips, ignore_ranges, mocodad, ...: vadflow.scoring.protocols_of reads them
    ):
        super().__init__()
        self.name = name
        self.data_root, self.cache_dir = data_root, cache_dir
        self.seg_len, self.train_stride, self.test_stride = seg_len, train_stride, test_stride
        self.max_missing, self.missing_joints, self.conf_threshold = max_missing_frames, missing_joints, conf_threshold
        self.official_quirks, self.flip = official_quirks, flip
        # the official code divides every dataset by 856x480; the corrected default uses the real size
        self.frame_size = frame_size_of({"official_quirks": official_quirks, "frame_size": frame_size})
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.full_masks_dir = full_masks
        self.val_fraction = float(val_fraction)
        self.keypoint_noise = float(keypoint_noise or 0.0)
        self.contamination = None if contamination is None else float(contamination)
        self.contamination_clips = float(contamination_clips)
        if short_tracks not in ("skip", "reflect", "edge"):
            raise DataError(f"dataset.short_tracks must be skip, reflect or edge, got {short_tracks!r}")
        self.short_tracks, self.short_min_len = short_tracks, int(short_min_len)
        if not isinstance(track_ends, bool):
            raise DataError(f"dataset.track_ends must be true or false, got {track_ends!r}")
        self.track_ends = track_ends  # test windows centred on each track's first and last poses too
        check_selection(selection, val_fraction, contamination, selection_kinds, selection_event_len)
        self.selection, self.selection_kinds = selection, tuple(selection_kinds or KINDS)
        # events of a fixed length in frames, so that models with other windows are compared on one set
        self.selection_event_len = int(selection_event_len or seg_len)
        self.selection_events: list[dict] = []
        self.held_out_clips: list[str] = []
        self.val_set = None
        self.synthetic = dict(synthetic or {})
        self.fix_train_frame_offset = bool(fix_train_frame_offset)
        self.strict = bool(strict)  # every skipped or repaired input is an error
        self.trajectory_features = bool(trajectory_features)  # batches carry traj / norm / camera (trajectory models)
        self.trajectory_summary = bool(trajectory_summary)  # training batches also carry traj_summary, kept per window
        if self.trajectory_summary and not self.trajectory_features:
            raise DataError("trajectory_summary needs trajectory_features (the summary is of the box trajectory)")
        self.train_set = self.test_set = None
        self.test_windows: ScoringWindows | None = None
        self.prepare_info: dict = {}
        self._prepared = False  # the cache is built (training asks before Lightning does)
        self._official_masks: dict[str, np.ndarray] | None = None  # dataset.full_masks, read and checked once

    # -- data --------------------------------------------------------------------------
    def prepare_data(self) -> None:
        if not self._prepared:
            self._load()  # builds the cache once (rank 0 first under DDP)
            self._prepared = True

    def _load(self):
        if self.name != "synthetic" and not Path(self.data_root).exists():
            raise DataError(f"data root {self.data_root} does not exist (set paths.data_root=... or VADFLOW_DATA)")
        return load_prepared(self.name, self.data_root, self.cache_dir, self.missing_joints, self.conf_threshold, self.synthetic,
                             fix_train_frame_offset=self.fix_train_frame_offset, strict=self.strict)

    def setup(self, stage: str | None = None) -> None:
        if self.test_set is not None:
            return
        train, test, self.prepare_info = self._load()
        self.test = test
        if self.full_masks_dir and not self.selection and (Path(self.data_root) / self.full_masks_dir).is_dir():
            self.masks_for("stgnf_full")  # checks every mask's length against the official labels
        if self.keypoint_noise > 0:  # robustness experiment: a noisier pose estimator
            train = add_keypoint_noise(train, self.keypoint_noise, self.frame_size, seed=0)
            test = add_keypoint_noise(test, self.keypoint_noise, self.frame_size, seed=1)
        use_vis = self.missing_joints == "impute"
        starts = lambda split, stride: window_starts(split.frames, split.track_ptr, self.seg_len, stride, self.max_missing, self.official_quirks)  # noqa: E731
        train_starts, val_starts, val_clips = self._hold_out_clips(train, starts(train, self.train_stride))
        if self.selection == "injected":  # the held-out normal clips with known anomalies replace the test split
            test, self.selection_events = inject_anomalies(train, val_clips, self.selection_event_len, self.frame_size, seed=0,
                                                              kinds=self.selection_kinds)
            log.info("%s: selection set of %d held-out training clips, %d injected events (%s)", self.name, len(val_clips),
                     len(self.selection_events), ", ".join(f"{k} {sum(e['kind'] == k for e in self.selection_events)}" for k in KINDS))
        test_windows = ScoringWindows.of_split(test, self.seg_len, self.frame_size, self.test_stride, self.max_missing, self.official_quirks,
                                               self.short_tracks, self.short_min_len, use_vis, self.trajectory_features, self.track_ends)
        train_kp, train_vis = train.kp, train.vis
        if self.contamination is not None:  # robustness experiment: abnormal windows in training
            keep, contam, self.held_out_clips = contaminate(train_starts, test, starts(test, self.train_stride), self.contamination,
                                                            self.contamination_clips, self.seg_len)
            train_kp, train_vis = np.concatenate([train.kp, test.kp]), np.concatenate([train.vis, test.vis])
            train_starts = np.concatenate([keep, contam + len(train.kp)])  # rows of test after those of train
            test_windows = test_windows.select(~np.isin(test_windows.clip, self.held_out_clips))
            test = replace(test, masks={c: m for c, m in test.masks.items() if c not in set(self.held_out_clips)})
            log.info("%s: %d clips held out of the evaluation (their abnormal windows may be in training)", self.name, len(self.held_out_clips))
        self.train, self.test = train, test
        if test_windows.n == 0:
            raise DataError(f"{self.name}: no test track is long enough for a window of {self.seg_len} frames")
        self.train_set = WindowDataset(train_starts, WindowBuilder(train_kp, train_vis, self.seg_len, self.frame_size, use_vis), self.flip)
        self.test_windows = test_windows
        self.test_set = WindowDataset(test_windows.starts, test_windows.builder, last=test_windows.last, lead=test_windows.lead)
        if self.trajectory_features:
            slots = lambda split: row_camera_slots(split.clips, split.track_clip, split.track_ptr)  # noqa: E731
            train_slots = slots(train) if self.contamination is None else np.concatenate([slots(train), slots(test)])  # test rows follow
            self.train_set.builder.row_camera = torch.from_numpy(train_slots)
            self.train_set.builder.keep_summary = self.trajectory_summary
        if len(val_starts):
            self.val_set = WindowDataset(val_starts, self.train_set.builder)
        log.info("%s: %d train windows (x%d flip), %d test windows", self.name, len(train_starts), 2 if self.flip else 1, test_windows.n)
        self._note_short_tracks(train, test)

    def _note_short_tracks(self, train: PreparedSplit, test: PreparedSplit) -> None:
        """Tracks too short for a window: a counted skip naming their files (``prepare_info``,
        hence metrics.json), an error under ``strict``."""
        skips = SkipLog()
        for split_name, split in (("train", train), ("test", test)):
            padded = split_name == "test" and self.short_tracks != "skip"  # these score one padded window
            too_short = self.short_min_len if padded else self.seg_len
            short = np.flatnonzero(np.diff(split.track_ptr) < too_short)
            if not len(short):
                continue
            kind = f"{split_name} tracks shorter than {'dataset.short_min_len' if padded else 'a window'} (T={too_short}) skipped"
            for name in split.sources()[short]:
                skips.note(kind, str(name))
        if not skips:
            return
        if self.strict:
            skips.check_strict(self.name)
        skips.report(self.name)
        self.prepare_info["skipped"] = {**self.prepare_info.get("skipped", {}), **skips.summary()}

    def _hold_out_clips(self, train: PreparedSplit, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Whole normal training clips held out for validation (model selection never sees test
        labels): (training starts, held-out starts, held-out clip indices). The choice depends
        only on the clip list, not on the run's seed."""
        if self.val_fraction <= 0 or not len(starts):
            return starts, np.zeros(0, np.int64), np.zeros(0, np.int64)
        n_val = max(1, int(round(self.val_fraction * len(train.clips))))
        val_clips = np.random.default_rng(0).permutation(len(train.clips))[:n_val]
        in_val = np.isin(train.clip_of_rows(starts), val_clips)
        return starts[~in_val], starts[in_val], val_clips

    def val_dataloader(self):
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, batch_size=self.eval_batch_size, shuffle=False, collate_fn=identity_collate)

    def train_dataloader(self):
        if len(self.train_set) == 0:
            raise DataError(f"{self.name}: no training window (dataset has no training tracks of length >= {self.seg_len})")
        bs = max(1, self.batch_size // self._world_size())  # configs give the global batch
        return DataLoader(self.train_set, batch_size=bs, shuffle=True, collate_fn=identity_collate, drop_last=False)

    def statistics_dataloader(self, max_windows: int | None = None):
        """Training windows in a fixed order, without flips or a distributed sampler: for methods
        that fit statistics after training (the same on every rank). ``max_windows`` takes an
        evenly spaced subset."""
        starts = self.train_set.starts.numpy()
        if max_windows and len(starts) > max_windows:
            starts = starts[np.linspace(0, len(starts) - 1, max_windows).astype(np.int64)]
        ds = WindowDataset(starts, self.train_set.builder)
        return DataLoader(ds, batch_size=self.eval_batch_size, shuffle=False, collate_fn=identity_collate)

    def test_dataloader(self):
        return DataLoader(self.test_set, batch_size=self.eval_batch_size, shuffle=False, collate_fn=identity_collate)

    def _world_size(self) -> int:
        trainer = getattr(self, "trainer", None)
        return trainer.world_size if trainer is not None else int(os.environ.get("WORLD_SIZE", 1))

    # -- labels --------------------------------------------------------------------------
    def masks_for(self, protocol: str) -> dict[str, np.ndarray]:
        """The labelled clips a protocol evaluates: the dataset's masks, or the full set for stgnf_full."""
        if protocol != "stgnf_full" or self.selection:  # the official labels cover the real test clips only
            return self.test.masks
        if not self.full_masks_dir:
            raise DataError(f"{self.name}: the stgnf_full protocol needs dataset.full_masks (a folder of .npy masks)")
        if self._official_masks is None:
            from vadflow.data.readers import iter_files, parse_mask

            folder = Path(self.data_root) / self.full_masks_dir
            self._official_masks = {Path(n).stem: parse_mask(str(folder / n), b) for n, b in iter_files(folder, lambda p: p.endswith(".npy"))}
            self._check_mask_lengths(self._official_masks, folder)
        return {c: m for c, m in self._official_masks.items() if c not in set(self.held_out_clips)}

    def _check_mask_lengths(self, official: dict[str, np.ndarray], folder: Path) -> None:
        """Each of the dataset's masks has as many frames as the official label of its clip."""
        for clip, mask in self.test.masks.items():
            if clip in official and len(official[clip]) != len(mask):
                shown = self.test.mask_files.get(clip, f"the mask of clip {clip}")
                raise DataError(f"{shown}: {len(mask)} frames, but the official label {folder / clip}.npy has {len(official[clip])} "
                                f"(mask too {'long' if len(mask) > len(official[clip]) else 'short'})")
