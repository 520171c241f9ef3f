"""Nothing-learned baselines: one global cue each, scored through the same windows, protocols and
tables as every trained method. They are the bar a model of position, size and speed must clear.

* ``BodyHeight``: the person's height in the frame (box of the detected joints, median over the
  window's frames, as a fraction of the frame height): large = close to the camera.
* ``CentreSpeed``: how fast the centre of the detected joints moves, in the normalised window's
  units (its std(y), i.e. body sizes) per frame, averaged over the window.

Neither has a parameter; ``epochs: 0`` in their configs, so vadflow-train only scores.
"""
from __future__ import annotations

import torch
from torch import nn


class NothingLearned(nn.Module):
    """A score with no parameter: constructed like a method (``seg_len``, ``objective``), never trained."""

    def __init__(self, seg_len: int = 24, objective: nn.Module | None = None):
        super().__init__()
        self.seg_len = int(seg_len)
        self.objective = objective  # kept like a method's, so a loss config is checked against loss_terms()

    def loss_terms(self) -> set[str]:
        return set()  # nothing to weight: any loss weight is a mistake

    def loss(self, batch: dict) -> dict:
        raise RuntimeError(f"{type(self).__name__} is not trained (epochs: 0)")


class BodyHeight(NothingLearned):
    needs_trajectory = True  # scores from the batch's box trajectory

    def score(self, batch: dict) -> torch.Tensor:
        if "traj" not in batch:
            raise ValueError("BodyHeight needs the batch's box trajectory (PoseDataModule(trajectory_features=True))")
        return batch["traj"][..., 3].float().exp().median(dim=1).values


class CentreSpeed(NothingLearned):
    def score(self, batch: dict) -> torch.Tensor:
        x, vis = batch["x"].float(), batch["vis"].float()  # (B, 2, T, V), (B, T, V)
        n = vis.sum(-1)  # detected joints per frame
        centre = (x * vis[:, None]).sum(-1) / n.clamp_min(1)[:, None]  # (B, 2, T)
        step = (centre[..., 1:] - centre[..., :-1]).norm(dim=1)  # (B, T - 1)
        both = ((n[:, 1:] > 0) & (n[:, :-1] > 0)).float()
        return (step * both).sum(1) / both.sum(1).clamp_min(1)
