"""Hydra/OmegaConf glue shared by the entry points."""
from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = str(ROOT / "conf")
log = logging.getLogger("vadflow")

def wandb_offline() -> bool:
    """W&B runs offline (files in the run directory, ``wandb sync`` later) unless the user is
    logged in: WANDB_API_KEY set or an api.wandb.ai entry in ~/.netrc. WANDB_MODE wins if set."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "disabled", "dryrun"):
        return True
    if mode == "online" or os.environ.get("WANDB_API_KEY"):
        return False
    netrc = Path.home() / ".netrc"
    return not (netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore"))


def wandb_group():
    """Runs of one Hydra multirun share a W&B group (the sweep folder's name); single runs: none."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        return f"sweep-{Path(hc.sweep.dir).name}" if hc.mode == RunMode.MULTIRUN else None
    except (ValueError, ImportError):  # not inside a Hydra app (tests, API use)
        return None


def equals(a, b) -> bool:
    """``${vadflow_eq:${dataset.missing_joints},impute}``: one switch drives several options."""
    return str(a) == str(b)


for _name, _fn in (("vadflow_root", lambda: str(ROOT)), ("wandb_offline", wandb_offline), ("wandb_group", wandb_group), ("vadflow_eq", equals)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn)


def set_threads(threads: int | None) -> int:
    """Use the cores this process may run on (2 on the CI machine) unless told otherwise."""
    n = int(threads) if threads else len(os.sched_getaffinity(0))
    torch.set_num_threads(max(1, n))
    return n


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True, timeout=5)
        commit = out.stdout.strip() or "unknown"
        return commit + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def to_plain(cfg) -> dict:
    """A resolved plain dict (checkpoints must load with torch.load(weights_only=True))."""
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


def default_path(key: str) -> str:
    """``paths.<key>`` (data_root, cache_dir, ...) as ``conf/paths/default.yaml`` resolves it, for
    the commands that are not Hydra apps (``vadflow-score``, ``vadflow.table``)."""
    paths = OmegaConf.load(Path(CONF_DIR) / "paths" / "default.yaml")
    return str(OmegaConf.select(OmegaConf.create({"paths": paths}), f"paths.{key}", throw_on_resolution_failure=True))


def datamodule_kwargs(dataset_cfg: dict, paths_cfg: dict, batch_size: int = 256) -> dict:
    kw = dict(dataset_cfg)
    kw.update(data_root=paths_cfg["data_root"], cache_dir=paths_cfg["cache_dir"], batch_size=batch_size)
    return kw
