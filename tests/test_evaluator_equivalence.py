"""One evaluator: ``vadflow-score --masks`` on HR-Avenue's released test tracks gives the per-frame
scores and AUCs of ``vadflow-eval`` on the same checkpoint, under every protocol of the dataset
(marker ``data``: needs the HR-Avenue archive; unpacks its test folder, ~10 s)."""
import json
import subprocess

import numpy as np
import pytest

from vadflow.config import ROOT
from vadflow.score_tracks import main as score_main

from .conftest import DATA_ROOT, compose

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def avenue(tmp_path_factory):
    if DATA_ROOT is None:
        pytest.skip("real data not available: set VADFLOW_DATA to the datasets folder")
    out = tmp_path_factory.mktemp("avenue")
    if (DATA_ROOT / "HR-Avenue").is_dir():
        return DATA_ROOT / "HR-Avenue" / "testing"
    subprocess.run(["tar", "-xJf", str(DATA_ROOT / "mpedrnn-hr.tar.xz"), "-C", str(out), "--wildcards", "HR-Avenue/testing/*"], check=True)
    return out / "HR-Avenue" / "testing"


@pytest.fixture(scope="module")
def avenue_ckpt(tmp_path_factory):
    """STG-NF trained for a few steps on HR-Avenue: equivalence needs a model, not a good one."""
    from vadflow.train import run_training

    tmp = tmp_path_factory.mktemp("train")
    cfg = compose("train", ["experiment=stgnf/hr_avenue", f"paths.data_root={DATA_ROOT}", f"paths.cache_dir={ROOT / '.cache'}",
                            f"paths.output_dir={tmp}", "logger=none", "trainer.max_epochs=1", "+trainer.limit_train_batches=20",
                            "+trainer.enable_progress_bar=false", "threads=1", "calibrate=false", "figures=false"])
    run_training(cfg)
    return tmp / "model.ckpt"


def test_vadflow_score_with_masks_is_vadflow_eval(avenue, avenue_ckpt, tmp_path, restore_logging):
    from vadflow.evaluate import run_evaluation

    eval_dir, score_dir = tmp_path / "eval", tmp_path / "score"
    run_evaluation(compose("eval", [f"ckpt_path={avenue_ckpt}", f"paths.data_root={DATA_ROOT}", f"paths.cache_dir={ROOT / '.cache'}",
                                    f"paths.output_dir={eval_dir}", "threads=1", "figures=false"]))
    assert score_main(["--ckpt", str(avenue_ckpt), str(avenue / "trajectories"), "--masks", str(avenue / "frame_level_masks" / "01"),
                       "--out", str(score_dir), "--threshold", "0", "--threads", "1"]) == 0
    evaluated = json.loads((eval_dir / "metrics.json").read_text())["protocols"]
    scored = json.loads((score_dir / "metrics.json").read_text())["protocols"]
    assert set(scored) == set(evaluated) == {"mocodad", "mpedrnn", "stgnf", "mpedrnn_pooled"}
    for protocol, expect in evaluated.items():
        a, b = np.load(eval_dir / f"frame_scores_{protocol}.npz"), np.load(score_dir / f"frame_scores_{protocol}.npz")
        np.testing.assert_array_equal(a["clips"], b["clips"])
        np.testing.assert_array_equal(a["keep"], b["keep"])
        np.testing.assert_allclose(b["scores"], a["scores"], rtol=1e-9, atol=1e-12, equal_nan=True)
        for key in ("auc", "auc_pr", "eer", "auc_raw", "n_frames", "n_clips"):
            assert scored[protocol][key] == pytest.approx(expect[key], abs=1e-12), (protocol, key)
    windows_a, windows_b = np.load(eval_dir / "window_scores.npz"), np.load(score_dir / "window_scores.npz")
    assert len(windows_a["score"]) == len(windows_b["score"]) > 10_000
