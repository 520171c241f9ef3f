"""The run's loggers (``conf/logger``): built from the config, W&B's summary and images at the end
of a run, and W&B closed after every job, also a failed one (multiruns start the next job clean)."""
from __future__ import annotations

import sys

import hydra
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from omegaconf import DictConfig

from vadflow.config import to_plain
from vadflow.console import wandb_sync_hint


class WandbLogger(LightningWandbLogger):
    """Lightning's W&B logger, without the ``anonymous`` argument it always passes: this W&B
    version warns on every run that the setting has no effect."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)


def build_loggers(cfg: DictConfig) -> list:
    if not cfg.get("logger"):
        return []
    return [hydra.utils.instantiate(c) for c in cfg.logger.values() if c is not None and "_target_" in c]


def log_to_wandb(loggers: list, cfg: DictConfig, record: dict, figures: dict) -> None:
    """Resolved config; final metrics as the run summary, keyed so a dashboard charts them by
    method, dataset and protocol; the run's figures (ROC, score timelines) as images."""
    from lightning.pytorch.loggers import WandbLogger

    for lg in loggers:
        if not isinstance(lg, WandbLogger):
            continue
        run = lg.experiment
        run.config.update({k: v for k, v in to_plain(cfg).items() if k != "hydra"}, allow_val_change=True)
        summary = {k: v for k, v in record.items() if isinstance(v, (int, float, str))}
        for protocol, res in record["protocols"].items():
            summary.update({f"{protocol}/{k}": v for k, v in res.items() if isinstance(v, (int, float))})
        run.summary.update(summary)
        for protocol, figs in figures.items():
            lg.log_image(key=f"{protocol}/roc", images=[str(f) for f in figs["roc"]])
            lg.log_image(key=f"{protocol}/score_over_time", images=[str(f) for f in figs["timelines"]])


def finish_wandb(failed: bool) -> None:
    """Close the W&B run of this job, also when it failed (multiruns start the next job clean)."""

    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        run = wandb.run
        wandb.finish(exit_code=1 if failed else 0)
        wandb_sync_hint(run)
