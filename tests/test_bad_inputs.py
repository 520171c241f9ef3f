"""A corpus of defective datasets, each a small clean dataset with exactly one defect, in both
formats (AlphaPose JSON in PoseLift's layout, MPED-RNN CSVs in HR-Avenue's), run through
``vadflow-prepare``, ``vadflow-train`` and ``vadflow-score`` as a user would.

* An unrecoverable defect ends the command with one line naming the file and the problem, exit 2.
* A recoverable one is skipped or repaired, named in the output, and the cache holds exactly what
  the clean dataset gives without that file (or with the repair done by hand): nothing else moves.
"""
from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from vadflow.data.cache import load_prepared

N_FRAMES, MASK_LEN = 40, 60
TRAIN_CLIPS, TEST_CLIPS = ("01_001", "01_002", "02_001"), ("01_0001", "02_0001")
HR_TRAIN_CLIPS, HR_TEST_CLIPS = ("01_01", "01_02", "02_01"), ("02_01", "02_02")  # no published Avenue test id: any length
# a standing person, 17 COCO joints, pixel offsets from the hip centre (about 120 px tall)
pytestmark = pytest.mark.usefixtures("restore_logging")  # Hydra runs in-process here

SKELETON = np.array([[0, -100], [-4, -104], [4, -104], [-8, -100], [8, -100], [-14, -80], [14, -80], [-18, -55],
                     [18, -55], [-20, -30], [20, -30], [-9, 0], [9, 0], [-10, 30], [10, 30], [-10, 60], [10, 60]], np.float64)


def person(seed: int, n: int = N_FRAMES) -> np.ndarray:
    """(n, 17, 3): a person walking across the frame with a little jitter, confidence 0.9."""
    rng = np.random.default_rng(seed)
    start, step = rng.uniform(100, 400, 2), rng.uniform(-2, 2, 2)
    xy = start + step * np.arange(n)[:, None]
    kp = xy[:, None, :] + SKELETON[None] + rng.normal(0, 1.0, (n, 17, 2))
    return np.concatenate([kp.round(2), np.full((n, 17, 1), 0.9)], -1)


def write_poselift(root: Path) -> None:
    base = root / "PoseLift"
    for split, clips in (("train", TRAIN_CLIPS), ("test", TEST_CLIPS)):
        (base / "pose" / split).mkdir(parents=True, exist_ok=True)
        for c, clip in enumerate(clips):
            doc = {str(p): {str(f): {"keypoints": person(100 * c + p + (50 if split == "test" else 0))[f].reshape(-1).tolist(), "scores": None}
                            for f in range(N_FRAMES)} for p in (1, 2)}
            (base / "pose" / split / f"{clip}_alphapose_tracked_person.json").write_text(json.dumps(doc))
    (base / "gt" / "test_frame_mask").mkdir(parents=True, exist_ok=True)
    for clip in TEST_CLIPS:
        np.save(base / "gt" / "test_frame_mask" / f"{clip}.npy", (np.arange(MASK_LEN) % 20 < 5).astype(np.uint8))


def csv_text(kp: np.ndarray, frames=None) -> str:
    frames = range(len(kp)) if frames is None else frames
    return "".join(f"{f}," + ",".join(f"{v:.2f}" for v in row[:, :2].reshape(-1)) + "\n" for f, row in zip(frames, kp))


def write_hr_avenue(root: Path) -> None:
    base = root / "HR-Avenue"
    for c, clip in enumerate(HR_TRAIN_CLIPS):
        folder = base / "training" / "trajectories" / clip[:2] / clip
        folder.mkdir(parents=True, exist_ok=True)
        for p in (1, 2):
            (folder / f"{p:04d}.csv").write_text(csv_text(person(100 * c + p)))
    for c, clip in enumerate(HR_TEST_CLIPS):
        folder = base / "testing" / "trajectories" / clip[:2] / clip[3:]
        folder.mkdir(parents=True, exist_ok=True)
        for p in (1, 2):
            (folder / f"{p:04d}.csv").write_text(csv_text(person(100 * c + p + 50)))
        masks = base / "testing" / "frame_level_masks" / clip[:2]
        masks.mkdir(parents=True, exist_ok=True)
        np.save(masks / f"{clip}.npy", (np.arange(MASK_LEN) % 20 < 5).astype(np.uint8))


WRITERS = {"poselift": write_poselift, "hr_avenue": write_hr_avenue}
JSON_TRAIN = "PoseLift/pose/train/01_001_alphapose_tracked_person.json"
JSON_TEST = "PoseLift/pose/test/01_0001_alphapose_tracked_person.json"
JSON_MASK = "PoseLift/gt/test_frame_mask/01_0001.npy"
CSV_TRAIN = "HR-Avenue/training/trajectories/01/01_01/0001.csv"
CSV_TEST = "HR-Avenue/testing/trajectories/02/01/0001.csv"
CSV_MASK = "HR-Avenue/testing/frame_level_masks/02/02_01.npy"


# ----------------------------------------------------------------------------- defects
def edit_json(rel: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        doc = json.loads((root / rel).read_text())
        change(doc)
        (root / rel).write_text(json.dumps(doc))
    return apply


def edit_csv_rows(rel: str, change: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / rel).write_text("".join(line + "\n" for line in change((root / rel).read_text().splitlines())))
    return apply


def write_bytes(rel: str, data: bytes) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return apply


def npy_bytes(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array))
    return buf.getvalue()


def remove(rel: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / rel
        for f in sorted(path.rglob("*"), reverse=True) if path.is_dir() else []:
            f.unlink() if f.is_file() else f.rmdir()
        path.rmdir() if path.is_dir() else path.unlink()
    return apply


def set_keypoint(frame: str, index: int, value):
    def change(doc):
        doc["1"][frame]["keypoints"][index] = value
    return change


def replace_field(row: int, column: int, value: str):
    def change(lines):
        cells = lines[row].split(",")
        cells[column] = value
        lines[row] = ",".join(cells)
        return lines
    return change


@dataclass
class Fatal:
    """A defect no command can work around: exit 2, one line naming ``names`` and saying ``says``."""

    id: str
    dataset: str
    defect: Callable[[Path], None]
    names: str  # the file or folder the message names, relative to the data root
    says: str


FATAL = [
    Fatal("json-truncated", "poselift", lambda r: (r / JSON_TRAIN).write_text((r / JSON_TRAIN).read_text()[:500]), JSON_TRAIN, "malformed JSON"),
    Fatal("json-not-an-object", "poselift", write_bytes(JSON_TRAIN, b"[1, 2, 3]"), JSON_TRAIN, "expected an object"),
    Fatal("json-person-key", "poselift", edit_json(JSON_TRAIN, lambda d: d.update(abc=d.pop("1"))), JSON_TRAIN, "person key 'abc' is not an integer"),
    Fatal("json-frame-not-integer", "poselift", edit_json(JSON_TRAIN, lambda d: d["1"].update({"3.5": d["1"].pop("3")})), JSON_TRAIN, "frame key '3.5' is not an integer"),
    Fatal("json-negative-frame", "poselift", edit_json(JSON_TRAIN, lambda d: d["1"].update({"-3": d["1"].pop("3")})), JSON_TRAIN, "negative frame index"),
    Fatal("json-50-keypoint-values", "poselift", edit_json(JSON_TRAIN, lambda d: d["1"]["4"]["keypoints"].pop()), JSON_TRAIN, "must be a list of 51 numbers"),
    Fatal("json-keypoint-not-a-number", "poselift", edit_json(JSON_TEST, set_keypoint("2", 7, "x")), JSON_TEST, "keypoints are not all numbers"),
    Fatal("json-no-keypoints-field", "poselift", edit_json(JSON_TRAIN, lambda d: d["2"]["5"].pop("keypoints")), JSON_TRAIN, "frame 5: expected an object with a 'keypoints' list"),
    Fatal("mask-not-binary", "poselift", write_bytes(JSON_MASK, npy_bytes(np.full(MASK_LEN, 2))), JSON_MASK, "only 0 (normal) and 1 (abnormal)"),
    Fatal("mask-unreadable", "poselift", write_bytes(JSON_MASK, b"not a numpy file"), JSON_MASK, "not a readable .npy mask (no .npy header"),
    Fatal("mask-truncated", "poselift", lambda r: (r / JSON_MASK).write_bytes((r / JSON_MASK).read_bytes()[:100]), JSON_MASK, "not a readable .npy mask"),
    Fatal("json-frame-not-an-object", "poselift", edit_json(JSON_TEST, lambda d: d["2"].update({"4": [1, 2, 3]})), JSON_TEST, "frame 4: expected an object"),
    Fatal("mask-2d", "poselift", write_bytes(JSON_MASK, npy_bytes(np.zeros((MASK_LEN, 2), np.uint8))), JSON_MASK, "non-empty 1-D array"),
    Fatal("mask-empty", "poselift", write_bytes(JSON_MASK, npy_bytes(np.zeros(0, np.uint8))), JSON_MASK, "non-empty 1-D array"),
    Fatal("mask-too-short", "poselift", write_bytes(JSON_MASK, npy_bytes(np.zeros(30, np.uint8))), JSON_MASK, "mask too short"),
    Fatal("mask-missing", "poselift", remove(JSON_MASK), JSON_TEST, "has test tracks but no frame mask"),
    Fatal("test-folder-empty", "poselift", lambda r: [p.unlink() for p in (r / "PoseLift/pose/test").iterdir()], "PoseLift", "no test tracks"),
    Fatal("train-folder-missing", "poselift", remove("PoseLift/pose/train"), "PoseLift", "no training tracks"),
    Fatal("masks-folder-missing", "poselift", remove("PoseLift/gt"), "PoseLift", "no test masks"),
    Fatal("csv-34-columns", "hr_avenue", edit_csv_rows(CSV_TRAIN, lambda ls: [",".join(l.split(",")[:-1]) for l in ls]), CSV_TRAIN, "expected 35 comma-separated columns"),
    Fatal("csv-one-short-row", "hr_avenue", edit_csv_rows(CSV_TEST, lambda ls: ls[:3] + [",".join(ls[3].split(",")[:-2])] + ls[4:]), CSV_TEST, "expected 35 comma-separated columns"),
    Fatal("csv-text-field", "hr_avenue", edit_csv_rows(CSV_TRAIN, replace_field(2, 5, "abc")), CSV_TRAIN, "a field is not a number"),
    Fatal("csv-header-row", "hr_avenue", edit_csv_rows(CSV_TRAIN, lambda ls: [",".join(["frame"] + [f"c{i}" for i in range(34)])] + ls), CSV_TRAIN, "a field is not a number"),
    Fatal("csv-negative-frame", "hr_avenue", edit_csv_rows(CSV_TRAIN, replace_field(0, 0, "-1")), CSV_TRAIN, "non-negative integers"),
    Fatal("csv-fractional-frame", "hr_avenue", edit_csv_rows(CSV_TEST, replace_field(4, 0, "4.5")), CSV_TEST, "non-negative integers"),
    Fatal("csv-nan-frame", "hr_avenue", edit_csv_rows(CSV_TEST, replace_field(4, 0, "nan")), CSV_TEST, "non-negative integers"),
    Fatal("csv-mask-too-short", "hr_avenue", write_bytes(CSV_MASK, npy_bytes(np.zeros(20, np.uint8))), CSV_MASK, "mask too short"),
    Fatal("csv-mask-not-binary", "hr_avenue", write_bytes(CSV_MASK, npy_bytes(np.linspace(0, 1, MASK_LEN))), CSV_MASK, "only 0 (normal) and 1 (abnormal)"),
    Fatal("csv-mask-missing", "hr_avenue", remove(CSV_MASK), CSV_TEST, "has test tracks but no frame mask"),
    Fatal("avenue-mask-longer-than-its-video", "hr_avenue",
          write_bytes("HR-Avenue/testing/frame_level_masks/01/01_21.npy", npy_bytes(np.zeros(80, np.uint8))),
          "HR-Avenue/testing/frame_level_masks/01/01_21.npy", "Avenue test video 01_21 has 76 (mask too long)"),
    Fatal("avenue-mask-shorter-than-its-video", "hr_avenue",
          write_bytes("HR-Avenue/testing/frame_level_masks/01/01_08.npy", npy_bytes(np.zeros(30, np.uint8))),
          "HR-Avenue/testing/frame_level_masks/01/01_08.npy", "Avenue test video 01_08 has 36 (mask too short)"),
    Fatal("hr-no-test-tracks", "hr_avenue", remove("HR-Avenue/testing/trajectories"), "HR-Avenue", "no HR-Avenue test tracks found"),
    Fatal("hr-second-mask-for-a-clip", "hr_avenue", write_bytes("HR-Avenue/testing/frame_level_masks/03/02_01.npy", npy_bytes(np.zeros(MASK_LEN, np.uint8))),
          "HR-Avenue/testing/frame_level_masks/03/02_01.npy", "a second mask for clip 02_01"),
]


@dataclass
class Recoverable:
    """A defect that is skipped or repaired: ``kind`` is named with ``names``; the cache equals the
    clean dataset's after ``same_as`` (the skip or repair done by hand; None: the clean dataset)."""

    id: str
    dataset: str
    defect: Callable[[Path], None]
    names: str
    kind: str
    same_as: Callable[[Path], None] | None = None


def zero_joint(rel: str, frame: str, joint: int):
    return edit_json(rel, lambda d: d["1"][frame]["keypoints"].__setitem__(slice(3 * joint, 3 * joint + 2), [0.0, 0.0]))


def json_drop_frame(rel: str, person_key: str, frame: str):
    return edit_json(rel, lambda d: d[person_key].pop(frame))


RECOVERABLE = [
    Recoverable("json-nan-coordinate", "poselift", edit_json(JSON_TRAIN, set_keypoint("3", 0, float("nan"))), JSON_TRAIN,
                "non-finite joints treated as missing", zero_joint(JSON_TRAIN, "3", 0)),
    Recoverable("json-infinite-coordinate", "poselift", edit_json(JSON_TEST, set_keypoint("10", 4, float("inf"))), JSON_TEST,
                "non-finite joints treated as missing", zero_joint(JSON_TEST, "10", 1)),
    Recoverable("json-empty-object", "poselift", write_bytes("PoseLift/pose/train/03_001_alphapose_tracked_person.json", b"{}"),
                "PoseLift/pose/train/03_001_alphapose_tracked_person.json", "empty JSON file (no people) skipped"),
    Recoverable("json-person-without-frames", "poselift", edit_json(JSON_TRAIN, lambda d: d.update({"7": {}})), JSON_TRAIN,
                "person with no frames skipped"),
    Recoverable("json-repeated-frame", "poselift", edit_json(JSON_TRAIN, lambda d: d["1"].update({"003": d["1"]["5"]})), JSON_TRAIN,
                "duplicate frames dropped (first kept)"),
    Recoverable("json-row-without-a-joint", "poselift",
                edit_json(JSON_TRAIN, lambda d: d["2"]["6"].update(keypoints=[0.0] * 51)), JSON_TRAIN,
                "rows without a detected joint dropped", json_drop_frame(JSON_TRAIN, "2", "6")),
    Recoverable("json-person-never-detected", "poselift",
                edit_json(JSON_TRAIN, lambda d: d.update({"9": {str(f): {"keypoints": [0.0] * 51, "scores": None} for f in range(5)}})),
                JSON_TRAIN, "tracks with no detected joint skipped"),
    Recoverable("csv-empty-file", "hr_avenue", write_bytes("HR-Avenue/training/trajectories/01/01_01/0009.csv", b""),
                "HR-Avenue/training/trajectories/01/01_01/0009.csv", "empty track file skipped"),
    Recoverable("csv-nan-cell", "hr_avenue", edit_csv_rows(CSV_TRAIN, replace_field(3, 5, "nan")), CSV_TRAIN,
                "non-finite joints treated as missing", edit_csv_rows(CSV_TRAIN, lambda ls: replace_field(3, 6, "0")(replace_field(3, 5, "0")(ls)))),
    Recoverable("csv-repeated-frame", "hr_avenue", edit_csv_rows(CSV_TEST, lambda ls: ls[:8] + [ls[7]] + ls[8:]), CSV_TEST,
                "duplicate frames dropped (first kept)"),
    Recoverable("csv-unsorted-rows-and-a-repeat", "hr_avenue", edit_csv_rows(CSV_TRAIN, lambda ls: ls[::-1] + [ls[0]]), CSV_TRAIN,
                "duplicate frames dropped (first kept)"),
    Recoverable("csv-row-without-a-joint", "hr_avenue", edit_csv_rows(CSV_TEST, lambda ls: ls[:5] + ["5," + ",".join(["0"] * 34)] + ls[6:]), CSV_TEST,
                "rows without a detected joint dropped", edit_csv_rows(CSV_TEST, lambda ls: ls[:5] + ls[6:])),
    Recoverable("csv-whitespace-only-file", "hr_avenue", write_bytes("HR-Avenue/testing/trajectories/02/02/0007.csv", b"\n\n  \n"),
                "HR-Avenue/testing/trajectories/02/02/0007.csv", "empty track file skipped"),
]


def dataset(tmp_path: Path, name: str, defect: Callable[[Path], None] | None, folder: str = "data") -> Path:
    root = tmp_path / folder
    WRITERS[name](root)
    if defect is not None:
        defect(root)
    return root


def run(entry: Callable, argv: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    """A console command in this process, as its entry point runs it: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["vadflow", *argv])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    try:
        code = entry()
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return int(code or 0), out, err


def prepare(root: Path, name: str, tmp_path: Path, monkeypatch, capsys, *extra: str) -> tuple[int, str, str]:
    import vadflow.prepare

    argv = [f"dataset={name}", f"paths.data_root={root}", f"paths.cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={tmp_path / 'hydra'}", "threads=1", *extra]
    return run(vadflow.prepare.main, argv, monkeypatch, capsys)


def assert_one_line(code: int, err: str, names: str, says: str) -> None:
    assert code == 2, err
    assert err.startswith("vadflow: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert names in err and says in err, err


@pytest.mark.parametrize("case", FATAL, ids=lambda c: c.id)
def test_prepare_refuses_an_unusable_dataset_in_one_line(case, tmp_path, monkeypatch, capsys):
    root = dataset(tmp_path, case.dataset, case.defect)
    code, _, err = prepare(root, case.dataset, tmp_path, monkeypatch, capsys)
    assert_one_line(code, err, str(root / case.names), case.says)
    assert not list((tmp_path / "cache").glob("*.npz"))  # no half cache


PREPARED = ("kp", "vis", "frames", "track_ptr", "track_clip", "track_person")


@pytest.mark.parametrize("case", RECOVERABLE, ids=lambda c: c.id)
def test_prepare_names_a_skip_and_keeps_everything_else(case, tmp_path, monkeypatch, capsys):
    root = dataset(tmp_path, case.dataset, case.defect)
    code, out, err = prepare(root, case.dataset, tmp_path, monkeypatch, capsys)
    assert code == 0, err
    named = f"{case.dataset}: {case.kind}: "  # logged while preparing (a cached load prints it as "skipped: ...")
    line = next((ln for ln in out.splitlines() if named in ln), None)
    assert line is not None and str(root / case.names) in line, out
    threshold = 0.05 if case.dataset == "poselift" else 0.0  # the dataset configs' conf_threshold
    with pytest.raises(Exception, match="strict"):  # the same dataset under strict is refused
        load_prepared(case.dataset, root, tmp_path / "cache", strict=True, conf_threshold=threshold)
    assert "dataset.strict" in prepare(root, case.dataset, tmp_path, monkeypatch, capsys, "dataset.strict=true")[2]
    # the cache: exactly the clean dataset's, with the skip or repair done by hand
    got = load_prepared(case.dataset, root, tmp_path / "cache", conf_threshold=threshold)
    assert got[2]["cached"] and got[2]["skipped"][case.kind]["files"] == [str(root / case.names)]
    expected = load_prepared(case.dataset, dataset(tmp_path, case.dataset, case.same_as, "clean"), tmp_path / "cache_clean", conf_threshold=threshold)
    assert expected[2]["skipped"] == {}
    for split, ref in zip(got[:2], expected[:2]):
        for key in PREPARED:
            np.testing.assert_array_equal(getattr(split, key), getattr(ref, key), err_msg=key)
        assert split.clips == ref.clips and split.masks.keys() == ref.masks.keys()


def test_a_truncated_cache_is_reported_and_rebuilt(tmp_path, monkeypatch, capsys):
    root = dataset(tmp_path, "poselift", None)
    assert prepare(root, "poselift", tmp_path, monkeypatch, capsys)[0] == 0
    (cache,) = (tmp_path / "cache").glob("*.npz")
    good = load_prepared("poselift", root, tmp_path / "cache", conf_threshold=0.05)
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])
    code, out, _ = prepare(root, "poselift", tmp_path, monkeypatch, capsys)  # Hydra's log handler writes to stdout
    assert code == 0 and "prepared in" in out and f"{cache}: unreadable cache file (BadZipFile" in out
    again = load_prepared("poselift", root, tmp_path / "cache", conf_threshold=0.05)
    assert again[2]["cached"] and np.array_equal(again[0].kp, good[0].kp) and np.array_equal(again[1].frames, good[1].frames)


def test_a_mask_without_tracks_is_named(tmp_path, monkeypatch, capsys):
    extra = "HR-Avenue/testing/frame_level_masks/02/02_09.npy"
    root = dataset(tmp_path, "hr_avenue", write_bytes(extra, npy_bytes(np.zeros(50, np.uint8))))
    code, out, _ = prepare(root, "hr_avenue", tmp_path, monkeypatch, capsys)
    assert code == 0 and f"{root / extra}: clip 02_09 has a frame mask but no test tracks" in out


# ----------------------------------------------------------------------------- vadflow-train, vadflow-score
TRAIN_FAST = ["logger=none", "trainer.max_epochs=1", "+trainer.enable_progress_bar=false", "threads=1", "calibrate=false"]


def train(root: Path, name: str, tmp_path: Path, monkeypatch, capsys, *extra: str) -> tuple[int, str, str]:
    import vadflow.train

    argv = [f"dataset={name}", f"paths.data_root={root}", f"paths.cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={tmp_path / 'run'}", *TRAIN_FAST, *extra]
    return run(vadflow.train.main, argv, monkeypatch, capsys)


@pytest.mark.parametrize("case", [c for c in FATAL if c.id in ("json-50-keypoint-values", "csv-text-field", "mask-too-short", "csv-mask-missing")],
                         ids=lambda c: c.id)
def test_train_refuses_an_unusable_dataset_in_one_line(case, tmp_path, monkeypatch, capsys):
    root = dataset(tmp_path, case.dataset, case.defect)
    code, _, err = train(root, case.dataset, tmp_path, monkeypatch, capsys)
    assert_one_line(code, err, str(root / case.names), case.says)
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_train_records_what_it_skipped_in_metrics_json(tmp_path, monkeypatch, capsys):
    case = next(c for c in RECOVERABLE if c.id == "csv-empty-file")
    root = dataset(tmp_path, case.dataset, case.defect)
    code, _, err = train(root, case.dataset, tmp_path, monkeypatch, capsys)
    assert code == 0, err
    skipped = json.loads((tmp_path / "run" / "metrics.json").read_text())["prepare"]["skipped"]
    assert skipped[case.kind] == {"count": 1, "files": [str(root / case.names)]}


def test_train_and_eval_name_a_missing_data_root_or_checkpoint(tmp_path, monkeypatch, capsys):
    import vadflow.evaluate

    code, _, err = train(tmp_path / "nowhere", "poselift", tmp_path, monkeypatch, capsys)
    assert_one_line(code, err, str(tmp_path / "nowhere"), "does not exist (set paths.data_root=... or VADFLOW_DATA)")
    (tmp_path / "empty_root").mkdir()
    code, _, err = train(tmp_path / "empty_root", "poselift", tmp_path, monkeypatch, capsys)
    assert_one_line(code, err, str(tmp_path / "empty_root"), "none of ['PoseLift', 'poselift.tar.xz'] found under data root")
    code, _, err = run(vadflow.evaluate.main, [f"ckpt_path={tmp_path / 'no.ckpt'}", f"hydra.run.dir={tmp_path / 'eval'}"], monkeypatch, capsys)
    assert_one_line(code, err, str(tmp_path / "no.ckpt"), "checkpoint")


def score(argv: list[str], tmp_path: Path, monkeypatch, capsys) -> tuple[int, str, str]:
    from vadflow.score_tracks import main

    return run(lambda: main([*argv, "--out", str(tmp_path / "scores"), "--threads", "1"]), [], monkeypatch, capsys)


@pytest.mark.parametrize("case", [c for c in FATAL if c.id in ("json-truncated", "json-negative-frame", "csv-34-columns", "csv-fractional-frame")],
                         ids=lambda c: c.id)
def test_score_refuses_unusable_tracks_in_one_line(case, tmp_path, monkeypatch, capsys):
    root = dataset(tmp_path, case.dataset, case.defect)
    inputs = root / case.names if case.dataset == "poselift" else (root / case.names).parent  # a JSON file, a track folder
    code, _, err = score([str(inputs)], tmp_path, monkeypatch, capsys)
    assert_one_line(code, err, str(root / case.names), case.says)


def test_score_refuses_a_bad_mask_and_a_missing_checkpoint(tmp_path, monkeypatch, capsys):
    root = dataset(tmp_path, "poselift", write_bytes(JSON_MASK, npy_bytes(np.full(MASK_LEN, 3))))
    code, _, err = score([str(root / JSON_TEST), "--masks", str(root / "PoseLift/gt/test_frame_mask")], tmp_path, monkeypatch, capsys)
    assert_one_line(code, err, str(root / JSON_MASK), "only 0 (normal) and 1 (abnormal)")
    code, _, err = score([str(root / JSON_TEST), "--ckpt", str(tmp_path / "missing.ckpt")], tmp_path, monkeypatch, capsys)
    assert_one_line(code, err, str(tmp_path / "missing.ckpt"), "checkpoint not found")


def test_score_names_what_it_skipped_and_scores_the_rest(tmp_path, monkeypatch, capsys, caplog):
    case = next(c for c in RECOVERABLE if c.id == "csv-row-without-a-joint")
    root = dataset(tmp_path, case.dataset, case.defect)
    with caplog.at_level("WARNING"):
        code, out, err = score([str(root / "HR-Avenue/testing/trajectories")], tmp_path, monkeypatch, capsys)
    assert code == 0, err
    assert f"{case.kind}: 1 in 1 file(s): {root / case.names}" in caplog.text
    assert "2 clips" in out


def test_the_corpus_covers_both_formats():
    cases = FATAL + RECOVERABLE
    assert len(cases) >= 25 and {c.dataset for c in cases} == {"poselift", "hr_avenue"}
