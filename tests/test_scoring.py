"""The evaluation protocol against hand-computed cases and its invariances."""
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d
from sklearn.metrics import roc_auc_score

from vadflow.data.types import DataError
from vadflow.scoring import dedup_window_scores, evaluate_protocol, format_result, frame_scores, make_protocol, roc_auc


def test_auc_hand_computed():
    # positives {0.8, 0.4}, negatives {0.5, 0.1}: pairs won 3 of 4
    assert roc_auc([1, 1, 0, 0], [0.8, 0.4, 0.5, 0.1]) == pytest.approx(0.75)
    assert roc_auc([1, 0], [2.0, 1.0]) == 1.0
    assert roc_auc([1, 0], [1.0, 2.0]) == 0.0
    # ties count one half: one pair, tied
    assert roc_auc([1, 0], [3.0, 3.0]) == 0.5
    # raw NLLs far outside [0, 1] are fine (no sigmoid squashing)
    assert roc_auc([1, 0, 0], [1e4, -1e4, 5e3]) == 1.0


def test_auc_matches_sklearn_on_random_scores():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    s = np.round(rng.normal(size=2000) + y, 1)  # rounded: many ties
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_auc_single_class_is_nan_and_nonfinite_raises():
    assert np.isnan(roc_auc([0, 0], [1.0, 2.0]))
    with pytest.raises(ValueError, match="NaN or inf"):
        roc_auc([0, 1], [np.nan, 1.0])


def test_frame_scores_max_over_persons_and_unscored_frames():
    # clip of 5 frames; person A scores frame 1 (2.0) and 2 (5.0), person B frame 2 (7.0)
    out = frame_scores(["c"], [5], np.array([0, 0, 0]), np.array([1, 2, 2]), np.array([2.0, 5.0, 7.0]))
    np.testing.assert_array_equal(out, [-np.inf, 2.0, 7.0, -np.inf, -np.inf])


def test_frame_beyond_mask_is_a_clear_error():
    with pytest.raises(DataError, match="label/frame mismatch"):
        frame_scores(["c"], [3], np.array([0]), np.array([5]), np.array([1.0]))


def test_stgnf_protocol_fill_smoothing_and_exclusion():
    masks = {"a": np.array([0, 0, 1, 1, 0, 0], np.uint8), "b": np.array([0, 1, 0], np.uint8), "skip": np.array([1, 0], np.uint8)}
    clips = np.array(["a", "a", "b", "skip"])
    frames = np.array([2, 3, 1, 0])
    scores = np.array([5.0, 4.0, 3.0, 100.0])
    proto = make_protocol("stgnf", exclude_clips=["skip"])
    res = evaluate_protocol(proto, masks, clips, frames, scores)
    # by hand: no-person frames take the min finite score over clips a and b (3.0)
    raw_a = np.array([3, 3, 5, 4, 3, 3], float)
    raw_b = np.array([3, 3, 3], float)
    smooth = lambda s: gaussian_filter1d(gaussian_filter1d(gaussian_filter1d(gaussian_filter1d(gaussian_filter1d(gaussian_filter1d(s, 1), 2), 3), 4), 5), 6)  # noqa: E731
    expected = np.concatenate([smooth(raw_a), smooth(raw_b)])
    np.testing.assert_allclose(res["frame_scores"], expected, rtol=0, atol=1e-12)
    labels = np.r_[masks["a"], masks["b"]]
    assert res["auc"] == pytest.approx(roc_auc_score(labels, expected))
    assert res["auc_raw"] == pytest.approx(roc_auc_score(labels, np.r_[raw_a, raw_b]))
    assert res["n_clips"] == 2 and res["n_frames"] == 9 and res["n_unscored_frames"] == 6  # a: 0,1,4,5; b: 0,2
    assert res["n_unscored_abnormal_frames"] == 0  # all six are normal frames
    # macro: only clips with both classes; b is all ties -> 0.5
    assert res["auc_macro"] == pytest.approx(np.mean([roc_auc_score(masks["a"], smooth(raw_a)), 0.5]))


def test_mpedrnn_protocol_keeps_every_mask_and_drops_ignored_frames():
    masks = {"a": np.array([0, 1, 1, 0], np.uint8), "empty": np.array([0, 0], np.uint8)}
    proto = make_protocol("mpedrnn", exclude_clips=["empty"], ignore_ranges={"a": [[3, 3]]}, window_to_frame="centre")
    res = evaluate_protocol(proto, masks, np.array(["a", "a", "a"]), np.array([0, 1, 3]), np.array([1.0, 9.0, 20.0]))
    assert res["n_clips"] == 2  # exclude_clips is a stgnf-protocol list; mpedrnn keeps every mask
    assert res["n_frames"] == 5  # frame 3 of a ignored
    # raw, no smoothing: a = [1, 9, 1(fill), x], empty = [1, 1]; labels [0,1,1,0,0]
    assert res["smoothing"] == "none"
    assert res["auc"] == pytest.approx(roc_auc_score([0, 1, 1, 0, 0], [1, 9, 1, 1, 1]))


def test_auc_independent_of_window_order_and_duplicates():
    rng = np.random.default_rng(1)
    masks = {f"c{i}": (rng.random(50) < 0.3).astype(np.uint8) for i in range(4)}
    n = 120
    clips = np.array([f"c{i}" for i in rng.integers(0, 4, n)])
    frames = rng.integers(0, 50, n)
    scores = rng.normal(size=n)
    index = np.arange(n)
    proto = make_protocol("stgnf")
    ref = evaluate_protocol(proto, masks, clips, frames, scores)["auc"]
    # a distributed sampler pads with duplicates and interleaves ranks
    padded = np.r_[index, index[:7]]
    perm = rng.permutation(len(padded))
    uniq, sc = dedup_window_scores(padded[perm], scores[padded][perm])
    assert np.array_equal(uniq, index)
    assert evaluate_protocol(proto, masks, clips[uniq], frames[uniq], sc)["auc"] == ref


def test_duplicates_with_different_scores_are_rejected():
    with pytest.raises(ValueError, match="disagree"):
        dedup_window_scores(np.array([0, 1, 1]), np.array([0.0, 1.0, 5.0]))


def test_custom_smoothing_and_unknown_protocol():
    assert make_protocol("mpedrnn", sigmas=[2]).smoothing == "gaussian cascade sigma=2"
    assert make_protocol("stgnf", sigmas=[]).smoothing == "none"
    with pytest.raises(ValueError, match="unknown protocol"):
        make_protocol("frame-max")


def test_cover_assignment_means_per_person_then_max():
    from vadflow.scoring import cover_frame_scores

    # T = 4: a window with centre c covers frames c-2 .. c+1
    # person 1: centre 2 (score 1) covers 0-3, centre 3 (score 3) covers 1-4; person 2: centre 2 (2.5)
    out = cover_frame_scores([6], np.zeros(3, np.int64), np.array([1, 1, 2]), np.array([2, 3, 2]), np.array([1.0, 3.0, 2.5]), 4)
    # person 1 per frame: [1, 2, 2, 2, 3, -]; person 2: [2.5, 2.5, 2.5, 2.5, -, -]
    np.testing.assert_array_equal(out, [2.5, 2.5, 2.5, 2.5, 3.0, -np.inf])


def test_mpedrnn_protocol_uses_cover_and_needs_persons():
    proto = make_protocol("mpedrnn")
    assert proto.window_to_frame == "cover" and make_protocol("stgnf").window_to_frame == "centre"
    masks = {"a": np.array([0, 0, 1, 1, 1, 0], np.uint8)}
    with pytest.raises(ValueError, match="person"):
        evaluate_protocol(proto, masks, np.array(["a"]), np.array([2]), np.array([1.0]))
    res = evaluate_protocol(proto, masks, np.array(["a", "a"]), np.array([2, 3]), np.array([1.0, 3.0]), win_person=np.array([1, 1]), seg_len=4)
    assert res["n_unscored_frames"] == 1 and res["window_to_frame"] == "cover"
    assert res["n_unscored_abnormal_frames"] == 0  # frame 5, normal
    line = format_result(res, "toy")
    assert line.endswith("1 clips, 6 frames (1 unscored, 0 of them abnormal)")
    # frame 5 abnormal: a miss no score can avoid, counted and printed
    abnormal_end = {"a": np.array([0, 0, 1, 1, 1, 1], np.uint8)}
    res = evaluate_protocol(proto, abnormal_end, np.array(["a", "a"]), np.array([2, 3]), np.array([1.0, 3.0]), win_person=np.array([1, 1]), seg_len=4)
    assert res["n_unscored_abnormal_frames"] == 1 and format_result(res, "toy").endswith("(1 unscored, 1 of them abnormal)")
    # every frame scored: nothing added to the line
    res = evaluate_protocol(proto, masks, np.array(["a", "a", "a"]), np.array([2, 3, 4]), np.array([1.0, 3.0, 2.0]), win_person=np.array([1, 1, 1]), seg_len=4)
    assert res["n_unscored_frames"] == 0 and format_result(res, "toy").endswith("1 clips, 6 frames")


def test_cover_with_explicit_window_spans_by_hand():
    """A padded window of a short track covers only its track's frames (win_first / win_span)."""
    from vadflow.scoring import cover_frame_scores

    # clip of 10 frames: person 1 has a full window (T=4) centred on frame 3 -> frames 1..4; person 2 a
    # short track at frames 6..7 (span 2) with score 5
    got = cover_frame_scores([10], np.array([0, 0]), np.array([1, 2]), np.array([3, 7]), np.array([2.0, 5.0]), 4,
                             win_first=np.array([1, 6]), win_span=np.array([4, 2]))
    np.testing.assert_array_equal(got, [-np.inf, 2, 2, 2, 2, -np.inf, 5, 5, -np.inf, -np.inf])
