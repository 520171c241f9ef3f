"""DA-Flow (Wu et al., arXiv 2406.02976), reconstructed from the abstract: STG-NF with a Dual
Attention Module (frame attention + body-part skeleton attention, ``vadflow.nn.attention``)
after each coupling network's graph/temporal convolution. Everything else -- flow steps, prior
N(R, I), NLL in bits per dimension, windows, scoring -- is STG-NF's.

``mode=random_projection`` checks the paper's claim that an *untrained* model already detects
anomalies. Nothing is trained (run it with ``method=daflow_random``, 0 epochs):

* ``random_kind=flow``: the randomly initialised DA-Flow; only ActNorm's data-dependent
  initialisation sees training windows (one batch, no gradient step). Score: NLL under N(R, I).
* ``random_kind=projection``: z = W x with a random Gaussian square W (invertible with
  probability 1, no dimensionality reduction). Score: NLL of z under a diagonal Gaussian whose
  mean and variance are the statistics of W x over the training windows.
"""
from __future__ import annotations

import math

import torch

from vadflow.methods.flow_head import PoseFlow
from vadflow.nn.backbones import DualAttention
from vadflow.nn.flow import ActNorm


class DAFlow(PoseFlow):
    """The flow head with DA-Flow's coupling networks (``backbone=dual_attention``) and its
    untrained modes; every other keyword (``seg_len``, ``K``, ``R``, ``objective``...) is the
    head's. ``backbone`` replaces the attention backbone (``method=daflow backbone=dual_space``)."""

    def __init__(
        self,
        frame_attention: bool = True,
        skeleton_attention: bool = True,
        frame_kernel: int = 3,
        body_parts: dict | None = None,
        mode: str = "train",
        random_kind: str = "flow",
        seed: int = 0,
        temporal_kernel: int | None = None,
        max_hop: int = 8,
        backbone=None,
        **head,
    ):
        if mode not in ("train", "random_projection") or random_kind not in ("flow", "projection"):
            raise ValueError(f"DA-Flow: mode must be train|random_projection and random_kind flow|projection, got {mode}, {random_kind}")
        if backbone is None:
            backbone = DualAttention(frame_attention=frame_attention, skeleton_attention=skeleton_attention, frame_kernel=frame_kernel,
                                     body_parts=body_parts, temporal_kernel=temporal_kernel, max_hop=max_hop)
        super().__init__(backbone=backbone, **head)
        self.mode, self.random_kind = mode, random_kind
        if mode == "random_projection":
            self.requires_grad_(False)  # nothing is trained
            d = self.in_channels * self.seg_len * self.n_joints
            g = torch.Generator().manual_seed(seed)
            if random_kind == "projection":
                self.register_buffer("projection", torch.randn(d, d, generator=g) / math.sqrt(d))
                self.register_buffer("z_mean", torch.zeros(d))
                self.register_buffer("z_var", torch.ones(d))

    def nll(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if self.mode == "random_projection" and self.random_kind == "projection":
            z = x.float().flatten(1) @ self.projection.t()
            lp = -0.5 * ((z - self.z_mean) ** 2 / self.z_var + torch.log(2 * math.pi * self.z_var))
            return -lp.sum(1) / (math.log(2.0) * z.shape[1])  # bits per dimension, like the flow
        return super().nll(x, cond)

    def score(self, batch: dict) -> torch.Tensor:
        if self.mode == "random_projection" and self.random_kind == "projection":
            return self.nll(batch["x"])  # a dense projection has no per-location NLL
        return super().score(batch)

    @torch.no_grad()
    def fit_statistics(self, loader) -> None:
        """Untrained modes only: ActNorm's data-dependent init (flow) or the Gaussian of W x (projection)."""
        if self.mode != "random_projection":
            return
        was_training = self.training
        self.eval()
        if self.random_kind == "flow":
            for m in self.modules():
                if isinstance(m, ActNorm):
                    m.train()  # only ActNorm initialises; BatchNorm keeps its untouched running stats
            batch = next(iter(loader))
            self.flow(batch["x"])
        else:
            n, s, sq = 0, 0.0, 0.0
            for batch in loader:
                z = batch["x"].float().flatten(1) @ self.projection.t()
                n, s, sq = n + z.shape[0], s + z.sum(0).double(), sq + (z.double() ** 2).sum(0)
            mean = s / n
            self.z_mean.copy_(mean.float())
            self.z_var.copy_((sq / n - mean**2).clamp_min(1e-6).float())
        self.train(was_training)
