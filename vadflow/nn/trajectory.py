"""The trajectory (global) component: a flow over what the window normalisation removes.

Every pose model here sees a window normalised by its own mean and spread, so it cannot tell
where the person is, how large they are in the frame (how close to the camera) or how fast their
box moves. :class:`TrajectoryFlow` models exactly that, per camera:

    g = [mean x, mean y, log std(y)          the window normalisation's parameters (3)
         mean over frames of log(w / h)       the box's aspect (1)
         d cx_t, d cy_t, d log h_t, d log w_t frame-to-frame motion of the box centre and size,
                                              t = 2..T (4 (T - 1))]

all relative to the frame (coordinates divided by its width and height), with the box of the
detected joints (``vadflow.data.windows.trajectory_features``). ``g`` is a linear map of the
per-frame box trajectory with the window's own statistics: position and size enter once, as
the normalisation's parameters, motion as differences (``features=frames``).

``features=summary`` keeps the place part and replaces the 4 (T - 1) per-frame differences by six
numbers of motion, each in body heights so that one speed means the same near and far from the
camera (``trajectory_summary``): the centre's mean velocity (x, y), the log of its mean speed, the
log of its frame-to-frame jitter about that velocity, the rate of change of log height (walking
towards or away from the camera) and the log of its jitter. Ten numbers in all: box jitter of the
pose detector is most of the per-frame differences, and a density over 4 (T - 1) of them spends
its capacity there.

The density is a conditional flow (ActNorm -> channel reversal -> affine coupling, the same
:class:`vadflow.nn.flow.FlowStep` as every pose flow) whose coupling networks are MLPs that also
see a learned embedding of the camera: where people walk, how large they are and how fast they
move depend on the camera. The camera is replaced by "unknown" (slot 0) on a fraction
``camera_dropout`` of training windows, so slot 0 learns the camera-free density, which scores
windows of cameras never seen in training. :meth:`TrajectoryFlow.nll` is the exact NLL of ``g``
in nats.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from vadflow.data.cameras import CAMERA_SLOTS
from vadflow.data.windows import N_SUMMARY, trajectory_summary
from vadflow.nn.camera import camera_slots
from vadflow.nn.flow import Flow, FlowStep, gaussian_log_prob

N_TRAJECTORY = 4  # per-frame box features: centre x, centre y, log width, log height
FEATURES = ("frames", "summary")


def trajectory_vector(traj: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
    """(B, T, 4) box trajectory + (B, 3) normalisation parameters -> (B, 4 T) vector ``g``."""
    aspect = (traj[..., 2] - traj[..., 3]).mean(1, keepdim=True)
    motion = traj[:, 1:] - traj[:, :-1]  # (B, T - 1, 4)
    return torch.cat([norm, aspect, motion.flatten(1)], 1)


class CameraMLP(nn.Module):
    """Coupling network ``net(z1, cond) -> (B, 2 C2, 1, 1)``: an MLP on the kept half and the
    camera embedding. The last layer starts at zero, so every coupling starts as the identity."""

    def __init__(self, in_dim: int, out_dim: int, cond_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim + cond_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, out_dim))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, z1: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = z1.flatten(1) if cond is None else torch.cat([z1.flatten(1), cond], 1)
        return self.net(h)[..., None, None]


class TrajectoryFlow(nn.Module):
    """Exact density of the trajectory vector ``g`` given the camera.

    ``K`` flow steps over the channels of ``g`` (``4 T`` for ``features=frames``, 10 for
    ``summary``; as a (B, C, 1, 1) tensor), prior N(0, I). Training marks the cameras it saw (buffer ``seen``); at scoring time an unseen
    camera is scored as "unknown"."""

    def __init__(self, seg_len: int = 24, K: int = 4, hidden: int = 64, camera_dim: int = 8, camera_dropout: float = 0.1,
                 n_cameras: int = CAMERA_SLOTS, features: str = "frames", packed: bool = True):
        super().__init__()
        if features not in FEATURES:
            raise ValueError(f"trajectory features must be one of {FEATURES}, got {features!r}")
        self.features = features
        self.seg_len = int(seg_len)
        self.dim = N_TRAJECTORY * self.seg_len if features == "frames" else N_SUMMARY
        self.camera_dropout = float(camera_dropout)
        self.camera = nn.Embedding(n_cameras, camera_dim)
        self.register_buffer("seen", torch.zeros(n_cameras, dtype=torch.bool))
        half = self.dim // 2
        # packed: the flow's weights are one tensor (Flow._pack); packed=False keeps one per layer, the same values
        self.flow = Flow([FlowStep(self.dim, CameraMLP(half, 2 * (self.dim - half), camera_dim, hidden)) for _ in range(K)], packed=packed)

    def condition(self, camera: torch.Tensor) -> torch.Tensor:
        camera = camera.long()
        if self.training:
            self.seen[camera] = True
        return self.camera(camera_slots(camera, self.seen, self.camera_dropout, self.training))

    def nll(self, batch: dict) -> torch.Tensor:
        """(B,) NLL of the window's trajectory vector in nats (fp32)."""
        if "traj" not in batch:
            raise ValueError("this model scores the trajectory too: its batches need traj / norm / camera "
                             "(PoseDataModule(trajectory_features=True), WindowBuilder.row_camera)")
        with torch.autocast(device_type=batch["traj"].device.type, enabled=False):
            traj, norm = batch["traj"].float(), batch["norm"].float()
            # g has no parameters: nothing to record unless a caller asks for gradients of the inputs
            input_grads = torch.is_grad_enabled() and (traj.requires_grad or norm.requires_grad)
            if self.features == "summary" and "traj_summary" in batch and not input_grads:
                g = batch["traj_summary"].float()  # the same numbers, kept by the data (WindowBuilder.keep_summary)
            else:
                with torch.set_grad_enabled(input_grads):
                    g = (trajectory_vector if self.features == "frames" else trajectory_summary)(traj, norm)
            z, logdet = self.flow(g[..., None, None], self.condition(batch["camera"]))
            return -(gaussian_log_prob(z, 0.0) + logdet)


def bits_per_pose_dim(nll_nats: torch.Tensor, n_pose_dims: int) -> torch.Tensor:
    """A NLL in nats on the pose score's scale (bits per dimension of the pose window), so that
    pose score + this = the joint NLL of (pose, trajectory) per pose dimension, in bits."""
    return nll_nats / (math.log(2.0) * n_pose_dims)
