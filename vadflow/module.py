"""The one LightningModule: wraps any method (a plain nn.Module with ``loss`` and ``score``).

It owns optimisation and logging, and collects ``(window index, score)`` pairs at test time. The
AUC is computed once, after gathering every rank's pairs, by the datamodule's evaluator.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn

from vadflow import scoring

EVAL_FILE = "eval_results.json"
TRAIN_SCORE_WINDOWS = 20_000  # training windows scored at test time (mocodad's offset; kept in window_scores.npz)


class AnomalyModule(L.LightningModule):
    """``results_dir``: where rank 0 writes the evaluation (window scores, frame scores,
    ``eval_results.json``). Spawned processes (``ddp_spawn``) do not share memory with the
    launcher, so the launcher reads the evaluation back from there."""

    def __init__(self, method: nn.Module, optim: dict | None = None, results_dir: str | None = None):
        super().__init__()
        self.method = method
        self.optim = dict(optim or {})
        self.results_dir = results_dir
        self.results: list[dict] = []
        self._scores: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.n_nonfinite_loss = 0  # training steps whose loss was NaN/inf (bf16 checks read it)

    def setup(self, stage: str) -> None:
        # several processes on one machine share its cores instead of each taking all of them
        if self.trainer.world_size > 1 and self.device.type == "cpu":
            torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // self.trainer.world_size))

    def training_step(self, batch, batch_idx):
        out = self.method.loss(batch)
        self.n_nonfinite_loss += int(not torch.isfinite(out["loss"].detach()).all())
        bs = batch["x"].shape[0]
        for key, value in out.items():
            self.log(f"train/{key}", value.detach().float(), on_step=False, on_epoch=True, prog_bar=key == "loss", batch_size=bs, sync_dist=True)
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        """Held-out normal training clips: the quantity sweeps optimise (lower is better)."""
        with torch.autocast(device_type=self.device.type, enabled=False):
            out = self.method.loss(batch)
        self.log("val/loss", out["loss"].float(), on_epoch=True, prog_bar=True, batch_size=batch["x"].shape[0], sync_dist=True)

    def on_test_epoch_start(self) -> None:
        self._scores = []

    def test_step(self, batch, batch_idx):
        # scores in fp32 even under bf16 autocast: bf16 keeps ~3 digits, and ties would move the AUC
        with torch.autocast(device_type=self.device.type, enabled=False):
            score = self.method.score(batch).float()
        self._scores.append((batch["index"], score))

    def on_test_epoch_end(self) -> None:
        index = torch.cat([i for i, _ in self._scores]) if self._scores else torch.zeros(0, dtype=torch.long)
        score = torch.cat([s for _, s in self._scores]) if self._scores else torch.zeros(0)
        if self.trainer.world_size > 1:  # every rank ends up with all pairs; duplicates removed by index
            index = self.all_gather(index).reshape(-1)
            score = self.all_gather(score).reshape(-1)
        # padded duplicates from the distributed sampler go here, once, before anything uses the scores
        index_np, score_np = scoring.dedup_window_scores(index.cpu().numpy(), score.cpu().double().numpy())
        dm = self.trainer.datamodule
        train_score = self.train_window_scores(dm) if dm.needs_train_scores else None
        self.results = dm.evaluate(index_np, score_np, train_score)
        if self.trainer.is_global_zero and self.results_dir:
            save_evaluation(Path(self.results_dir), dm, index_np, score_np, self.results, train_score)
        for res in self.results:
            for key in ("auc", "auc_raw", "auc_macro"):
                self.log(f"test/{res['protocol']}/{key}", float(res[key]), rank_zero_only=True, sync_dist=False)
        self._scores = []

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


def save_evaluation(out_dir: Path, dm, index: np.ndarray, score: np.ndarray, results: list[dict], train_score: np.ndarray | None = None) -> None:
    """De-duplicated window scores (with the frames each covers, and the training windows'
    scores: everything a protocol needs to re-score the run), per-protocol frame scores, and the
    scalar results."""
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / "window_scores.npz", index=index, score=score, clip=dm.test_clip[index], person=dm.test_person[index],
             frame=dm.test_frame[index], first=dm.test_first[index], span=dm.test_span[index],
             train_score=np.zeros(0) if train_score is None else train_score)
    for res in results:
        np.savez(out_dir / f"frame_scores_{res['protocol']}.npz", clips=np.array(res["clips"]), scores=res["frame_scores"], keep=res["keep"])
    scalars = [{k: v for k, v in r.items() if isinstance(v, (int, float, str))} for r in results]
    info = {"results": scalars, "n_windows": int(dm.test_set.n), "n_train_windows": len(dm.train_set), "prepare": dm.prepare_info}
    (out_dir / EVAL_FILE).write_text(json.dumps(info, indent=2))


def load_evaluation(out_dir: Path) -> dict:
    return json.loads((Path(out_dir) / EVAL_FILE).read_text())
