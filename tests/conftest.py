"""Shared fixtures. Real-data tests need a data root (VADFLOW_DATA, or ../shared/datasets next to
the repo) and skip with a visible reason without one."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from vadflow.config import CONF_DIR, ROOT

torch.set_num_threads(min(2, torch.get_num_threads()))


def _data_root() -> Path | None:
    for cand in (os.environ.get("VADFLOW_DATA"), ROOT.parent / "shared" / "datasets"):
        if cand and Path(cand).is_dir():
            return Path(cand)
    return None


DATA_ROOT = _data_root()
REFERENCE_DIR = (DATA_ROOT.parent / "reference" / "stgnf") if DATA_ROOT else None


@pytest.fixture(autouse=True)
def restore_logging():
    """Hydra points the root logger at this test's captured stdout; the next test must not write
    to it once it is closed (every test: one that runs Hydra without asking for this left a
    handler behind, and a later test's one-line stderr check read its logging errors)."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def data_root() -> Path:
    if DATA_ROOT is None:
        pytest.skip("real data not available: set VADFLOW_DATA to the datasets folder")
    return DATA_ROOT


@pytest.fixture
def reference_dir() -> Path:
    if REFERENCE_DIR is None or not (REFERENCE_DIR / "stgnf_reference_01_0014.npz").is_file():
        pytest.skip("STG-NF reference fixture not available (../shared/reference/stgnf)")
    return REFERENCE_DIR


def compose(config_name: str, overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides)


@pytest.fixture
def tiny_overrides(tmp_path) -> list[str]:
    """A small synthetic dataset and a throw-away run/cache dir: trains in seconds."""
    return [
        f"paths.output_dir={tmp_path / 'run'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "+dataset.synthetic.n_train_clips=4",
        "+dataset.synthetic.n_test_clips=4",
        "+dataset.synthetic.clip_len=200",
        "logger=none",
        "trainer.max_epochs=1",
        "+trainer.enable_progress_bar=false",
        "threads=1",
    ]


def saved_auc(run_dir: Path, cfg) -> float:
    """The headline AUC recomputed by sklearn from the run's saved frame scores and the dataset's
    labels: what a run reports must be what it saved (an independent check of the pipeline)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from vadflow.config import datamodule_kwargs, to_plain
    from vadflow.data.datamodule import PoseDataModule

    dm = PoseDataModule(**datamodule_kwargs(to_plain(cfg.dataset), to_plain(cfg.paths)))
    dm.setup("test")
    protocol = cfg.dataset.protocols[0]
    saved = np.load(Path(run_dir) / f"frame_scores_{protocol}.npz")
    masks = dm.masks_for(protocol)
    labels = np.concatenate([masks[str(c)] for c in saved["clips"]]).astype(bool)
    keep = saved["keep"].astype(bool)
    return float(roc_auc_score(labels[keep], saved["scores"][keep]))
