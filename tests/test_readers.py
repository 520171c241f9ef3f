"""Readers and bad input: every broken file gets a clear error naming it, or a counted skip."""
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from vadflow.data.cache import load_prepared
from vadflow.data.prepare_arrays import prepare_split
from vadflow.data.readers import SkipLog, iter_files, parse_alphapose_json, parse_mask, parse_mpedrnn_csvs
from vadflow.data.sources import load_raw, source_files
from vadflow.data.types import DataError, RawSplit, Track


def csv_bytes(rows):
    return "\n".join(",".join(str(v) for v in r) for r in rows).encode()


def pose_row(frame, value=10.0):
    return [frame] + [value + j for j in range(34)]


def alphapose(persons):
    return json.dumps({str(p): {str(f): {"keypoints": [50.0, 60.0, 0.9] * 17, "scores": None} for f in frames} for p, frames in persons.items()}).encode()


def test_csv_parse_roundtrip_and_missing_joints():
    rows = [pose_row(3), pose_row(4)]
    rows[1][1:3] = [0, 0]  # joint 0 not detected
    [(name, frames, kp)] = parse_mpedrnn_csvs([("a/0001.csv", csv_bytes(rows))], SkipLog())
    assert name == "a/0001.csv" and list(frames) == [3, 4]
    assert kp.shape == (2, 17, 3)
    assert kp[0, 0, 2] == 1.0 and kp[1, 0, 2] == 0.0  # (0, 0) -> confidence 0
    assert kp[0, 1, 0] == 12.0


def test_csv_wrong_column_count_names_the_file():
    with pytest.raises(DataError, match="bad/0002.csv.*35 comma-separated"):
        parse_mpedrnn_csvs([("ok.csv", csv_bytes([pose_row(0)])), ("bad/0002.csv", b"1,2,3\n")], SkipLog())


def test_csv_non_number_names_the_file():
    row = ",".join(["1"] + ["x"] + ["2"] * 33).encode()
    with pytest.raises(DataError, match="bad.csv.*not a number"):
        parse_mpedrnn_csvs([("good.csv", csv_bytes([pose_row(0)])), ("bad.csv", row)], SkipLog())


def test_csv_bad_frame_column():
    with pytest.raises(DataError, match="neg.csv.*non-negative integers"):
        parse_mpedrnn_csvs([("neg.csv", csv_bytes([pose_row(-1)]))], SkipLog())


def test_empty_files_nan_joints_and_duplicate_frames_are_counted_skips():
    skips = SkipLog()
    rows = [pose_row(0), pose_row(0, 99.0), pose_row(1)]
    rows[2][5] = float("nan")
    out = parse_mpedrnn_csvs([("empty.csv", b""), ("t.csv", csv_bytes(rows))], skips)
    assert len(out) == 1
    frames, kp = out[0][1], out[0][2]
    assert list(frames) == [0, 1] and kp[0, 0, 0] == 10.0  # first duplicate kept
    assert kp[1, 2, 2] == 0.0 and np.isfinite(kp).all()
    assert skips == {"empty track file skipped": 1, "duplicate frames dropped (first kept)": 1, "non-finite joints treated as missing": 1}
    assert skips.files == {"empty track file skipped": ["empty.csv"], "duplicate frames dropped (first kept)": ["t.csv"],
                           "non-finite joints treated as missing": ["t.csv"]}


def _poselift_tree(tmp_path, extra_train: dict[str, bytes] = {}):  # noqa: B006 - read only
    root = tmp_path / "PoseLift"
    for folder in ("pose/train", "pose/test", "gt/test_frame_mask"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "pose" / "train" / "01_001_alphapose_tracked_person.json").write_bytes(alphapose({1: range(30)}))
    for name, data in extra_train.items():
        (root / "pose" / "train" / f"{name}_alphapose_tracked_person.json").write_bytes(data)
    (root / "pose" / "test" / "01_0002_alphapose_tracked_person.json").write_bytes(alphapose({4: range(5, 35)}))
    np.save(root / "gt" / "test_frame_mask" / "01_0002.npy", np.r_[np.zeros(20), np.ones(20)].astype(np.int64))


def test_a_test_folder_without_tracks_is_an_error_naming_it(tmp_path):
    _poselift_tree(tmp_path)
    (tmp_path / "PoseLift" / "pose" / "test" / "01_0002_alphapose_tracked_person.json").unlink()
    with pytest.raises(DataError, match=r"PoseLift: no test tracks: pose/test holds no"):
        load_raw("poselift", tmp_path)


def test_skipped_files_are_named_kept_in_the_cache_and_strict_refuses_them(tmp_path, caplog):
    doc = json.loads(alphapose({2: range(30)}))
    doc["2"]["3"]["keypoints"][0] = float("nan")
    _poselift_tree(tmp_path, {"01_002": b"{}", "01_003": json.dumps(doc).encode()})
    clean = tmp_path / "clean"
    _poselift_tree(clean)
    with caplog.at_level("WARNING"):
        train, test, info = load_prepared("poselift", tmp_path, tmp_path / "cache")
    empty, nan = "PoseLift/pose/train/01_002_alphapose_tracked_person.json", "PoseLift/pose/train/01_003_alphapose_tracked_person.json"
    assert info["skipped"] == {"empty JSON file (no people) skipped": {"count": 1, "files": [str(tmp_path / empty)]},
                               "non-finite joints treated as missing": {"count": 1, "files": [str(tmp_path / nan)]}}
    assert f"poselift: empty JSON file (no people) skipped: 1 in 1 file(s): {tmp_path / empty}" in caplog.text
    log_file = Path(info["cache"]).with_suffix(".skipped.json")
    assert json.loads(log_file.read_text())["skipped"] == info["skipped"]
    # the skipped file is absent and nothing else changed: the clean tree's tracks plus the repaired one
    ref_train, ref_test, _ = load_prepared("poselift", clean, tmp_path / "cache_clean")
    assert train.n_tracks == ref_train.n_tracks + 1 and np.array_equal(test.kp, ref_test.kp)
    again = load_prepared("poselift", tmp_path, tmp_path / "cache")
    assert again[2]["cached"] and again[2]["skipped"] == info["skipped"]  # a cached load still knows
    for force in (False, True):  # strict: cached or not, every skip is an error naming the file
        with pytest.raises(DataError, match=r"strict: poselift: empty JSON file .*/01_002_alphapose"):
            load_prepared("poselift", tmp_path, tmp_path / "cache", strict=True, force=force)
    assert load_prepared("poselift", clean, tmp_path / "cache_clean", strict=True)[2]["skipped"] == {}


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "expected an object"),
        (json.dumps({"x": {}}).encode(), "person key 'x' is not an integer"),
        (json.dumps({"1": {"0": {"keypoints": [1, 2, 3]}}}).encode(), "list of 51 numbers"),
        (json.dumps({"1": {"0": {"scores": 1}}}).encode(), "expected an object with a 'keypoints' list"),
        (json.dumps({"1": {"a": {"keypoints": [0] * 51}}}).encode(), "frame key 'a' is not an integer"),
        (json.dumps({"1": {"0": {"keypoints": ["a"] * 51}}}).encode(), "not all numbers"),
    ],
)
def test_malformed_alphapose_json(payload, message):
    with pytest.raises(DataError, match=message) as err:
        parse_alphapose_json("clip.json", payload, "c", SkipLog())
    assert "clip.json" in str(err.value)


def test_alphapose_padded_and_unpadded_keys_sorted():
    data = json.dumps({"2": {"010": {"keypoints": [1.0] * 51}, "9": {"keypoints": [2.0] * 51}}}).encode()
    [t] = parse_alphapose_json("c.json", data, "c", SkipLog())
    assert list(t.frames) == [9, 10] and t.person == 2


def test_masks_are_validated():
    buf = io.BytesIO()
    np.save(buf, np.array([0, 1, 2]))
    with pytest.raises(DataError, match="m.npy.*only 0"):
        parse_mask("m.npy", buf.getvalue())
    with pytest.raises(DataError, match="m.npy.*not a readable"):
        parse_mask("m.npy", b"garbage")


def test_mask_shorter_than_track_is_a_label_frame_mismatch():
    track = Track("c", 1, np.arange(10), np.full((10, 17, 3), 5.0, np.float32), source="t.csv")
    with pytest.raises(DataError, match="c.npy: the mask has 5 frames, but t.csv reaches frame 9 .mask too short"):
        prepare_split(RawSplit([track], {"c": np.zeros(5, np.uint8)}, {"c": "c.npy"}))


def test_tar_archive_reads_like_a_folder(tmp_path):
    folder = tmp_path / "tree"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "1.csv").write_bytes(b"x")
    (folder / "a" / "2.txt").write_bytes(b"y")
    archive = tmp_path / "tree.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(folder / "a", arcname="a")
    keep = lambda p: p.endswith(".csv")  # noqa: E731
    assert list(iter_files(folder, keep)) == list(iter_files(archive, keep)) == [("a/1.csv", b"x")]
    with pytest.raises(DataError, match="cannot read archive"):
        (tmp_path / "broken.tar.xz").write_bytes(b"not an archive")
        list(iter_files(tmp_path / "broken.tar.xz", keep))


def test_wrong_paths_and_unknown_dataset(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        list(iter_files(tmp_path / "nope", lambda p: True))
    with pytest.raises(DataError, match="unknown dataset 'imagenet'"):
        source_files("imagenet", tmp_path)
    with pytest.raises(DataError, match="hr_avenue.*VADFLOW_DATA"):
        load_raw("hr_avenue", tmp_path)


def test_poselift_layout_from_a_folder(tmp_path):
    root = tmp_path / "PoseLift"
    (root / "pose" / "train").mkdir(parents=True)
    (root / "pose" / "test").mkdir(parents=True)
    (root / "gt" / "test_frame_mask").mkdir(parents=True)
    (root / "pose" / "train" / "01_001_alphapose_tracked_person.json").write_bytes(alphapose({1: range(30)}))
    (root / "pose" / "test" / "01_0002_alphapose_tracked_person.json").write_bytes(alphapose({4: range(5, 35)}))
    np.save(root / "gt" / "test_frame_mask" / "01_0002.npy", np.r_[np.zeros(20), np.ones(20)].astype(np.int64))
    train, test, info = load_prepared("poselift", tmp_path, tmp_path / "cache")
    assert train.n_tracks == 1 and test.n_tracks == 1 and test.clips == ["01_0002"]
    assert list(test.frames[:3]) == [5, 6, 7] and test.masks["01_0002"].dtype == np.uint8
    again = load_prepared("poselift", tmp_path, tmp_path / "cache")
    assert again[2]["cached"] and np.array_equal(again[1].kp, test.kp)


def test_tracks_shorter_than_a_window_are_a_counted_skip(tmp_path, caplog):
    import logging

    from vadflow.data.datamodule import PoseDataModule

    dm = PoseDataModule(name="synthetic", data_root=str(tmp_path), cache_dir=str(tmp_path), synthetic={"seed": 1, "n_train_clips": 8, "n_test_clips": 3, "clip_len": 120})
    with caplog.at_level(logging.WARNING):
        dm.setup()
    n_short = 0
    for split_name, split in (("train", dm.train), ("test", dm.test)):
        short = int((np.diff(split.track_ptr) < 24).sum())
        n_short += short
        if short:
            kind = f"{split_name} tracks shorter than a window (T=24) skipped"
            assert f"synthetic: {kind}: {short} in {short} file(s): clip " in caplog.text
            assert dm.prepare_info["skipped"][kind]["count"] == short  # metrics.json carries prepare_info
    assert n_short > 0  # the generator makes some short tracks
    strict = PoseDataModule(name="synthetic", data_root=str(tmp_path), cache_dir=str(tmp_path), strict=True, missing_joints="zeros",
                            synthetic={"seed": 1, "n_train_clips": 8, "n_test_clips": 3, "clip_len": 120})
    with pytest.raises(DataError, match="strict: synthetic: .*tracks shorter than a window"):
        strict.setup()


def test_undo_train_frame_offset_drops_the_repeated_row_and_moves_later_rows_back():
    from vadflow.data.sources import undo_train_frame_offset

    kp = np.random.default_rng(0).random((6, 17, 3)).astype(np.float32)
    kp[1] = kp[2]  # the release's repeat: frame 1 == frame 2
    fixed = undo_train_frame_offset(Track("01_001", 3, np.arange(6), kp))
    assert fixed.frames.tolist() == [0, 1, 2, 3, 4]
    assert np.array_equal(fixed.kp, kp[[0, 2, 3, 4, 5]])
    late = undo_train_frame_offset(Track("01_001", 4, np.arange(7, 10), kp[:3]))  # starts after frame 2: only moved
    assert late.frames.tolist() == [6, 7, 8] and np.array_equal(late.kp, kp[:3])
    with pytest.raises(DataError, match="hr_shanghaitech only"):
        load_raw("hr_avenue", "/nowhere", fix_train_frame_offset=True)


def _tracks_repeating_frame_one(split) -> tuple[int, int]:
    """(tracks holding frames 1 and 2, those whose two poses are identical)."""
    both = same = 0
    for i in range(len(split.track_ptr) - 1):
        lo, hi = split.track_ptr[i], split.track_ptr[i + 1]
        f = split.frames[lo:hi]
        r1, r2 = np.flatnonzero(f == 1), np.flatnonzero(f == 2)
        if len(r1) and len(r2):
            both += 1
            a, b = lo + r1[0], lo + r2[0]  # detected joints (imputed ones may differ by their neighbours)
            same += bool(np.array_equal(split.vis[a], split.vis[b]) and np.array_equal(split.kp[a][split.vis[a]], split.kp[b][split.vis[b]]))
    return both, same


def test_hr_shanghaitech_training_csvs_repeat_frame_one_and_test_csvs_do_not(data_root):
    """The release as read: every training track holding frames 1 and 2 has the same pose at both
    (the one-frame offset that ``fix_train_frame_offset`` undoes); no test track does."""
    from vadflow.config import ROOT

    train, test, _ = load_prepared("hr_shanghaitech", str(data_root), str(ROOT / ".cache"))
    both, same = _tracks_repeating_frame_one(train)
    assert both > 500 and same == both
    both_test, same_test = _tracks_repeating_frame_one(test)
    assert both_test > 100 and same_test == 0


def _prepare_synthetic(cache_dir: str):
    train, test, info = load_prepared("synthetic", cache_dir, cache_dir, synthetic={"seed": 4, "n_train_clips": 6, "n_test_clips": 3})
    return info["cache"], train.kp.sum(), test.kp.sum()


def test_two_processes_preparing_one_dataset_at_once_both_succeed(tmp_path):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        results = list(pool.map(_prepare_synthetic, [str(tmp_path)] * 2))
    assert results[0] == results[1]  # the same cache file, the same arrays
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".npz"] == [Path(results[0][0]).name]  # no half-written temp file left
    assert _prepare_synthetic(str(tmp_path)) == results[0]


def test_changing_the_prepare_code_changes_the_cache_key(tmp_path, monkeypatch):
    import shutil

    import vadflow.data.cache as cache

    code = tmp_path / "code"
    code.mkdir()
    for name in cache.PREPARE_MODULES:
        shutil.copy(Path(cache.__file__).parent / name, code / name)
    digest = cache.prepare_code_digest
    assert digest(code) == digest()
    monkeypatch.setattr(cache, "prepare_code_digest", lambda: digest(code))
    key = cache.cache_key("synthetic", tmp_path, {"seed": 1})
    assert cache.cache_key("synthetic", tmp_path, {"seed": 1}) == key  # nothing changed, same key
    (code / "readers.py").write_text((code / "readers.py").read_text() + "\n# a changed reader\n")
    assert cache.cache_key("synthetic", tmp_path, {"seed": 1}) != key
