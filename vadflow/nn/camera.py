"""A flow's coupling networks conditioned on the camera (``conditioner=camera``).

``CameraCondition`` gives every coupling network a learned embedding of the window's camera (the
clip's scene id, ``vadflow/data/cameras.py``), the same at every frame and joint. The flow is then a
density of the window *given its camera*, ``p(x | c)``, still exact: the condition is held fixed
inside the flow, so the log-determinant is the coupling's own. Where a dataset has several cameras
(HR-ShanghaiTech: 12), what a normal window looks like depends on the camera; with
``trajectory=frame`` the window is in its camera's coordinates, so place and size are modelled per
camera beyond the per-camera centre and scale.

On a ``camera_dropout`` share of training windows the camera is replaced by "unknown" (slot 0), so
that slot learns the camera-free density; a camera never seen in training is scored with it. It has
no loss term and no score of its own: the flow's NLL is the score.
"""
from __future__ import annotations

import torch
from torch import nn

from vadflow.data.cameras import CAMERA_SLOTS


def camera_slots(camera: torch.Tensor, seen: torch.Tensor, dropout: float = 0.0, training: bool = False) -> torch.Tensor:
    """The slot each window's camera is looked up in (B,): its own if it was seen in training,
    else 0 ("camera unknown"); in training, also 0 on a ``dropout`` share of windows, so slot 0
    learns the camera-free density that scores unseen cameras."""
    camera = camera.long()
    known = torch.where(seen[camera], camera, torch.zeros_like(camera))
    if not training:
        return known
    drop = torch.rand(camera.shape, device=camera.device) < dropout
    return torch.where(drop, torch.zeros_like(known), known)


def camera_rows(camera: torch.Tensor, min_windows: int = 1) -> list[tuple[int, torch.Tensor | slice]]:
    """(slot, rows) of the windows each camera reference is fitted on: slot 0 with every window,
    then each camera with at least ``min_windows`` windows (fewer: it keeps slot 0's reference)."""
    cams, counts = camera.unique(return_counts=True)
    own = [int(c) for c, n in zip(cams, counts) if int(c) != 0 and n >= min_windows]
    return [(0, slice(None))] + [(c, camera == c) for c in own]


class CameraCondition(nn.Module):
    reads_batch = True  # the condition comes from the batch's camera, not from x
    has_token_part = False  # no score of its own: the flow's NLL is the score
    default_weights: dict = {}

    def __init__(self, seg_len: int = 24, n_joints: int = 18, in_channels: int = 2, dim: int = 8, camera_dropout: float = 0.1,
                 n_cameras: int = CAMERA_SLOTS):
        super().__init__()
        self.cond_channels = int(dim)
        self.camera_dropout = float(camera_dropout)
        self.embedding = nn.Embedding(n_cameras, dim)
        self.register_buffer("seen", torch.zeros(n_cameras, dtype=torch.bool))

    def loss_terms(self) -> set[str]:
        return set()

    def condition(self, batch: dict) -> torch.Tensor:
        """(B, dim, 1, 1): the camera's embedding (unknown for an unseen camera; dropped to unknown
        on a share of training windows), broadcast over frames and joints by the coupling."""
        if "camera" not in batch:
            raise ValueError("conditioner=camera needs each window's camera: batches with camera "
                             "(PoseDataModule(trajectory_features=True))")
        camera = batch["camera"].long()
        if self.training:
            self.seen[camera] = True
        return self.embedding(camera_slots(camera, self.seen, self.camera_dropout, self.training))[..., None, None].to(batch["x"].dtype)

    def train_terms(self, batch: dict) -> tuple[torch.Tensor, dict, dict]:
        return self.condition(batch), {}, {}

    def score_terms(self, batch: dict) -> tuple[torch.Tensor, None]:
        return self.condition(batch), None
