"""Window construction and normalisation, against hand-built tracks."""
import math

import numpy as np
import pytest
import torch

from vadflow.data.windows import WindowBuilder, normalize_windows, padded_positions, trajectory_features, window_starts


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


# ----------------------------------------------------------------------------- short tracks
def test_short_track_windows_pick_tracks_between_min_len_and_T():
    from vadflow.data.windows import short_track_windows

    # tracks of 5, 10 (frames 0..11: 2 ids missing), 10 (0..12: 3 missing), 30 poses
    frames = np.r_[np.arange(5), [f for f in range(12) if f not in (3, 4)], [f for f in range(13) if f not in (3, 4, 5)], np.arange(30)]
    ptr = np.cumsum([0, 5, 10, 10, 30])
    first, last = short_track_windows(frames, ptr, 24, min_len=8, max_missing=2)
    assert list(first) == [5] and list(last) == [14]


def test_padded_positions_reflect_and_edge_by_hand():
    from vadflow.data.windows import padded_positions

    rows, repeated = padded_positions(torch.tensor([10]), torch.tensor([13]), 10, "reflect")
    assert rows[0].tolist() == [10, 11, 12, 13, 12, 11, 10, 11, 12, 13]
    assert repeated[0].tolist() == [False] * 4 + [True] * 6
    rows, _ = padded_positions(torch.tensor([10]), torch.tensor([13]), 6, "edge")
    assert rows[0].tolist() == [10, 11, 12, 13, 13, 13]
    rows, repeated = padded_positions(torch.tensor([0]), torch.tensor([5]), 6, "reflect")  # a full window is unchanged
    assert rows[0].tolist() == list(range(6)) and not repeated.any()


def test_padded_positions_with_a_lead_by_hand():
    """A window of a track's first poses: its real poses start at position ``lead``; the positions
    before are the poses after the first, mirrored (reflect), or the first pose repeated (edge)."""
    from vadflow.data.windows import padded_positions

    rows, repeated = padded_positions(torch.tensor([10]), torch.tensor([15]), 10, "reflect", lead=torch.tensor([4]))
    assert rows[0].tolist() == [14, 13, 12, 11, 10, 11, 12, 13, 14, 15]
    assert repeated[0].tolist() == [True] * 4 + [False] * 6
    rows, repeated = padded_positions(torch.tensor([10]), torch.tensor([15]), 10, "edge", lead=torch.tensor([4]))
    assert rows[0].tolist() == [10, 10, 10, 10, 10, 11, 12, 13, 14, 15]
    # a lead and a short end at once: 2 padded before, 3 real, 3 padded after
    rows, repeated = padded_positions(torch.tensor([0]), torch.tensor([2]), 8, "reflect", lead=torch.tensor([2]))
    assert rows[0].tolist() == [2, 1, 0, 1, 2, 1, 0, 1]
    assert repeated[0].tolist() == [True, True, False, False, False, True, True, True]


def test_track_end_windows_centre_every_pose_of_a_long_track_once():
    """With track_ends, the full windows and the track-end windows together are centred on every
    pose of each track of at least T poses, once each; shorter tracks get none; a track-end window
    holds the real poses the window would, and is dropped like a full window when frame ids are missing."""
    from vadflow.data.windows import scoring_windows

    T = 24
    lengths = [5, 30, 24, 26]
    frames = np.concatenate([np.arange(n) for n in lengths])
    ptr = np.cumsum([0] + lengths)
    starts, last, lead, centre = scoring_windows(frames, ptr, T, 1, track_ends=True)
    centre_row = np.where(centre >= 0, centre, starts + T // 2)
    np.testing.assert_array_equal(np.sort(centre_row), np.arange(ptr[1], ptr[-1]))  # rows 5..84, each once
    # by hand, the 30-pose track (rows 5..34): pose 0's window holds poses 0..11 after 12 padded positions,
    # pose 29's holds poses 17..29 and then 11 padded ones
    at = {int(c): (int(f), int(l), int(d)) for c, f, l, d in zip(centre_row, starts, last, lead)}
    assert at[5] == (5, 16, 12) and at[34] == (22, 34, 0) and at[5 + 12] == (5, 5 + 23, 0)
    assert ((last - starts + 1 + lead <= T) | (lead == 0)).all() and (lead <= T // 2).all()
    assert (scoring_windows(frames, ptr, T, 1)[3] == -1).all()  # without track_ends: full windows only
    # a gap of 4 missing frame ids after the first pose: the front windows that span it are dropped
    gappy = np.r_[0, np.arange(5, 34)]
    s, l, d, c = scoring_windows(gappy, np.array([0, 30]), T, 1, max_missing=2, track_ends=True)
    kept = np.where(c >= 0, c, s + T // 2)
    assert 0 not in kept and 29 in kept and (gappy[l] - gappy[s] - (l - s) <= 2).all()


def test_datamodule_scores_every_pose_of_long_tracks_with_track_ends(tmp_path):
    """dataset.track_ends: the STG-NF protocol (a window's score at its centre frame) then scores
    every frame of a long-enough track; a track-end window's batch is its padded rows normalised."""
    from vadflow import scoring
    from vadflow.data.datamodule import PoseDataModule
    from vadflow.data.types import DataError

    def setup(track_ends):
        dm = PoseDataModule("synthetic", str(tmp_path), str(tmp_path / "cache"), track_ends=track_ends,
                            synthetic={"n_train_clips": 2, "n_test_clips": 6, "clip_len": 200})
        dm.setup()
        return dm

    plain, ends = setup(False), setup(True)
    w = ends.test_windows
    added = np.arange(plain.test_set.n, w.n)  # the track-end windows follow the full ones
    assert len(added) > 0 and (w.last[added] - w.starts[added] + 1 < ends.seg_len).all()
    np.testing.assert_array_equal(w.starts[: plain.test_set.n], plain.test_windows.starts)
    centred = lambda dm: scoring.evaluate_windows(dm.test_windows, np.arange(dm.test_set.n), np.ones(dm.test_set.n),  # noqa: E731
                                                  [scoring.make_protocol("stgnf")], dm.masks_for, dm.name)[0]
    before, after = centred(plain), centred(ends)
    assert after["n_unscored_frames"] < before["n_unscored_frames"]
    split, T = ends.test, ends.seg_len
    # every pose of a long track without dropped frames is some window's centre (a full window over a
    # gap writes at its first frame + T//2, the official rule, so gappy tracks are left out here)
    n_checked = 0
    for t in np.flatnonzero(np.diff(split.track_ptr) >= T):
        rows = np.arange(split.track_ptr[t], split.track_ptr[t + 1])
        if np.any(np.diff(split.frames[rows]) != 1):
            continue
        assert set(split.frames[rows].tolist()) == set(w.frame[w.track == t].tolist())
        n_checked += 1
    assert n_checked > 0
    # the batch of a window of a track's first poses: its rows as padded_positions gives them, repeats hidden
    i = int(np.flatnonzero(w.lead > 0)[0])
    batch = ends.test_set.__getitems__(torch.as_tensor([i]))
    rows, repeated = padded_positions(torch.tensor([w.starts[i]]), torch.tensor([w.last[i]]), T, "reflect", torch.tensor([w.lead[i]]))
    x, vis = w.builder(torch.tensor([w.starts[i]]), last=torch.tensor([w.last[i]]), lead=torch.tensor([w.lead[i]]))
    torch.testing.assert_close(batch["x"], x, rtol=0, atol=0)
    assert not batch["vis"][0, : w.lead[i]].any() and batch["vis"][0, w.lead[i]:].any()
    assert w.frame[i] == split.frames[w.starts[i] + T // 2 - w.lead[i]]
    with pytest.raises(DataError, match="track_ends must be true or false"):
        PoseDataModule("synthetic", str(tmp_path), str(tmp_path / "cache"), track_ends="yes")


def test_padded_window_hides_repeats_from_the_statistics():
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 100, (12, 18, 2)).astype(np.float32)
    vis = np.ones((12, 18), bool)
    builder = WindowBuilder(kp, vis, 24, (100, 100), use_visibility=True, pad_mode="reflect")
    x, v = builder(torch.tensor([0]), last=torch.tensor([11]))
    assert x.shape == (1, 2, 24, 18) and v[0, :12].all() and not v[0, 12:].any()
    # statistics come from the 12 real poses only: the real part is the 12-pose window normalised alone
    alone = normalize_windows(torch.from_numpy(kp / 100.0)[None], torch.from_numpy(vis)[None])
    torch.testing.assert_close(x[:, :, :12], alone)


@pytest.mark.parametrize("use_visibility", [True, False])
def test_batch_trajectory_features_reuse_the_normalisation_statistics(use_visibility):
    """A batch's ``traj`` / ``norm`` (the normalisation's statistics computed once per batch) equal
    the features computed from the raw windows alone, and ``norm`` is exactly what ``x`` was
    normalised by; a frame without a detected joint takes its box from every joint."""
    rng = np.random.default_rng(1)
    kp = rng.uniform(0, 100, (40, 18, 2)).astype(np.float32)
    vis = rng.random((40, 18)) > 0.3
    vis[5] = False
    builder = WindowBuilder(kp, vis, 12, (100, 50), use_visibility=use_visibility)
    builder.row_camera = torch.arange(40)
    starts = torch.tensor([0, 3, 20, 28])
    batch = builder.batch(starts, flip=torch.tensor([False, True, False, True]))
    rows = starts[:, None] + torch.arange(12)
    xy = torch.from_numpy(kp)[rows] / torch.tensor([100.0, 50.0])
    v = torch.from_numpy(vis)[rows]
    traj, norm = trajectory_features(xy, v, normalised_over_detected=use_visibility)
    torch.testing.assert_close(batch["traj"], traj, rtol=0, atol=0)
    torch.testing.assert_close(batch["norm"], norm, rtol=0, atol=0)
    y = (xy[..., 1] - norm[:, 1, None, None]) / norm[:, 2, None, None].exp()
    torch.testing.assert_close(batch["x"][:, 1], y, rtol=1e-5, atol=1e-5)
    whole = xy[1, 2]  # row 5 = second window's third frame: nothing detected
    assert torch.allclose(traj[1, 2, 2:].exp(), whole.amax(0) - whole.amin(0))
    assert batch["camera"].tolist() == [0, 3, 20, 28]
    # a padded window of a short track hides its repeats: its boxes come from the window, not the rows
    padded = builder.batch(torch.tensor([30]), last=torch.tensor([35]))
    rows, repeated = padded_positions(torch.tensor([30]), torch.tensor([35]), 12, "reflect")
    hidden = torch.from_numpy(vis)[rows] & ~repeated[..., None]
    expected, _ = trajectory_features(torch.from_numpy(kp)[rows] / torch.tensor([100.0, 50.0]), hidden)
    torch.testing.assert_close(padded["traj"], expected, rtol=0, atol=0)


def test_datamodule_scores_short_test_tracks_with_reflect(tmp_path):
    """short_tracks=reflect adds one padded window per short test track; the protocols then score
    frames that ``skip`` leaves unscored, and each padded window covers only its own track's frames."""
    from vadflow.data.datamodule import PoseDataModule

    def setup(mode):
        dm = PoseDataModule("synthetic", str(tmp_path), str(tmp_path / "cache"), short_tracks=mode,
                            synthetic={"n_train_clips": 2, "n_test_clips": 12, "clip_len": 200})
        dm.setup()
        return dm

    skip_dm, pad_dm = setup("skip"), setup("reflect")
    n_short = pad_dm.test_set.n - skip_dm.test_set.n
    assert n_short > 0 and pad_dm.test_set.last is not None
    w = pad_dm.test_windows
    short = w.span < pad_dm.seg_len
    assert short.sum() == n_short
    batch = pad_dm.test_set.__getitems__(torch.as_tensor(np.flatnonzero(short)))
    assert batch["x"].shape[1:] == (2, pad_dm.seg_len, 18) and torch.isfinite(batch["x"]).all()
    # score 1 for padded windows, 0 otherwise: under cover, exactly their own frames score 1
    from vadflow import scoring

    res = scoring.evaluate_windows(pad_dm.test_windows, np.arange(pad_dm.test_set.n), short.astype(float), [scoring.make_protocol("mpedrnn")],
                                   pad_dm.masks_for, pad_dm.name)[0]
    expect = []
    for clip in res["clips"]:
        mask = np.zeros(len(pad_dm.test.masks[clip]), bool)
        for f, n in zip(w.first[short & (w.clip == clip)], w.span[short & (w.clip == clip)]):
            mask[f : f + n] = True
        expect.append(mask)
    np.testing.assert_array_equal(res["frame_scores"] == 1.0, np.concatenate(expect))
    # a padded window's centre frame lies inside its own span
    first, span, centre = w.first[short], w.span[short], w.frame[short]
    assert ((first <= centre) & (centre < first + span)).all()


def test_kept_trajectory_summaries_equal_the_per_batch_ones_and_feed_the_flow(tmp_path):
    """trajectory_summary=True: training batches carry each window's summary, computed on its first
    batch and looked up afterwards; over two epochs (flipped copies included) it equals the summary
    computed from that batch's own traj / norm bit for bit, and the trajectory flow's NLL is the
    same with it as without it."""
    from vadflow.data.datamodule import PoseDataModule
    from vadflow.data.types import DataError
    from vadflow.data.windows import trajectory_summary
    from vadflow.nn.trajectory import TrajectoryFlow

    kw = dict(synthetic={"n_train_clips": 4, "n_test_clips": 1, "clip_len": 150}, batch_size=64, trajectory_features=True)
    dm = PoseDataModule("synthetic", str(tmp_path), str(tmp_path / "cache"), trajectory_summary=True, **kw)
    dm.setup()
    flow = TrajectoryFlow(seg_len=dm.seg_len, features="summary").eval()
    batches = 0
    for _ in range(2):
        for batch in dm.train_dataloader():
            assert torch.equal(batch["traj_summary"], trajectory_summary(batch["traj"], batch["norm"]))
            without = {k: v for k, v in batch.items() if k != "traj_summary"}
            with torch.no_grad():
                assert torch.equal(flow.nll(batch), flow.nll(without))
            batches += 1
    builder = dm.train_set.builder
    assert batches > 2 and int(builder._summary_known.sum()) == dm.train_set.n  # every window once, then looked up
    builder._summary[dm.train_set.starts] += 1.0  # what the flow reads is the kept table, not a recomputation
    batch = next(iter(dm.train_dataloader()))
    assert torch.equal(batch["traj_summary"], trajectory_summary(batch["traj"], batch["norm"]) + 1.0)
    assert "traj_summary" not in dm.test_set.__getitems__([0, 1])  # scoring computes it in the model
    plain = PoseDataModule("synthetic", str(tmp_path), str(tmp_path / "cache"), **kw)
    plain.setup()
    assert "traj_summary" not in next(iter(plain.train_dataloader()))
    with pytest.raises(DataError, match="trajectory_summary needs trajectory_features"):
        PoseDataModule("synthetic", str(tmp_path), str(tmp_path / "cache"), trajectory_summary=True)


def test_summary_columns_name_what_trajectory_summary_returns():
    """``SUMMARY_COLUMNS`` (read by name, e.g. in ``vadflow.trajectory_parts``) follows the summary's layout."""
    from vadflow.data.windows import N_SUMMARY, SUMMARY_COLUMNS, SUMMARY_EPS, trajectory_summary

    T = 6
    t = torch.arange(T, dtype=torch.float32)
    log_h = torch.full((1, T), -1.0)  # height e^-1, constant
    traj = torch.stack([0.1 + 0.02 * t[None], torch.full((1, T), 0.5), log_h - 0.7, log_h], -1)  # walking right
    norm = torch.tensor([[0.3, 0.4, -2.0]])
    g = trajectory_summary(traj, norm)[0]
    col = {name: g[i] for i, name in enumerate(SUMMARY_COLUMNS)}
    assert g.shape == (N_SUMMARY,)
    assert (col["mean x"], col["mean y"], col["log std y"]) == (norm[0, 0], norm[0, 1], norm[0, 2])
    assert col["aspect"] == pytest.approx(-0.7)
    assert col["velocity x"] == pytest.approx(0.02 * math.e, rel=1e-5) and col["velocity y"] == 0
    assert col["log speed"] == pytest.approx(math.log(0.02 * math.e + SUMMARY_EPS), rel=1e-5)
    assert col["scale rate"] == 0
