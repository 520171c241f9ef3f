"""What the commands print: quiet by default (``verbose=true`` restores every library's chatter).

* Lightning's start-up lines ("GPU available", tips, "`Trainer.fit` stopped") and two deprecation
  notices of its own internals are silenced; warnings that concern the run stay.
* W&B runs silently; when a run was offline, one line says how to upload it (``wandb sync``).
* A progress bar (with totals) only on a terminal; in a redirected log, one line per epoch.
"""
from __future__ import annotations

import logging
import os
import sys
import time
import warnings

from lightning.pytorch.callbacks import Callback

LIGHTNING_CHATTER = ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda", "lightning.fabric.utilities.rank_zero")
LIBRARY_NOTICES = (
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",  # Lightning's own use of torch's pytree API
    r"Total length of `.*` across ranks is zero.*",  # no validation loader when nothing is held out
    r"The number of training batches .* is smaller than the logging interval.*",  # metrics are logged per epoch
)


def quiet(verbose: bool = False) -> None:
    if verbose:
        return
    for name in LIGHTNING_CHATTER:
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in LIBRARY_NOTICES:
        warnings.filterwarnings("ignore", message=pattern)
    os.environ.setdefault("WANDB_SILENT", "true")


def progress_bar(trainer_cfg) -> bool:
    """A progress bar on a terminal, unless the trainer config says otherwise; a redirected log
    gets ``EpochLines`` instead."""
    return bool(trainer_cfg.get("enable_progress_bar", sys.stdout.isatty()))


class EpochLines(Callback):
    """One line per epoch (for logs, where a progress bar would write thousands of lines)."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("train/", "val/")) and v.numel() == 1}
        shown = " | ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()))
        print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} | {shown} | {time.perf_counter() - self._t0:.1f} s", flush=True)


def wandb_sync_hint(run) -> None:
    """The one W&B line kept: where an offline run is and how to upload it."""
    if run is not None and getattr(run.settings, "mode", "") in ("offline", "dryrun"):
        print(f"W&B run saved offline: upload it with `wandb sync {run.settings.sync_dir}`")
