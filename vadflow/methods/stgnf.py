"""STG-NF (Hirschorn & Avidan, ICCV 2023), an exact port of the official ``orhir/STG-NF`` model.

K flow steps (ActNorm -> channel reversal -> affine coupling with an ST-GCN coupling network)
map a (2, T, 18) pose window to z; the prior is N(R, I) for normal data. The window's anomaly
score is its NLL in bits per dimension (the official code reports ``-NLL`` as a normality score;
scoring flips the sign once, in ``vadflow.scoring``).

Trainable parameters: 616 at T = 24, 488 at T = 16. ``load_official_state_dict`` reads the
released checkpoints (``flow.layers.k.actnorm`` / ``flow.layers.k.block.0``).
"""
from __future__ import annotations

import torch
from torch import nn

from vadflow.losses import MeanNLL
from vadflow.nn.flow import Flow, FlowStep, masked_location_mean, nll_bits_map, nll_bits_per_dim
from vadflow.nn.graph import uniform_adjacency
from vadflow.nn.stgcn import STGCNBlock


class STGNF(nn.Module):
    score_unit = "bits/dim"  # score() is an NLL in bits per dimension (DA-Flow and DSNF inherit it)

    def __init__(
        self,
        seg_len: int = 24,
        n_joints: int = 18,
        in_channels: int = 2,
        K: int = 8,
        R: float = 3.0,
        temporal_kernel: int | None = None,
        max_hop: int = 8,
        objective: nn.Module | None = None,
        score_visible_only: bool = False,
        train_visible_only: bool = False,
    ):
        super().__init__()
        self.seg_len, self.n_joints, self.in_channels = seg_len, n_joints, in_channels
        self.R = float(R)
        self.score_visible_only = bool(score_visible_only)
        self.train_visible_only = bool(train_visible_only)
        kernel = temporal_kernel or seg_len // 2 + 1
        A = torch.from_numpy(uniform_adjacency(n_joints, max_hop=max_hop))
        half = in_channels // 2
        steps = [FlowStep(in_channels, self.coupling_net(k, half, 2 * (in_channels - half), kernel, A)) for k in range(K)]
        self.flow = Flow(steps)
        self.objective = objective if objective is not None else MeanNLL()

    def coupling_net(self, k: int, in_channels: int, out_channels: int, kernel: int, A: torch.Tensor) -> nn.Module:
        """The network of step k's affine coupling (z1 -> shift, scale). DA-Flow and DSNF override
        this and nothing else of the flow."""
        return STGCNBlock(in_channels, out_channels, kernel, A, residual=k > 0)

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        z, logdet = self.flow(x)
        return nll_bits_per_dim(z, logdet, self.R)

    def window_nll(self, batch: dict, visible_only: bool) -> torch.Tensor:
        """The window's NLL in bits per dimension, or its mean over detected joints only."""
        if visible_only:
            return masked_location_mean(self.score_map(batch), batch.get("vis"))
        return self.nll(batch["x"])

    def loss(self, batch: dict) -> dict:
        """``train_visible_only``: the training NLL counts detected joints only, as the score does
        (imputed joints still feed the coupling networks as context)."""
        nll = self.window_nll(batch, self.train_visible_only)
        return {"loss": self.objective({"nll": nll}, batch), "nll": nll.detach().mean()}

    def score_map(self, batch: dict) -> torch.Tensor:
        """Each frame's and joint's share of the NLL, (B, T, V) bits per dimension (fp32)."""
        z, logdet_map = self.flow(batch["x"], per_location=True)
        return nll_bits_map(z, logdet_map, self.R)

    def score(self, batch: dict) -> torch.Tensor:
        """The window's NLL (official), or with ``score_visible_only`` the mean of its per-location
        NLL over detected joints only: imputed joints are interpolations, and how likely the flow
        finds them says more about the imputation than about the person."""
        return self.window_nll(batch, self.score_visible_only)


def is_official_checkpoint(ckpt: dict) -> bool:
    return "state_dict" in ckpt and any(k.startswith("flow.layers.") for k in ckpt["state_dict"])


def load_official_state_dict(model: STGNF, state_dict: dict) -> None:
    """Load an ``orhir/STG-NF`` checkpoint's state_dict into :class:`STGNF` (strict on the flow)."""
    mapped = {}
    for key, value in state_dict.items():
        if not key.startswith("flow.layers."):
            continue  # prior_h*: the prior is the constant N(R, I), not a parameter
        _, _, k, rest = key.split(".", 3)
        if rest.startswith("block.0."):
            rest = "coupling.net." + rest[len("block.0.") :]
        mapped[f"flow.steps.{k}.{rest}"] = value
    for name, buf in model.state_dict().items():
        if name.endswith("actnorm.initialized"):
            mapped[name] = torch.ones_like(buf)  # a trained checkpoint is initialised
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    missing = [m for m in missing if not m.endswith(".objective")]
    if missing or unexpected:
        raise ValueError(f"official STG-NF checkpoint does not match: missing {missing}, unexpected {unexpected}")
