"""Window construction and normalisation, against hand-built tracks."""
import numpy as np
import torch

from vadflow.data.windows import WindowBuilder, normalize_windows, window_starts


def track(frames):
    frames = np.asarray(frames, np.int64)
    return frames, np.array([0, len(frames)], np.int64)


def test_window_count_corrected_and_official_off_by_one():
    frames, ptr = track(range(30))
    assert list(window_starts(frames, ptr, 24, 1)) == list(range(7))  # positions 0..6
    assert list(window_starts(frames, ptr, 24, 1, official_quirks=True)) == list(range(6))  # last one lost
    frames, ptr = track(range(24))
    assert len(window_starts(frames, ptr, 24, 1)) == 1
    assert len(window_starts(frames, ptr, 24, 1, official_quirks=True)) == 0  # n <= T: never scored


def test_training_stride():
    frames, ptr = track(range(40))
    assert list(window_starts(frames, ptr, 24, 6)) == [0, 6, 12]
    assert list(window_starts(frames, ptr, 24, 6, official_quirks=True)) == [0, 6, 12]  # ceil(16/6) = 3


def test_at_most_two_missing_frame_ids():
    two_missing = [f for f in range(26) if f not in (5, 6)]  # 24 poses over 26 frame ids
    frames, ptr = track(two_missing)
    assert list(window_starts(frames, ptr, 24, 1)) == [0]
    three_missing = [f for f in range(27) if f not in (5, 6, 7)]
    frames, ptr = track(three_missing)
    assert list(window_starts(frames, ptr, 24, 1)) == []


def test_windows_never_cross_tracks():
    frames = np.r_[np.arange(30), np.arange(10)].astype(np.int64)
    ptr = np.array([0, 30, 40])
    starts = window_starts(frames, ptr, 24, 1)
    assert starts.max() + 24 <= 30


def test_normalisation_matches_official_formula():
    rng = np.random.default_rng(0)
    xy = torch.from_numpy(rng.uniform(0, 1, (3, 24, 18, 2)))
    out = normalize_windows(xy)
    x, y = xy[..., 0], xy[..., 1]
    std_y = y.reshape(3, -1).std(1, unbiased=False)
    exp_x = (x - x.mean(dim=(1, 2), keepdim=True)) / std_y[:, None, None]
    torch.testing.assert_close(out[:, 0], exp_x)
    assert torch.allclose(out[:, 1].reshape(3, -1).std(1, unbiased=False), torch.ones(3, dtype=out.dtype))


def test_invisible_joints_do_not_move_the_statistics():
    rng = np.random.default_rng(1)
    xy = torch.from_numpy(rng.uniform(0, 1, (2, 24, 18, 2)))
    vis = torch.ones(2, 24, 18, dtype=torch.bool)
    vis[:, :, :5] = False
    a = normalize_windows(xy, vis)
    xy2 = xy.clone()
    xy2[:, :, :5] = 1e3  # garbage where joints are missing
    b = normalize_windows(xy2, vis)
    torch.testing.assert_close(a[..., 5:], b[..., 5:])


def test_flip_negates_normalised_x():
    kp = np.random.default_rng(2).uniform(0, 500, (30, 18, 2)).astype(np.float32)
    builder = WindowBuilder(kp, np.ones((30, 18), bool), 24, (856, 480))
    starts = torch.tensor([0, 3])
    x, _ = builder(starts)
    xf, _ = builder(starts, flip=torch.tensor([True, False]))
    torch.testing.assert_close(xf[0, 0], -x[0, 0])
    torch.testing.assert_close(xf[0, 1], x[0, 1])
    torch.testing.assert_close(xf[1], x[1])


def test_constant_window_does_not_divide_by_zero():
    out = normalize_windows(torch.ones(1, 24, 18, 2))
    assert torch.isfinite(out).all()
