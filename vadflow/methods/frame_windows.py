"""Any method on its windows in camera coordinates (``trajectory=frame``): pose, place, size and
speed in one density, per camera.

Every method normally sees a window normalised by its own mean and spread (STG-NF's
``normalize_pose``), which removes where the person is, how large they are and how fast their box
moves. ``FrameWindows(pose)`` undoes that normalisation and hands the method the window as it was
detected, through one fixed affine map per camera c:

    u = s x + m                  the window as detected (coordinates divided by the frame size;
                                 x the normalised window, m its mean, s its std(y))
    x_c = (u - centre_c) / size_c                    reference=camera (default)
    x_c = (u - m) / size_c  = x s / size_c           reference=person: the window's own centre,
                                                     its camera's scale (size and speed, not place)

``centre_c`` is the median window mean and ``size_c`` the median window std(y) of camera c's
training windows (``fit_reference``, before training): where people are and how big they are in
that camera. Where a dataset has several cameras (HR-ShanghaiTech: 12), "normal" place and size
are each camera's own; a camera never seen in training takes the reference of all training
windows (slot 0).

Which density the score is. With ``reference=camera`` the map does not depend on the window, so
for a flow the method's NLL of ``x_c`` is the exact NLL of the window as detected *given its
camera*, up to that camera's constant: ``-log p(u | c) = -log p(x_c) + D log size_c`` (D = 2 T V).
The score leaves out the constant, so it is the NLL of the window in its camera's own units: a
camera whose people look small does not score every window as more likely. With
``reference=person`` it is the NLL of the centred window ``u - m`` in camera units: the flow's
density (on all of R^D) evaluated on the zero-mean subspace, as the normalised window's is; the
person's place is not modelled, their size and motion are. GMFC-VAE's two streams see the same
coordinates: its appearance stream's mixture prior and sample energy model where and how big, its
motion stream how fast (camera units per frame).

Which part drove an alarm (``score_parts``; ``vadflow-score`` writes and plots it per frame): one
density has no separate global term, so the split is a counterfactual. The pose part is the score
of the same window at its camera's usual place and size, the trajectory part what its actual place
and size add.

The horizontal flip of training augmentation acts on the normalised window, so in camera
coordinates it mirrors the person about their own centre and keeps their place in the scene.
Batches carry the normalisation's parameters and the camera (``norm``, ``camera``), as the
trajectory flow's do (``needs_trajectory``).
"""
from __future__ import annotations

import torch
from torch import nn

from vadflow.data.cameras import CAMERA_SLOTS
from vadflow.data.types import DataError
from vadflow.methods.pose_wrapper import PoseWrapper
from vadflow.nn.camera import camera_rows

REFERENCES = ("camera", "person")  # what a window's coordinates are measured from: its camera's usual place, or its own centre


class FrameWindows(PoseWrapper):
    needs_trajectory = True  # batches carry norm (the normalisation's parameters) and camera
    not_forwarded = ("components", "window_nll", "nll")  # batch-taking: would skip in_frame

    def __init__(self, pose: nn.Module, reference: str = "camera", n_cameras: int = CAMERA_SLOTS, seg_len: int | None = None):
        super().__init__()
        if reference not in REFERENCES:
            raise ValueError(f"trajectory.reference must be one of {', '.join(REFERENCES)}, got {reference!r}")
        self.reference = reference
        pose_len = int(getattr(pose, "seg_len", seg_len or 0))
        if seg_len is not None and pose_len != int(seg_len):
            raise ValueError(f"window lengths differ: pose model {pose_len}, config {seg_len}")
        self.pose = pose
        # per camera slot: median window mean (x, y) and median std(y); slot 0 = every training window
        self.register_buffer("centre", torch.full((n_cameras, 2), 0.5))
        self.register_buffer("size", torch.ones(n_cameras))
        self.register_buffer("seen", torch.zeros(n_cameras, dtype=torch.bool))

    @torch.no_grad()
    def fit_reference(self, loader) -> None:
        """Each camera's reference (median window mean and std(y)) from the training windows."""
        norms, cameras = [], []
        for batch in loader:
            self._check(batch)
            norms.append(batch["norm"].double())
            cameras.append(batch["camera"].long())
        if not norms:
            raise DataError("trajectory=frame: no training window to fit the camera references on (every training track is "
                            "shorter than a window)")
        norm, camera = torch.cat(norms), torch.cat(cameras)
        self.seen.zero_()
        for slot, rows in camera_rows(camera):
            self.centre[slot] = norm[rows, :2].quantile(0.5, dim=0).to(self.centre)
            self.size[slot] = norm[rows, 2].exp().quantile(0.5).to(self.size)
            self.seen[slot] = True

    def _check(self, batch: dict) -> None:
        if "norm" not in batch or "camera" not in batch:
            raise ValueError("trajectory=frame needs the windows' normalisation parameters and camera: batches with norm and "
                             "camera (PoseDataModule(trajectory_features=True))")

    def in_frame(self, batch: dict) -> dict:
        """The batch with ``x`` (B, 2, T, V) in its camera's coordinates (the module docstring's map)."""
        self._check(batch)
        if not bool(self.seen[0]):
            raise RuntimeError("trajectory=frame: fit_reference(training windows) must run before training or scoring")
        camera = batch["camera"].long()
        camera = torch.where(self.seen[camera], camera, torch.zeros_like(camera))
        x = batch["x"]
        norm = batch["norm"].to(x.dtype)
        scale = norm[:, 2].exp()[:, None, None, None]
        mean = norm[:, :2][:, :, None, None]
        size = self.size[camera].to(x.dtype)[:, None, None, None]
        if self.reference == "person":
            return {**batch, "x": x * scale / size}
        centre = self.centre[camera].to(x.dtype)[:, :, None, None]
        return {**batch, "x": (x * scale + mean - centre) / size}

    def loss(self, batch: dict) -> dict:
        return self.pose.loss(self.in_frame(batch))

    def score(self, batch: dict) -> torch.Tensor:
        return self.pose.score(self.in_frame(batch))

    def score_parts(self, batch: dict) -> dict[str, torch.Tensor]:
        """Which part drove the score, by a counterfactual: ``pose`` is the score of the same window
        moved to its camera's usual place and scaled to its usual size (in camera coordinates, the
        normalised window itself: its shape, its motion in body heights), ``trajectory`` what the
        window's actual place and size add to that (the score minus ``pose``; negative where they
        are more usual than the camera's median). The parts sum to the score. With
        ``reference=person`` the place is the person's own, so ``trajectory`` is the size's part."""
        framed = self.in_frame(batch)
        usual = self.pose.score({**framed, "x": batch["x"]})
        return {"pose": usual, "trajectory": self.pose.score(framed) - usual}

    def combine_parts(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        return parts["pose"] + parts["trajectory"]

    def score_map(self, batch: dict, *args, **kwargs) -> torch.Tensor:
        return self.pose.score_map(self.in_frame(batch), *args, **kwargs)

    @torch.no_grad()
    def fit_statistics(self, loader) -> None:
        if hasattr(self.pose, "fit_statistics"):
            self.pose.fit_statistics(InFrameLoader(loader, self.in_frame))


class InFrameLoader:
    """A loader whose batches pass through ``in_frame`` (the pose method's statistics after training)."""

    def __init__(self, loader, in_frame):
        self.loader, self.in_frame = loader, in_frame

    def __iter__(self):
        return (self.in_frame(batch) for batch in self.loader)

    def __len__(self) -> int:
        return len(self.loader)
