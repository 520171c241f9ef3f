"""Robustness experiments: keypoint noise, contaminated training sets, variant grids."""
import json

import numpy as np
import pytest
import yaml

from vadflow import reproduce
from vadflow.data.datamodule import PoseDataModule
from vadflow.data.prepare_arrays import prepare_split
from vadflow.data.robustness import abnormal_window_mask, add_keypoint_noise, contaminate
from vadflow.data.synthetic import generate_synthetic

from .conftest import compose


@pytest.fixture(scope="module")
def splits():
    train, test = generate_synthetic(seed=0, n_train_clips=4, n_test_clips=6, clip_len=300)
    return prepare_split(train), prepare_split(test)


def test_keypoint_noise_moves_detected_joints_only(splits):
    train, _ = splits
    noisy = add_keypoint_noise(train, 0.01, (856, 480), seed=0)
    moved = np.any(noisy.kp != train.kp, axis=-1)
    assert np.array_equal(moved, train.vis)  # every detected joint moves, no undetected one does
    assert np.std((noisy.kp - train.kp)[train.vis]) == pytest.approx(4.8, rel=0.05)  # 1 % of 480 px
    assert np.array_equal(add_keypoint_noise(train, 0.01, (856, 480), seed=0).kp, noisy.kp)
    assert add_keypoint_noise(train, 0.0, (856, 480), seed=0) is train


def test_contamination_fraction_is_exact_and_comes_from_held_out_clips(splits):
    from vadflow.data.windows import window_starts

    train, test = splits
    tr = window_starts(train.frames, train.track_ptr, 24, 6, 2)
    pool = window_starts(test.frames, test.track_ptr, 24, 6, 2)
    for fraction in (0.05, 0.2, 0.6):
        keep, contam, held = contaminate(tr, test, pool, fraction, 0.5, 24)
        assert len(contam) / (len(contam) + len(keep)) == pytest.approx(fraction, abs=0.01)
        assert abnormal_window_mask(test, contam, 24).all()
        assert set(test.clip_of_rows(contam).tolist()) <= {test.clips.index(c) for c in held}
    keep, contam, held0 = contaminate(tr, test, pool, 0.0, 0.5, 24)
    assert len(contam) == 0 and np.array_equal(keep, tr) and held0 == held  # same clips held out at 0 %


def test_held_out_clips_leave_the_evaluation(tmp_path):
    kw = dict(name="synthetic", data_root=str(tmp_path), cache_dir=str(tmp_path / "cache"),
              synthetic=dict(n_train_clips=4, n_test_clips=6, clip_len=300))
    plain = PoseDataModule(**kw)
    plain.setup()
    dm = PoseDataModule(**kw, contamination=0.1)
    dm.setup()
    assert dm.held_out_clips and not set(dm.held_out_clips) & set(dm.test.masks)
    assert set(dm.test.masks) | set(dm.held_out_clips) == set(plain.test.masks)
    assert not set(dm.held_out_clips) & set(dm.test_windows.clip.tolist())
    assert len(dm.train_set) > len(plain.train_set)  # abnormal windows added
    x = dm.train_set.__getitems__(list(range(len(dm.train_set) - 3, len(dm.train_set))))["x"]
    assert np.isfinite(x.numpy()).all()


def test_reproduce_runs_a_variant_grid(tmp_path):
    spec = {
        "name": "robust", "methods": ["stgnf"], "datasets": ["synthetic"], "seeds": [1],
        "variants": {"clean": ["dataset.keypoint_noise=0.0"], "noisy": ["dataset.keypoint_noise=0.02"]},
        "overrides": ["logger=none", "trainer.max_epochs=1", f"paths.cache_dir={tmp_path / 'cache'}",
                      "+dataset.synthetic.n_train_clips=3", "+dataset.synthetic.n_test_clips=3", "+dataset.synthetic.clip_len=150"],
        "jobs": 2, "results_dir": str(tmp_path / "runs"),
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert reproduce.main(["--spec", str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "robust.md").read_text()
    assert "| stgnf | synthetic | clean |" in md and "| stgnf | synthetic | noisy |" in md
    a = json.loads((tmp_path / "runs/stgnf/synthetic/clean/seed1/metrics.json").read_text())
    b = json.loads((tmp_path / "runs/stgnf/synthetic/noisy/seed1/metrics.json").read_text())
    assert a["auc"] != b["auc"]


@pytest.mark.parametrize("spec", ["robustness_noise", "robustness_contamination"])
def test_robustness_specs_compose(spec):
    from vadflow.config import ROOT

    s = yaml.safe_load((ROOT / "experiments" / f"{spec}.yaml").read_text())
    for method in s["methods"]:
        for extra in s["variants"].values():
            cfg = compose("train", reproduce.cell_overrides(method, s["datasets"][0], 1, s["overrides"] + extra) + ["paths.output_dir=."])
            assert cfg.method.name == method
