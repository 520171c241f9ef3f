"""W&B sweep specs: valid Hydra overrides, and they optimise a validation quantity, never test AUC."""
from pathlib import Path

import numpy as np
import pytest
import yaml

from vadflow.config import ROOT

from .conftest import compose

SPECS = sorted((ROOT / "experiments" / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("spec_path", SPECS, ids=lambda p: p.stem)
def test_sweep_spec_composes_and_targets_validation(spec_path: Path, tmp_path):
    spec = yaml.safe_load(spec_path.read_text())
    assert spec["metric"]["name"].startswith("val/") and "test" not in spec["metric"]["name"]
    fixed = [a for a in spec["command"] if "=" in a and not a.startswith("${")]
    assert any(a.startswith("dataset.val_fraction=") and float(a.split("=")[1]) > 0 for a in fixed)
    for key, param in spec["parameters"].items():
        values = param.get("values") or [param.get("min"), param.get("max")]
        for value in values:
            cfg = compose("train", fixed + [f"{key}={value}", f"paths.output_dir={tmp_path}"])
            node = cfg
            for part in key.split("."):
                node = node[part]
            assert node == value


def test_validation_split_holds_out_whole_normal_clips(tmp_path):
    from vadflow.data.datamodule import PoseDataModule

    dm = PoseDataModule(name="synthetic", data_root=str(tmp_path), cache_dir=str(tmp_path), val_fraction=0.25, synthetic={"seed": 0, "n_train_clips": 8, "n_test_clips": 2})
    dm.setup()
    clip_of_row = dm.train.track_clip[np.repeat(np.arange(dm.train.n_tracks), np.diff(dm.train.track_ptr))]
    train_clips = set(clip_of_row[dm.train_set.starts.numpy()])
    val_clips = set(clip_of_row[dm.val_set.starts.numpy()])
    assert len(val_clips) == 2 and not (train_clips & val_clips)
