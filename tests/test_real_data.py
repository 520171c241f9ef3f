"""Real datasets (marker ``data``): counts from datasets/README.md and the evaluation-set sizes of
each protocol. Prepares on first use (HR-ShanghaiTech: about a minute from the archive)."""
import numpy as np
import pytest

from vadflow import scoring
from vadflow.config import ROOT
from vadflow.data.datamodule import PoseDataModule

pytestmark = pytest.mark.data
CONF = {
    "hr_shanghaitech": dict(frame_size=(856, 480), protocols=("stgnf", "mpedrnn", "stgnf_full"), exclude_clips=("12_0152",),
                            full_masks="shanghaitech-gt/test_frame_mask"),
    "hr_avenue": dict(frame_size=(640, 360), protocols=("stgnf", "mpedrnn"), ignore_ranges={
        "01_01": [[75, 120], [390, 436], [864, 910], [931, 1000]], "01_02": [[272, 319], [723, 763]],
        "01_03": [[293, 340]], "01_06": [[561, 624], [814, 1006]], "01_16": [[728, 739]]}),
    "poselift": dict(frame_size=(1080, 1920), protocols=("stgnf",), conf_threshold=0.05),
}
# name: (test clips with masks, mask frames, abnormal frames, train clips)
COUNTS = {
    "hr_shanghaitech": (102, 39058, 16122, 323),
    "hr_avenue": (21, 15324, 3712, 16),
    "poselift": (47, 4846, 1534, 104),
}


@pytest.fixture(scope="module", params=sorted(COUNTS))
def dm(request):
    from tests.conftest import DATA_ROOT

    if DATA_ROOT is None:
        pytest.skip("real data not available: set VADFLOW_DATA to the datasets folder")
    module = PoseDataModule(name=request.param, data_root=str(DATA_ROOT), cache_dir=str(ROOT / ".cache"), **CONF[request.param])
    module.setup()
    return module


def test_counts_match_the_release(dm):
    n_masks, n_frames, n_abnormal, n_train_clips = COUNTS[dm.name]
    masks = dm.test.masks
    assert len(masks) == n_masks
    assert sum(len(m) for m in masks.values()) == n_frames
    assert sum(int(m.sum()) for m in masks.values()) == n_abnormal
    assert len(dm.train.clips) == n_train_clips
    assert np.isfinite(dm.train.kp).all() and np.isfinite(dm.test.kp).all()


def test_protocol_evaluation_sets(dm):
    rng = np.random.default_rng(0)
    protocols = scoring.protocols_of(CONF[dm.name])
    results = {r["protocol"]: r for r in scoring.evaluate_windows(dm.test_windows, np.arange(dm.test_set.n), rng.normal(size=dm.test_set.n), protocols, dm.masks_for, dm.name)}
    if dm.name == "hr_shanghaitech":
        assert (results["stgnf"]["n_clips"], results["stgnf"]["n_frames"]) == (101, 38697)
        assert (results["mpedrnn"]["n_clips"], results["mpedrnn"]["n_frames"]) == (102, 39058)
        assert (results["stgnf_full"]["n_clips"], results["stgnf_full"]["n_frames"]) == (107, 40791)
    if dm.name == "hr_avenue":
        assert results["mpedrnn"]["n_frames"] == 15324 - 616  # the keep-mask drops 616 frames
        assert results["stgnf"]["n_frames"] == 15324
    for res in results.values():
        assert 0.3 < res["auc"] < 0.7  # random scores: chance level, whatever the protocol


def test_hr_missing_joints_are_imputed_not_zero(dm):
    if not dm.name.startswith("hr_"):
        pytest.skip("HR trajectories only")
    vis = dm.train.vis
    assert 0.15 < 1 - vis.mean() < 0.45  # about 30 % of joints were (0, 0)
    assert not ((dm.train.kp == 0).all(-1) & ~dm.train.vis).any()  # none left at the origin


@pytest.mark.slow
def test_stgnf_official_schedule_on_hr_avenue(tmp_path):
    """The whole official schedule (8 epochs) on real data, end to end (about a minute)."""
    from tests.conftest import DATA_ROOT, compose
    from vadflow.train import run_training

    if DATA_ROOT is None:
        pytest.skip("real data not available: set VADFLOW_DATA to the datasets folder")
    record = run_training(compose("train", [
        "experiment=stgnf/hr_avenue", "seed=2", f"paths.data_root={DATA_ROOT}", f"paths.output_dir={tmp_path}",
        "logger=none", "+trainer.enable_progress_bar=false",
    ]))
    assert record["n_params"] == 616 and record["epochs"] == 8
    assert record["protocols"]["mpedrnn"]["n_frames"] == 14708
    assert record["protocols"]["mpedrnn"]["auc"] > 0.55  # measured 63.3 (seed 2); chance is 50
