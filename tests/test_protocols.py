"""The mocodad and MPED-RNN protocols, AUC-PR and EER, against cases worked out by hand.

The expected numbers below were written from a reading of the reference code (MoCoDAD at 4eb672d:
``models/mocodad.py:post_processing``, ``utils/eval_utils.py:pad_scores/score_process``;
MPED-RNN at 37c3203: ``tbad/combined_model/evaluate.py:eval_combined_models``), worked through by
hand for small clips, not produced by running that code.
"""
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d
from sklearn.metrics import average_precision_score, roc_auc_score

from vadflow.scoring import (average_precision, equal_error_rate, evaluate_protocol, fuse_persons, make_protocol,
                             pad_absences, per_camera_quantiles, score_offset, shift_and_smooth)

LN = np.log


# ----------------------------------------------------------------------------- pad_scores
@pytest.mark.parametrize("score, pad, expected", [
    # absences {0,1} and {4,5} among frames 0..8; pad 1 zeroes range(3, 6): the frame before the gap
    ([0, 0, 3, 4, 0, 0, 5, 6, 7, 0], 1, [0, 0, 3, 0, 0, 0, 5, 6, 7, 0]),
    # pad 2: range(0, 3) after the leading gap, range(2, 7) around the middle one
    ([0, 0, 3, 4, 0, 0, 5, 6, 7, 0], 2, [0, 0, 0, 0, 0, 0, 0, 6, 7, 0]),
    # a gap reaching frame n-2 is widened to the left only: range(1, 4); the last frame is never looked at
    ([1, 2, 0, 0, 0, 9], 1, [1, 0, 0, 0, 0, 9]),
    # absent over all of frames 0..n-2: left alone
    ([0, 0, 0, 5], 3, [0, 0, 0, 5]),
    # pad -1: off
    ([0, 2, 0, 3], -1, [0, 2, 0, 3]),
    # no absence at all
    ([1, 2, 3], 4, [1, 2, 3]),
])
def test_pad_absences_by_hand(score, pad, expected):
    np.testing.assert_array_equal(pad_absences(np.array(score, float), pad), expected)


def test_fuse_persons_and_score_process_by_hand():
    fused = fuse_persons(np.array([[1.0, 0.0], [3.0, 0.0]]))
    np.testing.assert_allclose(fused, [2 + LN(4) - LN(2), 0.0])
    np.testing.assert_array_equal(fuse_persons(np.zeros((0, 3))), [0, 0, 0])  # nobody in the clip
    np.testing.assert_array_equal(shift_and_smooth(np.array([1.0, 2, 3, 4]), 2, 0), [0, 0, 1, 2])
    np.testing.assert_allclose(shift_and_smooth(np.array([1.0, 2, 3, 4]), 1, 2.0), gaussian_filter1d(np.array([0.0, 1, 2, 3]), 2.0))


def _two_person_clip():
    """Clip a, 8 frames; windows as (first frame, span, person, score)."""
    masks = {"a": np.array([0, 0, 0, 1, 1, 1, 0, 0], np.uint8)}
    windows = [(1, 2, 1, 2.0), (2, 2, 1, 4.0), (0, 2, 2, 1.0), (4, 2, 2, 6.0)]
    first, span, person, score = (np.array(v) for v in zip(*windows))
    return masks, first, span, person, score


def _mocodad(masks, first, span, person, score, offset=0.0, **params):
    proto = make_protocol("mocodad", ignore_ranges=params.pop("ignore", None),
                          mocodad={"pad": -1, "offset_quantile": 0.0, **params})
    return evaluate_protocol(proto, masks, np.array(["a"] * len(score)), first + span // 2, score, win_person=person,
                             seg_len=2, win_first=first, win_span=span, score_offset=offset)


def test_mocodad_two_people_gap_keep_mask_shift_by_hand():
    masks, first, span, person, score = _two_person_clip()
    # frames - 1: person 1 covers positions {0, 1} (2) and {1, 2} (4) -> [2, 4, 4, 0, 0, 0, 0, 0];
    # person 2: {-1 -> 7, 0} (1) and {3, 4} (6) -> [1, 0, 0, 6, 6, 0, 0, 1]
    p1 = np.array([2, 4, 4, 0, 0, 0, 0, 0.0])
    p2 = np.array([1, 0, 0, 6, 6, 0, 0, 1.0])
    fused = (p1 + p2) / 2 + np.abs(np.log1p(p1) - np.log1p(p2))
    np.testing.assert_allclose(fused[:3], [1.5 + LN(3) - LN(2), 2 + LN(5), 2 + LN(5)])
    # frame 6 removed by the keep-mask before shifting: 7 frames left, shifted right by 1
    kept = np.r_[fused[:6], fused[7:]]
    expected = np.r_[0.0, kept[:-1]]
    res = _mocodad(masks, first, span, person, score, shift=1, sigma=0, ignore={"a": [[6, 6]]})
    np.testing.assert_allclose(res["frame_scores"][res["keep"]], expected)
    assert np.isnan(res["frame_scores"][6]) and res["n_frames"] == 7
    labels = np.array([0, 0, 0, 1, 1, 1, 0])
    assert res["auc"] == pytest.approx(roc_auc_score(labels, expected))
    assert res["auc_raw"] == pytest.approx(roc_auc_score(labels, kept))
    assert res["n_unscored_frames"] == 1  # frame 5 (position 5): nobody's window writes there; frame 6 is removed
    assert res["n_unscored_abnormal_frames"] == 1  # and frame 5 is abnormal
    # one Gaussian of sigma 2 after the shift
    smoothed = _mocodad(masks, first, span, person, score, shift=1, sigma=2, ignore={"a": [[6, 6]]})
    np.testing.assert_allclose(smoothed["frame_scores"][smoothed["keep"]], gaussian_filter1d(expected, 2))


def test_mocodad_offset_clips_normal_windows_to_zero_and_padding_sees_it():
    masks, first, span, person, score = _two_person_clip()
    # offset 1.5: losses 0.5, 2.5, 0 (absent), 4.5 -> person 2 is absent at position 7 and 0
    p1 = np.array([0.5, 2.5, 2.5, 0, 0, 0, 0, 0])
    p2 = np.array([0, 0, 0, 4.5, 4.5, 0, 0, 0])
    fused = (p1 + p2) / 2 + np.abs(np.log1p(p1) - np.log1p(p2))
    res = _mocodad(masks, first, span, person, score, offset=1.5, shift=0, sigma=0)
    np.testing.assert_allclose(res["frame_scores"], fused)
    assert res["score_offset"] == 1.5
    # pad 2 on person 1: absence 3..6 (n-2 = 6) -> range(1, 6) zeroed; person 2: absences 0..2 -> range(0, 4),
    # 5..6 -> range(3, 6): person 2 is all zero
    p1_pad = np.array([0.5, 0, 0, 0, 0, 0, 0, 0])
    res = _mocodad(masks, first, span, person, score, offset=1.5, shift=0, sigma=0, pad=2)
    np.testing.assert_allclose(res["frame_scores"], p1_pad / 2 + np.log1p(p1_pad))


def test_mocodad_needs_an_offset_and_its_parameters():
    masks, first, span, person, score = _two_person_clip()
    with pytest.raises(ValueError, match="score_offset"):
        evaluate_protocol(make_protocol("mocodad", mocodad={"shift": 0, "sigma": 0, "pad": -1, "offset_quantile": 0}), masks,
                          np.array(["a"] * 4), first + 1, score, win_person=person, win_first=first, win_span=span)
    with pytest.raises(ValueError, match="missing"):
        make_protocol("mocodad", mocodad={"shift": 6})
    with pytest.raises(ValueError, match="unknown"):
        make_protocol("mocodad", mocodad={"shift": 6, "sigma": 30, "pad": 12, "offset_quantile": 0, "kernel": 3})
    assert score_offset(np.arange(101.0), 0.05) == pytest.approx(5.0)


def test_mocodad_clip_without_people_scores_zero():
    masks = {"a": np.array([0, 1, 0, 0], np.uint8), "b": np.array([0, 1, 1], np.uint8)}
    res = evaluate_protocol(make_protocol("mocodad", mocodad={"shift": 0, "sigma": 0, "pad": -1, "offset_quantile": 0}), masks,
                            np.array(["a"]), np.array([2]), np.array([3.0]), win_person=np.array([0]), seg_len=2,
                            win_first=np.array([1]), win_span=np.array([2]), score_offset=0.0)
    np.testing.assert_allclose(res["frame_scores"], [3.0, 3.0, 0, 0, 0, 0, 0])


# ----------------------------------------------------------------------------- MPED-RNN's per-camera step
def test_per_camera_quantiles_by_hand():
    # camera 01: four distinct scores -> 0, 1/3, 2/3, 1; camera 02 the same ranks at another scale
    out = per_camera_quantiles(np.array([1.0, 2, 3, 4, 10, 40, 20, 30]), ["01_a", "02_b"], [4, 4])
    np.testing.assert_allclose(out, [0, 1 / 3, 2 / 3, 1, 0, 1, 1 / 3, 2 / 3])


def test_mpedrnn_per_camera_differs_from_pooled_by_hand():
    masks = {"01_a": np.array([0, 0, 1, 1], np.uint8), "02_b": np.array([0, 1, 0], np.uint8)}
    clip = np.array(["01_a"] * 4 + ["02_b"] * 3)
    frame = np.r_[np.arange(4), np.arange(3)]
    score = np.array([1.0, 2, 3, 4, 10, 30, 20])
    kw = dict(win_person=np.zeros(7, int), seg_len=1, win_first=frame, win_span=np.ones(7, int))
    exact = evaluate_protocol(make_protocol("mpedrnn"), masks, clip, frame, score, **kw)
    pooled = evaluate_protocol(make_protocol("mpedrnn_pooled"), masks, clip, frame, score, **kw)
    # per camera: 01 -> 0, 1/3, 2/3, 1 and 02 -> 0, 1, 1/2: every abnormal frame above every normal one
    np.testing.assert_allclose(exact["frame_scores"], [0, 1 / 3, 2 / 3, 1, 0, 1, 0.5], atol=1e-12)
    assert exact["auc"] == pytest.approx(1.0)
    # pooled: abnormal 3, 4, 30 against normal 1, 2, 10, 20 win 8 of 12 pairs
    assert pooled["auc"] == pytest.approx(8 / 12)
    assert exact["n_cameras"] == 2 and "n_cameras" not in pooled


def test_mpedrnn_on_one_camera_equals_pooled_and_keeps_every_mask():
    rng = np.random.default_rng(3)
    masks = {f"01_{i:02d}": (rng.random(60) < 0.3).astype(np.uint8) for i in range(3)}
    clip = np.array([f"01_{i:02d}" for i in rng.integers(0, 3, 200)])
    frame = rng.integers(2, 58, 200)
    score = rng.normal(size=200)
    kw = dict(win_person=rng.integers(0, 3, 200), seg_len=4)
    exact = evaluate_protocol(make_protocol("mpedrnn", exclude_clips=["01_02"]), masks, clip, frame, score, **kw)
    pooled = evaluate_protocol(make_protocol("mpedrnn_pooled"), masks, clip, frame, score, **kw)
    assert exact["n_clips"] == 3  # exclude_clips is STG-NF's list, not MPED-RNN's
    assert exact["auc"] == pytest.approx(pooled["auc"], abs=1e-12)


# ----------------------------------------------------------------------------- AUC-PR and EER
def test_average_precision_and_eer_by_hand():
    # thresholds 0.9 (P 1, R 1/2), 0.8 (P 1/2), 0.7 (P 2/3, R 1): AP = 1/2 * 1 + 1/2 * 2/3
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(5 / 6)
    # ROC (0,0) (0,1/2) (1/2,1/2) ...: FPR = FNR = 1/2 at a vertex
    assert equal_error_rate([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(0.5)
    # ROC (0,0) (0,1/2) (1/3,1/2) (1/3,1) ...: the crossing lies on the vertical segment at FPR 1/3
    assert equal_error_rate([1, 0, 1, 0, 0], [5, 4, 3, 2, 1]) == pytest.approx(1 / 3)
    assert equal_error_rate([1, 1, 0, 0], [4, 3, 2, 1]) == 0.0
    assert equal_error_rate([0, 0, 1, 1], [4, 3, 2, 1]) == 1.0
    assert np.isnan(average_precision([0, 0], [1, 2])) and np.isnan(equal_error_rate([1, 1], [1, 2]))


def test_average_precision_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 3000)
    s = np.round(rng.normal(size=3000) + y, 1)
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_every_protocol_reports_auc_pr_and_eer_with_abnormal_positive():
    masks = {"01_a": np.r_[np.zeros(15), np.ones(10), np.zeros(15)].astype(np.uint8)}
    frame = np.arange(1, 39)
    clip = np.array(["01_a"] * len(frame))
    score = np.where((frame >= 15) & (frame <= 24), 10.0, 1.0)
    kw = dict(win_person=np.zeros(len(frame), int), seg_len=2, score_offset=0.0)
    for name in ("stgnf", "mpedrnn", "mpedrnn_pooled", "mocodad"):
        proto = make_protocol(name, mocodad={"shift": 0, "sigma": 0, "pad": -1, "offset_quantile": 0}) if name == "mocodad" else make_protocol(name)
        res = evaluate_protocol(proto, masks, clip, frame, score, **kw)
        assert res["auc"] > 0.9 and res["auc_pr"] > 0.6 and res["eer"] < 0.3, name
        flipped = evaluate_protocol(proto, masks, clip, frame, 11 - score, **kw)
        assert flipped["auc"] < 0.5 and flipped["auc_pr"] < res["auc_pr"], name


def test_figures_leave_out_the_frames_a_protocol_removes(tmp_path):
    """mocodad saves NaN on removed frames; the ROC must use the saved keep mask, as the AUC does."""
    from vadflow.plots import evaluation_figures

    masks = {"01_0001": np.r_[np.zeros(20), np.ones(10)], "01_0002": np.r_[np.zeros(25), np.ones(5)]}
    scores = np.r_[np.linspace(0, 1, 30), np.linspace(0, 1, 30)]
    keep = np.ones(60, bool)
    keep[5:10] = False
    scores[~keep] = np.nan
    np.savez(tmp_path / "frame_scores_mocodad.npz", clips=np.array(list(masks)), scores=scores, keep=keep)
    figs = evaluation_figures(tmp_path, masks, "mocodad", "synthetic", n_clips=2)
    assert figs["roc"][0].is_file() and len(figs["timelines"]) == 2
    assert all(p.stat().st_size > 1000 for p in figs["roc"] + figs["timelines"])
