"""The one LightningModule: wraps any method (a plain nn.Module with ``loss`` and ``score``).

It owns optimisation and logging, and collects ``(window index, score)`` pairs at test time. The
AUC is computed once, after gathering every rank's pairs, by the datamodule's evaluator.
"""
from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch import nn


class AnomalyModule(L.LightningModule):
    def __init__(self, method: nn.Module, optim: dict | None = None):
        super().__init__()
        self.method = method
        self.optim = dict(optim or {})
        self.results: list[dict] = []
        self._scores: list[tuple[torch.Tensor, torch.Tensor]] = []

    def training_step(self, batch, batch_idx):
        out = self.method.loss(batch)
        bs = batch["x"].shape[0]
        for key, value in out.items():
            self.log(f"train/{key}", value.detach().float(), on_step=False, on_epoch=True, prog_bar=key == "loss", batch_size=bs, sync_dist=True)
        return out["loss"]

    def on_test_epoch_start(self) -> None:
        self._scores = []

    def test_step(self, batch, batch_idx):
        score = self.method.score(batch).float()
        self._scores.append((batch["index"], score))

    def on_test_epoch_end(self) -> None:
        index = torch.cat([i for i, _ in self._scores]) if self._scores else torch.zeros(0, dtype=torch.long)
        score = torch.cat([s for _, s in self._scores]) if self._scores else torch.zeros(0)
        if self.trainer.world_size > 1:  # every rank ends up with all pairs; duplicates removed by index
            index = self.all_gather(index).reshape(-1)
            score = self.all_gather(score).reshape(-1)
        index_np, score_np = index.cpu().numpy(), score.cpu().double().numpy()
        self.window_scores = (index_np, score_np)
        self.results = self.trainer.datamodule.evaluate(index_np, score_np)
        for res in self.results:
            for key in ("auc", "auc_raw", "auc_macro"):
                self.log(f"test/{res['protocol']}/{key}", float(res[key]), rank_zero_only=True, sync_dist=False)
        self._scores = []

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


def scores_to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()
