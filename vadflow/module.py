"""The one LightningModule: wraps any method (a plain nn.Module with ``loss`` and ``score``).

It owns optimisation and logging. At test time it scores every test window, gathers every rank's
``(window index, score)`` pairs, drops the duplicates distributed samplers add, and writes them
(``window_scores.npz``); the entry point then evaluates them (``vadflow.runs``). It computes no AUC.
"""
from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn
from torchmetrics.aggregation import CatMetric

from vadflow import scoring

TRAIN_SCORE_WINDOWS = 20_000  # training windows scored at test time (mocodad's offset; kept in window_scores.npz)


class AnomalyModule(L.LightningModule):
    """``results_dir``: where rank 0 writes the test windows' scores (``window_scores.npz``).
    Spawned processes (``ddp_spawn``) do not share memory with the launcher, so the launcher
    reads them back from there. ``score_training_windows``: also score training windows (a
    protocol fixes a constant from them: mocodad's offset)."""

    def __init__(self, method: nn.Module, optim: dict | None = None, results_dir: str | None = None, score_training_windows: bool = False):
        super().__init__()
        self.method = method
        self.optim = dict(optim or {})
        self.results_dir = results_dir
        self.score_training_windows = bool(score_training_windows)
        # (window index, score) pairs of every rank, gathered by torchmetrics (uneven shards included);
        # float64 holds both exactly (indices below 2**53, fp32 scores)
        self.test_pairs = CatMetric(nan_strategy="disable").set_dtype(torch.float64)
        self.n_nonfinite_loss = 0  # training steps whose loss was NaN/inf (bf16 checks read it)

    def setup(self, stage: str) -> None:
        # several processes on one machine share its cores instead of each taking all of them
        if self.trainer.world_size > 1 and self.device.type == "cpu":
            torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // self.trainer.world_size))

    def on_train_epoch_start(self) -> None:
        self.epoch_sums: dict[str, torch.Tensor] = {}  # batch-size-weighted sums of each logged term
        self.epoch_windows = 0
        self.epoch_logged = False

    def training_step(self, batch, batch_idx):
        out = self.method.loss(batch)
        self.n_nonfinite_loss += int(not torch.isfinite(out["loss"].detach()).all())
        bs = batch["x"].shape[0]
        # Lightning's self.log costs ~0.4 ms a call on CPU, a sizeable share of a small model's step: the
        # terms are summed here and logged once, on the epoch's last batch (before any callback reads them)
        for key, value in out.items():
            weighted = value.detach().float() * bs
            self.epoch_sums[key] = weighted if key not in self.epoch_sums else self.epoch_sums[key] + weighted
        self.epoch_windows += bs
        if batch_idx + 1 >= self.trainer.num_training_batches:
            self.log_epoch_terms()
        return out["loss"]

    def on_train_epoch_end(self) -> None:
        self.log_epoch_terms()  # an epoch cut short (max_steps) logs what it trained on

    def log_epoch_terms(self) -> None:
        """Each term's batch-size-weighted mean over the epoch's windows, synchronised over ranks."""
        if self.epoch_logged or not self.epoch_windows:
            return
        for key, total in self.epoch_sums.items():
            self.log(f"train/{key}", total / self.epoch_windows, on_step=False, on_epoch=True, prog_bar=key == "loss",
                     batch_size=self.epoch_windows, sync_dist=True)
        self.epoch_logged = True

    def validation_step(self, batch, batch_idx):
        """Held-out normal training clips: the quantity sweeps optimise (lower is better)."""
        with torch.autocast(device_type=self.device.type, enabled=False):
            out = self.method.loss(batch)
        self.log("val/loss", out["loss"].float(), on_epoch=True, prog_bar=True, batch_size=batch["x"].shape[0], sync_dist=True)

    def on_test_epoch_start(self) -> None:
        self.test_pairs.reset()

    def test_step(self, batch, batch_idx):
        # scores in fp32 even under bf16 autocast: bf16 keeps ~3 digits, and ties would move the AUC
        with torch.autocast(device_type=self.device.type, enabled=False):
            score = self.method.score(batch).float()
        self.test_pairs.update(torch.stack([batch["index"].to(torch.float64), score.to(torch.float64)], 1))

    def on_test_epoch_end(self) -> None:
        pairs = self.test_pairs.compute()  # every rank's pairs (synchronised across processes)
        pairs = pairs.cpu().numpy() if isinstance(pairs, torch.Tensor) else np.zeros((0, 2))
        self.test_pairs.reset()
        # padded duplicates from the distributed sampler go here, once, before anything uses the scores
        index_np, score_np = scoring.dedup_window_scores(pairs[:, 0].astype(np.int64), pairs[:, 1])
        dm = self.trainer.datamodule
        train_score = self.train_window_scores(dm) if self.score_training_windows else np.zeros(0)
        if self.trainer.is_global_zero and self.results_dir:
            Path(self.results_dir).mkdir(parents=True, exist_ok=True)
            np.savez(Path(self.results_dir) / "window_scores.npz", index=index_np, score=score_np, train_score=train_score)

    @torch.no_grad()
    def train_window_scores(self, dm) -> np.ndarray:
        """Scores of up to ``TRAIN_SCORE_WINDOWS`` training windows (evenly spaced, no flips, fixed
        order, so every rank computes the same): protocols that fix a constant from normal data
        (mocodad's score offset) read them, and the run keeps them for re-scoring."""
        if dm.train_set is None:
            dm.setup("fit")
        scores = []
        for batch in dm.statistics_dataloader(TRAIN_SCORE_WINDOWS):
            batch = {k: v.to(self.device) for k, v in batch.items()}
            with torch.autocast(device_type=self.device.type, enabled=False):
                scores.append(self.method.score(batch).double().cpu())
        return torch.cat(scores).numpy() if scores else np.zeros(0)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """A run saved while the trajectory flow had one tensor per layer resumes: its weights
        load through ``Flow``'s own hook, its optimiser state is rewritten here."""
        from vadflow.data.types import DataError
        from vadflow.nn.flow import pack_optimizer_state

        for state in checkpoint.get("optimizer_states", []):
            try:
                pack_optimizer_state(self, list(checkpoint.get("state_dict", {})), state)
            except ValueError as exc:
                where = getattr(self._trainer, "ckpt_path", None) or "the checkpoint being resumed"
                raise DataError(f"{where}: {exc}") from None

    def configure_optimizers(self):
        name = self.optim.get("name", "adamax").lower()
        lr = float(self.optim.get("lr", 5e-4))
        wd = float(self.optim.get("weight_decay", 0.0))
        params = [p for p in self.parameters() if p.requires_grad]
        opt = {"adamax": torch.optim.Adamax, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name](params, lr=lr, weight_decay=wd, foreach=True)
        decay = float(self.optim.get("lr_decay", 0.99))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: decay**epoch)  # lr * decay^epoch
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


def count_trainable(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))
