"""Each kind of defective input, tried on subsets of the real PoseLift and HR-Avenue releases with
the real console commands; prints one row per kind: command, exit code, and what it printed.

    python tests/manual/real_bad_inputs.py [DATA_ROOT] > log

Needs the released archives (poselift.tar.xz, mpedrnn-hr.tar.xz) under DATA_ROOT (default
$VADFLOW_DATA). Not part of ``make test``: it unpacks real data and runs ~40 commands.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.test_bad_inputs import npy_bytes, replace_field  # noqa: E402  (the corpus's own edits)


def unpack_subsets(data_root: Path, into: Path) -> None:
    """PoseLift: 12 training and 6 test clips with their masks. HR-Avenue: 4 training and 5 test clips."""
    with tarfile.open(data_root / "poselift.tar.xz") as tar:
        names = tar.getnames()
        train = sorted(n for n in names if "/pose/train/" in n and n.endswith(".json"))[:12]
        test = sorted(n for n in names if "/pose/test/" in n and n.endswith(".json"))[:6]
        clips = [Path(n).name.replace("_alphapose_tracked_person.json", "") for n in test]
        masks = [n for n in names if "/gt/test_frame_mask/" in n and Path(n).stem in clips]
        tar.extractall(into, members=[tar.getmember(n) for n in train + test + masks], filter="data")
    wanted = ("HR-Avenue/training/trajectories/01/01_0" + c for c in "1234")
    tests = tuple(f"HR-Avenue/testing/trajectories/01/0{c}/" for c in "12345")
    test_masks = tuple(f"HR-Avenue/testing/frame_level_masks/01/01_0{c}.npy" for c in "12345")
    prefixes = tuple(wanted) + tests
    with tarfile.open(data_root / "mpedrnn-hr.tar.xz", mode="r|*") as tar:
        for member in tar:
            name = member.name.lstrip("./")
            if member.isfile() and (name.startswith(prefixes) or name in test_masks):
                tar.extract(member, into, filter="data")


def first_person_frame(path: Path) -> tuple[str, str]:
    doc = json.loads(path.read_text())
    person = next(p for p, frames in doc.items() if len(frames) > 30)
    return person, sorted(doc[person], key=int)[10]


def defects(root: Path) -> list[tuple[str, str, callable]]:
    """(kind, dataset, change the tree in place)."""
    pl = root / "PoseLift"
    train_json = sorted((pl / "pose/train").glob("*.json"))[0]
    test_json = sorted((pl / "pose/test").glob("*.json"))[0]
    test_clip = test_json.name.replace("_alphapose_tracked_person.json", "")
    mask = pl / "gt/test_frame_mask" / f"{test_clip}.npy"
    person, frame = first_person_frame(train_json)
    av = root / "HR-Avenue"
    train_csv = sorted((av / "training/trajectories/01/01_01").glob("*.csv"))[0]
    test_csv = sorted((av / "testing/trajectories/01/01").glob("*.csv"))[0]
    av_mask = av / "testing/frame_level_masks/01/01_01.npy"

    def edit_json(path, change):
        def apply():
            doc = json.loads(path.read_text())
            change(doc)
            path.write_text(json.dumps(doc))
        return apply

    def edit_csv(path, change):
        def apply():
            path.write_text("\n".join(change(path.read_text().splitlines())) + "\n")
        return apply

    def kp(value, index=0):
        return lambda d: d[person][frame]["keypoints"].__setitem__(index, value)

    return [
        ("NaN coordinate in a JSON file", "poselift", edit_json(train_json, kp(float("nan")))),
        ("infinite coordinate in a JSON file", "poselift", edit_json(train_json, kp(float("inf"), 1))),
        ("NaN cell in a CSV", "hr_avenue", edit_csv(train_csv, replace_field(3, 5, "nan"))),
        ("JSON file holding {}", "poselift", lambda: (pl / "pose/train/99_001_alphapose_tracked_person.json").write_text("{}")),
        ("track whose rows repeat frames (JSON: '7' and '007')", "poselift",
         edit_json(train_json, lambda d: d[person].update({"0" + frame: d[person][frame]}))),
        ("track whose rows repeat frames (CSV)", "hr_avenue", edit_csv(test_csv, lambda ls: ls[:5] + [ls[4]] + ls[5:])),
        ("empty CSV file", "hr_avenue", lambda: (train_csv.parent / "9999.csv").write_text("")),
        ("row without a detected joint (CSV)", "hr_avenue", edit_csv(test_csv, lambda ls: ls[:3] + [ls[3].split(",")[0] + ",0" * 34] + ls[4:])),
        ("test folder with no files at all", "poselift", lambda: [p.unlink() for p in (pl / "pose/test").iterdir()]),
        ("mask shorter than its clip's tracks", "poselift", lambda: mask.write_bytes(npy_bytes(np.zeros(5, np.uint8)))),
        ("mask missing for a clip with tracks", "poselift", lambda: mask.unlink()),
        ("mask not binary", "poselift", lambda: mask.write_bytes(npy_bytes(np.full(len(np.load(mask)), 2)))),
        ("mask unreadable", "poselift", lambda: mask.write_bytes(b"garbage")),
        ("mask longer than the Avenue video", "hr_avenue", lambda: av_mask.write_bytes(npy_bytes(np.zeros(1500, np.uint8)))),
        ("mask shorter than the Avenue video", "hr_avenue", lambda: av_mask.write_bytes(npy_bytes(np.zeros(1400, np.uint8)))),
        ("mask without tracks", "hr_avenue", lambda: (av / "testing/frame_level_masks/01/01_09.npy").write_bytes(npy_bytes(np.zeros(1175, np.uint8)))),
        ("negative frame number (CSV)", "hr_avenue", edit_csv(train_csv, replace_field(0, 0, "-1"))),
        ("frame number not an integer (CSV)", "hr_avenue", edit_csv(train_csv, replace_field(2, 0, "2.5"))),
        ("frame key not an integer (JSON)", "poselift", edit_json(train_json, lambda d: d[person].update({frame + ".5": d[person].pop(frame)}))),
        ("negative frame key (JSON)", "poselift", edit_json(train_json, lambda d: d[person].update({"-4": d[person].pop(frame)}))),
        ("wrong column count (CSV)", "hr_avenue", edit_csv(test_csv, lambda ls: [",".join(ls[0].split(",")[:-1])] + ls[1:])),
        ("wrong keypoint count (JSON)", "poselift", edit_json(train_json, lambda d: d[person][frame]["keypoints"].pop())),
        ("truncated JSON", "poselift", lambda: train_json.write_text(train_json.read_text()[:1000])),
    ]


def run(cmd: list[str], env: dict) -> tuple[int, str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [re.sub(r"^\[[^]]*\]\[[^]]*\]\[WARNING\] ", "warning: ", ln.strip()) for ln in (proc.stderr + proc.stdout).splitlines()
             if "error:" in ln or "skipped" in ln or "WARNING" in ln]
    return proc.returncode, " / ".join(dict.fromkeys(lines)) or (proc.stdout.strip().splitlines() or [""])[-1]


def main() -> None:
    data_root = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ["VADFLOW_DATA"])
    work = Path(tempfile.mkdtemp(prefix="vadflow_bad_inputs_"))
    clean = work / "clean"
    unpack_subsets(data_root, clean)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = lambda root: [f"paths.data_root={root}", f"paths.cache_dir={work / 'cache'}", f"hydra.run.dir={work / 'hydra'}", "threads=1"]  # noqa: E731
    print("| kind | command | exit | message |\n|---|---|---|---|")
    for i, (kind, name, _) in enumerate(defects(clean)):
        root = work / f"case{i:02d}"
        shutil.copytree(clean, root)
        {k: change for k, _, change in defects(root)}[kind]()
        code, message = run([str(BIN / "vadflow-prepare"), f"dataset={name}", *common(root)], env)
        print(f"| {kind} | vadflow-prepare dataset={name} | {code} | {message.replace(str(work), '$WORK').replace('|', '/')} |", flush=True)
        shutil.rmtree(root)
    commands = [
        ("tracks too short for a window (train)", ["vadflow-train", "dataset=hr_avenue", f"paths.data_root={clean}", f"paths.cache_dir={work / 'cache'}",
                                                   "trainer.max_epochs=0", "logger=none", "calibrate=false", "threads=1"]),
        ("data root that does not exist", ["vadflow-prepare", "dataset=poselift", f"paths.data_root={work / 'nowhere'}"]),
        ("unknown dataset", ["vadflow-prepare", "dataset=no_such_dataset"]),
        ("unknown method", ["vadflow-train", "method=no_such_method"]),
        ("unknown loss", ["vadflow-train", "loss=no_such_loss"]),
        ("config key typo", ["vadflow-train", "dataset.seg_lenn=16"]),
        ("config key typo with +", ["vadflow-train", "+dataset.seg_lenn=16"]),
        ("enumerated option misspelt", ["vadflow-train", "dataset.missing_joints=impue"]),
        ("vadflow-eval without ckpt_path", ["vadflow-eval"]),
        ("checkpoint that does not exist (eval)", ["vadflow-eval", f"ckpt_path={work / 'no.ckpt'}"]),
        ("checkpoint that does not exist (score)", ["vadflow-score", str(clean / "PoseLift/pose/test"), "--ckpt", str(work / "no.ckpt")]),
        ("track file with a bad row (score)", ["vadflow-score", str(work / "bad_csv"), "--out", str(work / "scores")]),
        ("mask not binary (score --masks)", ["vadflow-score", str(clean / "PoseLift/pose/test"), "--masks", str(work / "bad_masks"), "--out", str(work / "scores")]),
    ]
    shutil.copytree(clean / "HR-Avenue/testing/trajectories/01/01", work / "bad_csv")
    first = sorted((work / "bad_csv").glob("*.csv"))[0]
    first.write_text(first.read_text().replace(",", ";", 1))
    shutil.copytree(clean / "PoseLift/gt/test_frame_mask", work / "bad_masks")
    for m in (work / "bad_masks").glob("*.npy"):
        m.write_bytes(npy_bytes(np.full(len(np.load(m)), 3)))
    for kind, cmd in commands:
        extra = [f"hydra.run.dir={work / 'hydra'}"] if not cmd[0].endswith("score") else ["--threads", "1"]
        code, message = run([str(BIN / cmd[0]), *cmd[1:], *extra], env)
        shown = " ".join(cmd).replace(str(work), "$WORK").replace(str(clean), "$CLEAN")
        print(f"| {kind} | {shown} | {code} | {message.replace(str(work), '$WORK').replace('|', '/')} |", flush=True)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
