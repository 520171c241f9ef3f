"""The exact port against the official STG-NF code's outputs on real clip 01_0014 (FIXTURE.md)."""
import json

import numpy as np
import pytest
import torch

from vadflow.checkpoint import load_method, read_checkpoint
from vadflow.data.datamodule import PoseDataModule
from vadflow.scoring import evaluate_protocol, make_protocol

from .conftest import compose

pytestmark = pytest.mark.data


@pytest.fixture
def fixture(reference_dir):
    return dict(np.load(reference_dir / "stgnf_reference_01_0014.npz"))


@pytest.fixture
def sample_dm(data_root, tmp_path):
    dm = PoseDataModule(name="shanghaitech_sample", data_root=str(data_root), cache_dir=str(tmp_path), missing_joints="zeros", official_quirks=True, protocols=["stgnf"])
    dm.setup()
    return dm


def test_windows_and_model_input(fixture, sample_dm):
    dm = sample_dm
    starts = dm.test_set.starts
    assert len(starts) == len(fixture["start_frame"]) == 779
    np.testing.assert_array_equal(dm.test_windows.frame, fixture["score_frame"])
    np.testing.assert_array_equal(dm.test_windows.person, fixture["person_id"])
    x, _ = dm.test_set.builder(starts, dtype=torch.float64)
    np.testing.assert_allclose(x.float().numpy(), fixture["model_input"], rtol=0, atol=1e-4)


def test_window_scores_and_frame_scores(fixture, sample_dm, reference_dir):
    ckpt = read_checkpoint(reference_dir / "ShanghaiTech_85_9.tar")
    model, _ = load_method(ckpt)
    with torch.no_grad():
        nll = model.nll(torch.from_numpy(fixture["model_input"])).double().numpy()
    np.testing.assert_allclose(nll, fixture["nll_bpd"], rtol=0, atol=1e-4)
    res = evaluate_protocol(make_protocol("stgnf"), {"01_0014": fixture["gt_mask"]}, np.array(["01_0014"] * 779), fixture["score_frame"], nll)
    # our anomaly score is -normality: frame scores mirror the official ones
    np.testing.assert_allclose(-res["frame_scores"], fixture["frame_score_smoothed"], rtol=0, atol=1e-4)
    assert res["auc"] == pytest.approx(float(fixture["auc_normal_positive"]), abs=1e-6)


def test_vadflow_eval_reproduces_the_official_per_frame_result(fixture, data_root, reference_dir, tmp_path):
    from vadflow.evaluate import run_evaluation

    cfg = compose("eval", [
        f"ckpt_path={reference_dir / 'ShanghaiTech_85_9.tar'}", "dataset=shanghaitech_sample",
        f"paths.data_root={data_root}", f"paths.output_dir={tmp_path}", f"paths.cache_dir={tmp_path / 'c'}",
        "+trainer.enable_progress_bar=false", "threads=1",
    ])
    record = run_evaluation(cfg)
    saved = np.load(tmp_path / "frame_scores_stgnf.npz")
    np.testing.assert_allclose(-saved["scores"], fixture["frame_score_smoothed"], rtol=0, atol=1e-4)
    assert record["auc"] == pytest.approx(float(fixture["auc_normal_positive"]), abs=1e-6)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["protocol"] == "stgnf" and metrics["n_windows"] == 779 and metrics["n_params"] == 616
