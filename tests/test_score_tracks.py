"""vadflow-score: inputs, per-frame scores, segments, threshold calibration, outputs, bad input."""
import json
import shutil

import numpy as np
import pytest
import torch

from vadflow.data.prepare_arrays import prepare_split
from vadflow.data.readers import alphapose_json
from vadflow.data.synthetic import export_clips, generate_synthetic
from vadflow.data.types import DataError, RawSplit, Track
from vadflow.checkpoint import PRETRAINED_DIR
from vadflow.data.inputs import find_clips
from vadflow.data.windows import ScoringWindows
from vadflow.score_tracks import main
from vadflow.scoring import cover_frame_scores, cover_max_over_tracks, driver_means
from vadflow.scoring.alarms import top_segments
from vadflow.scoring.calibration import calibration_from_scores, threshold_for_far
from vadflow.scoring.frames import ClipScores, frame_results
from vadflow.scoring.inference import score_windows
from vadflow.track_report import values_at_rows
from vadflow.train import run_training

from .conftest import compose

SHIPPED = sorted(p.stem for p in PRETRAINED_DIR.glob("*.ckpt"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Three synthetic test clips written as a practitioner's AlphaPose JSON files and masks."""
    out = tmp_path_factory.mktemp("demo")
    train, test = generate_synthetic(seed=5, n_train_clips=4, n_test_clips=3, clip_len=300)
    export_clips(out, test)
    export_clips(out, train, tracks_dir="normal")
    return out


@pytest.fixture(scope="module")
def trained_ckpt(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    overrides = [f"paths.output_dir={tmp / 'run'}", f"paths.cache_dir={tmp / 'cache'}", "+dataset.synthetic.n_train_clips=4",
                 "+dataset.synthetic.n_test_clips=4", "+dataset.synthetic.clip_len=200", "logger=none", "trainer.max_epochs=1",
                 "+trainer.enable_progress_bar=false", "threads=1"]
    run_training(compose("train", overrides))
    return tmp / "run" / "model.ckpt"


# ----------------------------------------------------------------------------- inputs
def test_find_clips_reads_json_files_track_folders_and_nested_trees(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "01_0014_alphapose_tracked_person.json").write_text("{}")
    (tmp_path / "tree" / "01" / "0015").mkdir(parents=True)
    (tmp_path / "tree" / "01" / "0015" / "001.csv").write_text("")
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "7.csv").write_text("")
    clips = find_clips([str(tmp_path / "a"), str(tmp_path / "tree"), str(tmp_path / "one")])
    assert [(c.name, c.kind) for c in clips] == [("01_0014", "json"), ("01_0015", "csv_dir"), ("one", "csv_dir")]
    assert find_clips([str(tmp_path / "a" / "01_0014_alphapose_tracked_person.json")])[0].name == "01_0014"


@pytest.mark.parametrize("make, match", [
    (lambda p: p / "nothing", "no such file"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no AlphaPose .json file"),
    (lambda p: (p / "x.txt").write_text("1") and p / "x.txt", "expected an AlphaPose .json"),
])
def test_find_clips_bad_paths_name_the_path(tmp_path, make, match):
    with pytest.raises(DataError, match=match):
        find_clips([str(make(tmp_path))])


def test_two_inputs_with_the_same_clip_name_are_refused(tmp_path):
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "c.json").write_text("{}")
    with pytest.raises(DataError, match="same clip name 'c'"):
        find_clips([str(tmp_path / "x"), str(tmp_path / "y")])


# ----------------------------------------------------------------------------- per-frame scores
def test_cover_max_over_tracks_by_hand():
    # track 0 covers frames 0-3 (score 1) and 2-5 (score 3); track 1 covers 4-6 (score 2.5)
    score, driver, n_tracks = cover_max_over_tracks(8, np.array([0, 2, 4]), np.array([4, 4, 3]), np.array([0, 0, 1]), np.array([1.0, 3.0, 2.5]))
    # frame:          0    1    2    3    4    5    6    7
    expect = np.array([1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 2.5, -np.inf])
    np.testing.assert_array_equal(score, expect)
    np.testing.assert_array_equal(driver, [0, 0, 0, 0, 0, 0, 1, -1])
    np.testing.assert_array_equal(n_tracks, [1, 1, 1, 1, 2, 2, 1, 0])


def test_parts_of_the_driving_track_by_hand():
    first, span, track = np.array([0, 2, 4]), np.array([4, 4, 3]), np.array([0, 0, 1])
    pose, traj = np.array([0.5, 2.0, 1.0]), np.array([0.5, 1.0, 1.5])  # window scores 1, 3, 2.5 as above
    score, driver, _ = cover_max_over_tracks(8, first, span, track, pose + traj)
    got_pose, got_traj = (driver_means(8, first, span, track, v, driver) for v in (pose, traj))
    # frames 2-3: track 0's two windows, pose (0.5 + 2) / 2; frame 6: track 1 alone; frame 7: nobody
    np.testing.assert_allclose(got_pose[:7], [0.5, 0.5, 1.25, 1.25, 2.0, 2.0, 1.0])
    np.testing.assert_allclose(got_traj[:7], [0.5, 0.5, 0.75, 0.75, 1.0, 1.0, 1.5])
    assert np.isnan(got_pose[7]) and np.isnan(got_traj[7])
    np.testing.assert_allclose((got_pose + got_traj)[:7], score[:7])  # the parts of a frame sum to its score


@pytest.mark.parametrize("combine", ["max", "standardised", "stream"])
def test_trajectory_aware_scores_name_the_part_that_drove_each_segment(combine, demo, tmp_path):
    """trajectory=flow (combine max or standardised), and GMFC-VAE's own global stream (its parts add up)."""
    component = ["method=gmfcvae", "trajectory=stream"] if combine == "stream" else ["trajectory=flow", f"trajectory.combine={combine}"]
    overrides = [*component, f"paths.output_dir={tmp_path / 'run'}", f"paths.cache_dir={tmp_path / 'cache'}", "dataset=synthetic_global",
                 "+dataset.synthetic.n_train_clips=4", "+dataset.synthetic.n_test_clips=4", "+dataset.synthetic.clip_len=200",
                 "logger=none", "trainer.max_epochs=1", "+trainer.enable_progress_bar=false", "threads=1"]
    run_training(compose("train", overrides))
    out = tmp_path / "scores"
    assert main(["--ckpt", str(tmp_path / "run" / "model.ckpt"), str(demo / "tracks"), "--out", str(out), "--far", "0.05",
                 "--threads", "1"]) == 0
    segments = 0
    for c in json.loads((out / "summary.json").read_text())["clips"]:
        lines = (out / f"{c['clip']}.csv").read_text().splitlines()
        header = lines[0].split(",")
        assert header[:7] == ["frame", "score", "score_raw", "person", "n_people", "part_pose", "part_trajectory"]
        for line in lines[1:]:
            row = dict(zip(header, line.split(",")))
            if not row["score_raw"]:
                assert row["part_pose"] == row["part_trajectory"] == ""
            elif combine == "max":  # each window's score is its larger part: the frame's mean is >= each part's mean
                assert float(row["score_raw"]) >= max(float(row["part_pose"]), float(row["part_trajectory"])) - 1e-4
            else:  # the two parts of the driving person add up to the raw score
                assert float(row["part_pose"]) + float(row["part_trajectory"]) == pytest.approx(float(row["score_raw"]), rel=1e-4, abs=1e-4)
        for seg in json.loads((out / f"{c['clip']}.json").read_text())["segments"]:
            segments += 1
            assert set(seg["parts"]) == {"pose", "trajectory"}
            assert seg["driven_by"] == max(seg["parts"], key=seg["parts"].get)
    assert segments > 0


def test_a_camera_coordinate_checkpoint_scores_user_tracks(demo, tmp_path, capsys):
    """trajectory=frame: the checkpoint carries each training camera's reference, and vadflow-score
    scores, calibrates and renders with it like any method, and splits each frame's score into the
    pose part and what place and size add."""
    overrides = [f"paths.output_dir={tmp_path / 'run'}", f"paths.cache_dir={tmp_path / 'cache'}", "dataset=synthetic_global",
                 "+dataset.synthetic.n_train_clips=4", "+dataset.synthetic.n_test_clips=4", "+dataset.synthetic.clip_len=200",
                 "trajectory=frame", "logger=none", "trainer.max_epochs=1", "+trainer.enable_progress_bar=false", "threads=1"]
    run_training(compose("train", overrides))
    state = torch.load(tmp_path / "run" / "model.ckpt", weights_only=True)["state_dict"]
    seen = state["seen"]
    assert seen[0] and seen.sum() >= 2  # every training window (slot 0) and at least one camera of its own
    assert not torch.equal(state["centre"][0], torch.tensor([0.5, 0.5]))  # fitted, not the constructor's value
    out = tmp_path / "scores"
    assert main(["--ckpt", str(tmp_path / "run" / "model.ckpt"), str(demo / "tracks"), "--masks", str(demo / "masks"), "--out", str(out),
                 "--render", "--far", "0.05", "--threads", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["threshold"]["mode"] == "calibrated" and len(summary["clips"]) == 3
    for c in summary["clips"]:
        lines = (out / f"{c['clip']}.csv").read_text().splitlines()
        header = lines[0].split(",")
        assert header == ["frame", "score", "score_raw", "person", "n_people", "part_pose", "part_trajectory", "above_threshold", "label"]
        for row in (dict(zip(header, line.split(","))) for line in lines[1:]):
            if row["score_raw"]:
                assert float(row["part_pose"]) + float(row["part_trajectory"]) == pytest.approx(float(row["score_raw"]), rel=1e-4, abs=1e-4)
    assert "clip AUC" in capsys.readouterr().out


def test_frame_scores_are_the_mpedrnn_protocols_also_with_dropped_frames():
    """Same windows, same cover rule (a window covers T frames from its first pose, also across a
    dropped frame): the practitioner's per-frame raw score is the protocol's, frame for frame."""
    _, test = generate_synthetic(seed=2, n_train_clips=0, n_test_clips=3, clip_len=200, drop_frame_rate=0.05, missing_joint_rate=0.0)
    split = prepare_split(RawSplit(test.tracks), "impute")
    windows = ScoringWindows.of_split(split, 24, (856, 480))
    assert (split.frames[windows.last] - split.frames[windows.starts] > 23).any()  # some windows span a dropped frame
    scores = score_windows(_tiny_model(), windows)
    lengths = {c: len(test.masks[c]) for c in split.clips}
    clips = frame_results(split, windows, scores, lengths, sigmas=(), fill=None)
    got = np.concatenate([np.where(np.isnan(c.raw), -np.inf, c.raw) for c in clips])
    win_clip = split.track_clip[windows.track]
    expect = cover_frame_scores([lengths[c] for c in split.clips], win_clip, windows.person, windows.frame, scores.score, 24,
                                windows.first, windows.span)
    assert np.isfinite(got).sum() > 300
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(expect))
    np.testing.assert_allclose(got[np.isfinite(got)], expect[np.isfinite(expect)], rtol=1e-12)


def test_segments_by_hand():
    smoothed = np.array([0, 5, 6, 0, 0, 7, 9, 8, 0, 0, 0, 4.0])
    person = np.array([-1, 3, 3, -1, 2, 2, 2, 2, -1, -1, -1, 5])
    clip = ClipScores("c", smoothed, smoothed, person, (person >= 0).astype(int), 3, 0)
    segs = top_segments(clip, threshold=3.5, top=5, merge_gap=0, fps=2.0)
    assert [(s["start"], s["end"], s["peak_frame"], s["person"]) for s in segs] == [(5, 7, 6, 2), (1, 2, 2, 3), (11, 11, 11, 5)]
    assert segs[0]["peak_score"] == 9 and segs[0]["start_s"] == 2.5 and segs[0]["end_s"] == 4.0
    merged = top_segments(clip, threshold=3.5, top=1, merge_gap=2, fps=2.0)
    assert [(s["start"], s["end"], s["person"]) for s in merged] == [(1, 7, 2)]


def test_per_joint_values_of_rows_read_padded_windows_after_their_lead():
    """Three 4-frame windows over rows 10-15: A full from row 10, B a track-start window padded by two
    positions (its rows 10-11 at positions 2-3), C full from row 12. Map value = 10 * window + position."""
    maps = np.array([[[10 * w + p] for p in range(4)] for w in range(3)], np.float32)  # (3, 4, 1)
    starts, last, lead = np.array([10, 10, 12]), np.array([13, 11, 15]), np.array([0, 2, 0])
    values = values_at_rows(maps, starts, last, lead, np.array([10, 11, 12, 14, 16]))
    expected = [(0 + 12) / 2, (1 + 13) / 2, (2 + 20) / 2, 22, 0]  # row 16: no window, zero
    assert values[:, 0].tolist() == expected


def test_threshold_for_a_false_alarm_rate():
    scores = np.arange(1000, dtype=float)
    clip = ClipScores("c", scores, scores, np.zeros(1000, int), np.ones(1000, int), 1, 0)
    cal = calibration_from_scores([clip], (), 1, "test")
    assert threshold_for_far(cal, 0.01) == pytest.approx(np.quantile(scores, 0.99))
    assert (scores > threshold_for_far(cal, 0.05)).mean() == pytest.approx(0.05, abs=0.002)
    with pytest.raises(DataError, match="--far"):
        threshold_for_far(cal, 1.5)


# ----------------------------------------------------------------------------- end to end
def test_score_writes_csv_json_png_and_renders(demo, trained_ckpt, tmp_path, capsys):
    out = tmp_path / "scores"
    assert main(["--ckpt", str(trained_ckpt), str(demo / "tracks"), "--masks", str(demo / "masks"), "--out", str(out),
                 "--render", "--far", "0.05", "--threads", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["threshold"]["mode"] == "calibrated" and summary["threshold"]["far"] == 0.05
    assert len(summary["clips"]) == 3
    for c in summary["clips"]:
        mask = np.load(demo / "masks" / f"{c['clip']}.npy")
        lines = (out / f"{c['clip']}.csv").read_text().splitlines()
        assert lines[0] == "frame,score,score_raw,person,n_people,above_threshold,label"
        assert len(lines) - 1 == len(mask) == c["n_frames"]
        info = json.loads((out / f"{c['clip']}.json").read_text())
        for s in info["segments"]:
            assert {"start", "end", "person", "peak_score"} <= set(s) and s["start"] <= s["peak_frame"] <= s["end"]
            assert s["peak_score"] > summary["threshold"]["value"]
        assert (out / f"{c['clip']}.png").stat().st_size > 0
        assert (out / f"{c['clip']}_segments.png").is_file() == bool(info["segments"])
    assert any(json.loads((out / f"{c['clip']}.json").read_text())["segments"] for c in summary["clips"])
    assert "clip AUC" in capsys.readouterr().out


def test_score_reads_mpedrnn_track_folders(trained_ckpt, tmp_path):
    _, test = generate_synthetic(seed=1, n_train_clips=0, n_test_clips=1, clip_len=200)
    folder = tmp_path / "01" / "0001"
    folder.mkdir(parents=True)
    for t in test.tracks:
        xy = np.where(t.kp[..., 2:3] > 0, t.kp[..., :2], 0.0).reshape(len(t.frames), -1)
        np.savetxt(folder / f"{t.person:03d}.csv", np.c_[t.frames, xy], delimiter=",", fmt="%.2f")
    assert main(["--ckpt", str(trained_ckpt), str(tmp_path / "01"), "--out", str(tmp_path / "o"), "--threshold", "0", "--threads", "1"]) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert [c["clip"] for c in summary["clips"]] == ["0001"] and summary["n_windows"] > 0
    assert summary["threshold"] == {"mode": "fixed", "value": 0.0}


def test_calibration_is_stored_by_training_and_by_calibrate(trained_ckpt, tmp_path):
    ckpt = torch.load(trained_ckpt, weights_only=True)
    cal = ckpt["calibration"]
    assert cal["n_frames"] > 0 and len(cal["levels"]) == len(cal["smoothed_quantiles"])
    assert np.all(np.diff(cal["smoothed_quantiles"]) >= 0)
    del ckpt["calibration"]
    bare = tmp_path / "bare.ckpt"
    torch.save(ckpt, bare)
    assert main(["--ckpt", str(bare), "--calibrate", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "cal.ckpt"), "--threads", "1"]) == 0
    again = torch.load(tmp_path / "cal.ckpt", weights_only=True)["calibration"]
    assert again["n_frames"] == cal["n_frames"]
    np.testing.assert_allclose(again["smoothed_quantiles"], cal["smoothed_quantiles"], rtol=1e-6)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_score_out_of_the_box(name, demo, tmp_path):
    from vadflow.build import trajectory_kind

    path = PRETRAINED_DIR / f"{name}.ckpt"
    assert path.stat().st_size < 1_000_000  # small files in the repo
    row = {r["file"]: r for r in json.loads((PRETRAINED_DIR / "index.json").read_text())}[path.name]  # and a row in the README
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["dataset"]["name"] == row["dataset"] and trajectory_kind(ckpt["method"]) == row["component"]
    assert ckpt["calibration"]["n_frames"] > 10_000 and name in (PRETRAINED_DIR / "README.md").read_text()
    assert main(["--ckpt", name, str(demo / "tracks"), "--out", str(tmp_path / name), "--threads", "1"]) == 0
    summary = json.loads((tmp_path / name / "summary.json").read_text())
    assert summary["method"] == row["method"] and summary["threshold"]["mode"] == "calibrated" and summary["n_windows"] > 0


def test_a_method_alone_names_its_hr_shanghaitech_model_without_a_component():
    from vadflow.checkpoint import resolve_checkpoint

    for method in ("stgnf", "daflow", "dsnf", "gmfcvae", "msgflow"):
        assert resolve_checkpoint(method) == PRETRAINED_DIR / f"{method}_hr_shanghaitech.ckpt"


# ----------------------------------------------------------------------------- bad input
def _cli_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_malformed_json_names_the_file(trained_ckpt, tmp_path, capsys):
    bad = tmp_path / "cam1.json"
    bad.write_text('{"1": {"0": {"keypoints": [1, 2')
    err = _cli_error(capsys, ["--ckpt", str(trained_ckpt), str(bad), "--out", str(tmp_path / "o")])
    assert "cam1.json: malformed JSON" in err


def test_mask_shorter_than_the_tracks_names_the_mask(demo, trained_ckpt, tmp_path, capsys):
    masks = tmp_path / "masks"
    shutil.copytree(demo / "masks", masks)
    clip = sorted(masks.glob("*.npy"))[0]
    np.save(clip, np.zeros(10, np.uint8))
    err = _cli_error(capsys, ["--ckpt", str(trained_ckpt), str(demo / "tracks"), "--masks", str(masks), "--out", str(tmp_path / "o")])
    assert f"{clip.stem}.npy: the mask has 10 frames" in err


def test_unknown_model_and_bad_frame_size(demo, capsys, tmp_path):
    assert "nosuch: checkpoint not found" in _cli_error(capsys, ["--ckpt", "nosuch", str(demo / "tracks")])
    assert "--frame-size" in _cli_error(capsys, ["--ckpt", "stgnf", str(demo / "tracks"), "--frame-size", "big", "--out", str(tmp_path / "o")])


def test_tracks_too_short_and_nan_joints_are_counted_not_fatal(trained_ckpt, tmp_path):
    kp = np.full((10, 17, 3), 100.0, np.float32)
    kp[..., 2] = 1.0
    kp[3, 4, :2] = np.nan  # a NaN joint: treated as missing
    path = tmp_path / "short.json"
    path.write_text(alphapose_json([Track("short", 1, np.arange(10), kp)]))
    out = tmp_path / "o"
    assert main(["--ckpt", str(trained_ckpt), str(path), "--out", str(out), "--threshold", "1"]) == 0
    info = json.loads((out / "short.json").read_text())
    assert info["n_tracks"] == 1 and info["n_tracks_not_scored"] == 1 and info["frames_with_people"] == 0 and info["segments"] == []


def _tiny_model():
    from vadflow.methods.stgnf import STGNF

    torch.manual_seed(0)
    model = STGNF(seg_len=24, K=2).eval()
    with torch.no_grad():  # ActNorm initialised on a random batch, as after training
        model.nll(torch.randn(64, 2, 24, 18))
    return model


def test_files_read_in_parallel_give_the_same_tracks_and_clean_errors(demo, tmp_path):
    from vadflow.data.readers import SkipLog
    from vadflow.data.inputs import read_clips

    sources = find_clips([str(demo / "tracks")])
    serial, parallel = read_clips(sources, SkipLog(), workers=1), read_clips(sources, SkipLog(), workers=2)
    assert [[(t.person, len(t.frames)) for t in c] for c in serial] == [[(t.person, len(t.frames)) for t in c] for c in parallel]
    np.testing.assert_array_equal(serial[0][0].kp, parallel[0][0].kp)
    shutil.copytree(demo / "tracks", tmp_path / "tracks")
    (tmp_path / "tracks" / "broken.json").write_text("[1, 2")
    with pytest.raises(DataError, match="broken.json: malformed JSON"):
        read_clips(find_clips([str(tmp_path / "tracks")]), SkipLog(), workers=2)


@pytest.mark.data
def test_real_alphapose_sample_is_scored_and_its_anomaly_found(data_root, tmp_path):
    """The real ShanghaiTech clip 01_0014 (a cyclist) with the shipped STG-NF model."""
    masks = tmp_path / "masks"
    masks.mkdir()
    shutil.copy(data_root / "shanghaitech-gt" / "test_frame_mask" / "01_0014.npy", masks)
    out = tmp_path / "o"
    assert main(["--ckpt", "stgnf", str(data_root / "samples" / "01_0014_alphapose_tracked_person.json"), "--masks", str(masks),
                 "--out", str(out), "--threads", "1"]) == 0
    info = json.loads((out / "01_0014.json").read_text())
    mask = np.load(masks / "01_0014.npy")
    assert info["n_frames"] == len(mask) and info["auc"] > 0.9
    top = info["segments"][0]
    assert mask[top["peak_frame"]] == 1  # the top segment peaks inside the labelled anomaly


def test_threshold_calibrated_on_your_own_normal_tracks(demo, trained_ckpt, tmp_path):
    out = tmp_path / "o"
    assert main(["--ckpt", str(trained_ckpt), str(demo / "tracks"), "--normal", str(demo / "normal"), "--far", "0.02",
                 "--out", str(out), "--threads", "1"]) == 0
    th = json.loads((out / "summary.json").read_text())["threshold"]
    assert th["mode"] == "calibrated" and "your normal tracks" in th["calibrated_on"] and th["n_calibration_frames"] > 100
    # 2 % of the normal frames with people lie above it: score the normal tracks themselves
    assert main(["--ckpt", str(trained_ckpt), str(demo / "normal"), "--threshold", str(th["value"]), "--out", str(tmp_path / "n"), "--threads", "1"]) == 0
    clips = json.loads((tmp_path / "n" / "summary.json").read_text())["clips"]
    above = sum(c["frames_above_threshold"] for c in clips) / sum(c["frames_with_people"] for c in clips)
    assert above == pytest.approx(0.02, abs=0.01)


def test_vadflow_eval_names_its_run_after_the_checkpoint(trained_ckpt, tmp_path):
    """runs/eval/<its dataset>/<its method>/<time>_seed<its training seed>, with its metrics.json."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "vadflow.evaluate", f"ckpt_path={trained_ckpt}", f"paths.log_dir={tmp_path}",
           f"paths.cache_dir={trained_ckpt.parent.parent / 'cache'}", "threads=1", "figures=false"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    seed = torch.load(trained_ckpt, weights_only=True)["metrics"]["seed"]
    runs = list((tmp_path / "eval" / "synthetic" / "stgnf").glob(f"*_seed{seed}"))
    assert len(runs) == 1, sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("metrics.json"))
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert (metrics["method"], metrics["dataset"], metrics["seed"]) == ("stgnf", "synthetic", seed)
