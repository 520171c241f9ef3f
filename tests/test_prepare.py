"""Missing-joint handling, the 18-joint layout and the cache key."""
import numpy as np

from vadflow.data.cache import cache_key, load_prepared
from vadflow.data.prepare_arrays import OPENPOSE_ORDER, prepare_split, to_openpose18
from vadflow.data.types import RawSplit, Track


def make_track(frames, kp):
    return Track("c", 1, np.asarray(frames), np.asarray(kp, np.float32))


def base_kp(n):
    kp = np.zeros((n, 17, 3), np.float32)
    kp[..., 0] = np.arange(17)[None] * 10 + 100
    kp[..., 1] = 200 + np.arange(n)[:, None]
    kp[..., 2] = 1.0
    return kp


def test_interpolation_in_time_uses_frame_numbers():
    kp = base_kp(3)
    kp[1, 4] = 0  # joint 4 missing at the middle row
    kp[2, 4, :2] = [300, 400]
    kp[0, 4, :2] = [100, 100]
    split = prepare_split(RawSplit([make_track([0, 1, 4], kp)]))  # frames 0, 1, 4
    j = list(OPENPOSE_ORDER).index(4)
    np.testing.assert_allclose(split.kp[1, j], [150, 175])  # a quarter of the way from frame 0 to 4
    assert not split.vis[1, j] and split.vis[0, j]


def test_edges_hold_and_never_seen_joints_borrow_a_neighbour():
    kp = base_kp(3)
    kp[0, 9] = 0  # left wrist missing at the first row: held from row 1
    kp[:, 3] = 0  # left ear never seen: copies the left eye (joint 1)
    split = prepare_split(RawSplit([make_track([0, 1, 2], kp)]))
    wrist, ear, eye = (list(OPENPOSE_ORDER).index(j) for j in (9, 3, 1))
    np.testing.assert_allclose(split.kp[0, wrist], split.kp[1, wrist])
    np.testing.assert_allclose(split.kp[:, ear], split.kp[:, eye])
    assert not split.vis[:, ear].any()


def test_rows_without_any_joint_become_missing_frames():
    kp = base_kp(4)
    kp[2] = 0
    split = prepare_split(RawSplit([make_track([0, 1, 2, 3], kp)]))
    assert list(split.frames) == [0, 1, 3]


def test_zeros_mode_is_the_official_behaviour():
    kp = base_kp(3)
    kp[1, 4] = 0
    kp[2] = 0
    split = prepare_split(RawSplit([make_track([0, 1, 2], kp)]), missing_joints="zeros")
    assert list(split.frames) == [0, 1, 2]
    j = list(OPENPOSE_ORDER).index(4)
    np.testing.assert_array_equal(split.kp[1, j], [0, 0])


def test_confidence_threshold_marks_joints_missing():
    kp = base_kp(2)
    kp[:, 0, 2] = 0.01
    split = prepare_split(RawSplit([make_track([0, 1], kp)]), conf_threshold=0.05)
    assert not split.vis[:, list(OPENPOSE_ORDER).index(0)].any()


def test_openpose18_neck_and_order():
    xy = np.arange(17 * 2, dtype=np.float32).reshape(1, 17, 2)
    vis = np.ones((1, 17), bool)
    vis[0, 5] = False
    xy18, vis18 = to_openpose18(xy, vis)
    np.testing.assert_allclose(xy18[0, 1], (xy[0, 5] + xy[0, 6]) / 2)  # neck at OpenPose index 1
    np.testing.assert_allclose(xy18[0, 2], xy[0, 6])  # right shoulder
    assert not vis18[0, 1]  # neck visible only if both shoulders are


def test_cache_key_tracks_settings_and_cache_reloads(tmp_path):
    syn = {"seed": 0, "n_train_clips": 2, "n_test_clips": 2, "clip_len": 100}
    assert cache_key("synthetic", tmp_path, {"missing_joints": "impute", "synthetic": syn}) != cache_key(
        "synthetic", tmp_path, {"missing_joints": "zeros", "synthetic": syn}
    )
    tr, te, info = load_prepared("synthetic", tmp_path, tmp_path / "c", synthetic=syn)
    assert not info["cached"]
    tr2, te2, info2 = load_prepared("synthetic", tmp_path, tmp_path / "c", synthetic=syn)
    assert info2["cached"] and np.array_equal(te.kp, te2.kp) and te.masks.keys() == te2.masks.keys()
