"""Tests of the synthetic pose-track generator (fast: a few small calls plus one default call)."""
from __future__ import annotations

import re
import time

import numpy as np
import pytest

from vadflow.data.synthetic import ANOMALY_KINDS, SYNTHETIC_FRAME_SIZE, generate_synthetic
from vadflow.data.types import RawSplit, Track

CLIP_LEN = 300


@pytest.fixture(scope="module")
def default_splits() -> tuple[RawSplit, RawSplit]:
    return generate_synthetic(seed=0)


def _all_tracks(splits) -> list[Track]:
    return [t for split in splits for t in split.tracks]


def _arrays(splits) -> list[bytes]:
    """Everything a split holds, as bytes, in a fixed order."""
    out = []
    for split in splits:
        for t in split.tracks:
            out += [t.clip.encode(), str(t.person).encode(), t.frames.tobytes(), t.kp.tobytes()]
        for clip in sorted(split.masks):
            out += [clip.encode(), split.masks[clip].tobytes()]
    return out


def test_same_seed_gives_identical_arrays_and_other_seed_differs():
    kwargs = dict(n_train_clips=4, n_test_clips=4, clip_len=120)
    first, second = generate_synthetic(seed=7, **kwargs), generate_synthetic(seed=7, **kwargs)
    assert _arrays(first) == _arrays(second)
    assert _arrays(first) != _arrays(generate_synthetic(seed=8, **kwargs))


def test_default_call_is_fast():
    generate_synthetic(seed=1)  # warm-up: imports and first-call overheads
    start = time.perf_counter()
    generate_synthetic(seed=2)
    # well under 1 s on a quiet machine; the bound leaves room for a busy CI box
    assert time.perf_counter() - start < 2.0


def test_frame_size_constant():
    assert SYNTHETIC_FRAME_SIZE == (856, 480)


def test_shapes_and_dtypes_follow_types(default_splits):
    train, test = default_splits
    assert train.tracks and test.tracks
    for t in _all_tracks(default_splits):
        assert isinstance(t, Track)
        assert t.frames.dtype == np.int64 and t.frames.ndim == 1 and len(t.frames) >= 1
        assert t.kp.dtype == np.float32 and t.kp.shape == (len(t.frames), 17, 3)
        assert np.isfinite(t.kp).all()
        assert set(np.unique(t.kp[..., 2])) <= {0.0, 1.0}
    assert train.masks == {}
    for mask in test.masks.values():
        assert mask.dtype == np.uint8 and mask.shape == (CLIP_LEN,)
        assert set(np.unique(mask)) <= {0, 1}


def test_clip_names_scenes_and_person_ids(default_splits):
    train, test = default_splits
    assert all(re.fullmatch(r"\d{2}_\d{3}", c) for c in train.clips)
    assert all(re.fullmatch(r"\d{2}_\d{4}", c) for c in test.clips)
    assert len(train.clips) == 24 and len(test.clips) == 12
    scenes = {c[:2] for c in train.clips}
    assert 2 <= len(scenes) <= 3 and {c[:2] for c in test.clips} <= scenes
    for split in default_splits:
        for clip in split.clips:
            ids = sorted(t.person for t in split.tracks if t.clip == clip)
            assert ids == list(range(1, len(ids) + 1))  # ints from 1, unique within a clip


def test_frames_strictly_increasing_within_clip(default_splits):
    for t in _all_tracks(default_splits):
        assert (np.diff(t.frames) > 0).all()
        assert t.frames[0] >= 0 and t.frames[-1] < CLIP_LEN


def test_track_lengths_vary_and_frames_get_dropped(default_splits):
    tracks = _all_tracks(default_splits)
    lengths = np.array([len(t.frames) for t in tracks])
    assert (lengths < 24).any() and (lengths > 100).any()
    assert any((np.diff(t.frames) > 1).any() for t in tracks)  # dropped frames leave gaps
    # without dropping, every track is one contiguous run of frames
    for t in _all_tracks(generate_synthetic(seed=3, n_train_clips=4, n_test_clips=4, drop_frame_rate=0.0)):
        assert (np.diff(t.frames) == 1).all()


def test_missing_joints_are_exactly_zero(default_splits):
    for t in _all_tracks(default_splits):
        missing = t.kp[..., 2] == 0
        assert (t.kp[missing] == 0).all()


def test_missing_fraction_tracks_the_rate(default_splits):
    kp = np.concatenate([t.kp for t in _all_tracks(default_splits)])
    missing = kp[..., 2] == 0
    assert 0.06 < missing.mean() < 0.16  # rate 0.1 plus the odd joint outside the image
    assert missing[:, :5].mean() > 1.5 * missing[:, 5:].mean()  # face joints go missing more
    assert missing.all(axis=1).any()  # occasionally a whole row
    for rate in (0.0, 0.3):
        splits = generate_synthetic(seed=4, n_train_clips=6, n_test_clips=3, missing_joint_rate=rate)
        frac = np.mean(np.concatenate([t.kp[..., 2] for t in _all_tracks(splits)]) == 0)
        assert rate <= frac < rate + 0.05


def test_visible_joints_lie_in_the_frame(default_splits):
    width, height = SYNTHETIC_FRAME_SIZE
    margin = 5.0
    for t in _all_tracks(default_splits):
        xy = t.kp[t.kp[..., 2] > 0][:, :2]
        assert (xy[:, 0] > -margin).all() and (xy[:, 0] < width + margin).all()
        assert (xy[:, 1] > -margin).all() and (xy[:, 1] < height + margin).all()


def test_people_lower_in_the_frame_are_larger(default_splits):
    train, _ = default_splits
    feet, sizes = [], []
    for t in train.tracks:
        ankles = t.kp[:, 15:17]
        full = (t.kp[..., 2] > 0).all(axis=1)
        if full.sum():
            feet.append(ankles[full][..., 1].mean())
            sizes.append(np.mean(np.ptp(t.kp[full][..., 1], axis=1)))
    assert np.corrcoef(feet, sizes)[0, 1] > 0.5


def test_masks_cover_every_test_clip_and_both_classes(default_splits):
    _, test = default_splits
    assert set(test.masks) == {t.clip for t in test.tracks}
    labels = np.concatenate(list(test.masks.values()))
    assert 0 < labels.mean() < 0.5
    n_normal_clips = sum(int(m.sum() == 0) for m in test.masks.values())
    assert 1 <= n_normal_clips <= 2


@pytest.mark.parametrize("kind", ANOMALY_KINDS)
def test_every_anomaly_kind_can_be_produced(kind):
    _, test = generate_synthetic(seed=5, n_train_clips=0, n_test_clips=3, clip_len=150, anomaly_kinds=(kind,))
    assert sum(int(m.sum()) for m in test.masks.values()) > 0


def test_unknown_anomaly_kind_is_rejected():
    with pytest.raises(ValueError, match="anomaly_kinds"):
        generate_synthetic(anomaly_kinds=("teleport",))


def _track_speed(t: Track) -> tuple[np.ndarray, np.ndarray]:
    """(frames, mean joint speed in person heights per frame) over consecutive detected frames."""
    kp = t.kp
    step = np.flatnonzero(np.diff(t.frames) == 1)
    both = (kp[step, :, 2] > 0) & (kp[step + 1, :, 2] > 0)
    step, both = step[both.sum(axis=1) >= 4], both[both.sum(axis=1) >= 4]  # enough joints to measure
    move = np.linalg.norm(kp[step + 1, :, :2] - kp[step, :, :2], axis=-1)
    y = kp[step, :, 1]
    height = np.where(both, y, -np.inf).max(axis=1) - np.where(both, y, np.inf).min(axis=1)
    return t.frames[step], (move * both).sum(axis=1) / both.sum(axis=1) / np.maximum(height, 1.0)


def _speed_by_label(test: RawSplit) -> tuple[float, float]:
    """Mean over normal and over abnormal frames of the fastest person's speed on that frame.

    The mask marks whole frames, so bystanders walk inside abnormal intervals too; the fastest
    person on a frame is the runner whenever one is in view.
    """
    speeds = {0: [], 1: []}
    for clip, mask in test.masks.items():
        fastest = np.full(len(mask), np.nan)
        for t in test.tracks:
            if t.clip == clip:
                frames, speed = _track_speed(t)
                fastest[frames] = np.fmax(fastest[frames], speed)
        for value in (0, 1):
            speeds[value].extend(fastest[(mask == value) & np.isfinite(fastest)])
    return float(np.mean(speeds[0])), float(np.mean(speeds[1]))


def test_runners_move_faster_than_normal_walkers():
    _, test = generate_synthetic(seed=6, n_train_clips=0, anomaly_kinds=("run",))
    normal, abnormal = _speed_by_label(test)
    assert abnormal > 1.4 * normal
