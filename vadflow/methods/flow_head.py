"""The flow head every flow method is a preset of: K steps, the prior N(R, I), the exact
log-determinant and visible-joint scoring, with the coupling networks from a backbone and an
optional conditioner.

    PoseFlow(backbone=STGCN())                        STG-NF
    PoseFlow(backbone=DualAttention())                DA-Flow
    PoseFlow(backbone=DualSpace(), objective=AWAM())  DSNF
    PoseFlow(backbone=STGCN(hidden=8), conditioner=partial(VQTokens, ...))   MSG-Flow

A step is ActNorm -> channel reversal -> affine coupling (``vadflow.nn.flow``); its coupling
network is ``backbone.coupling(k, ...)`` (``vadflow.nn.backbones``). A conditioner (MSG-Flow's VQ
tokens) computes a condition from the window, held fixed inside the flow, so the log-determinant
stays exact; its loss terms join the flow's ``nll`` and its token NLL joins the score.

Loss: named per-sample terms (``nll``, plus the conditioner's) weighted and reduced by the
objective (``conf/loss``); ``loss_terms()`` lists them, and a loss weight naming any other term is
refused when the method is built. Score: the window's NLL in bits per dimension (or its mean over
detected joints, ``score_visible_only``); with a conditioner, the standardised token NLL plus the
standardised flow NLL (``fit_statistics`` after training).
"""
from __future__ import annotations

import torch
from torch import nn

from vadflow.losses import MeanNLL
from vadflow.nn.backbones import STGCN, BackboneMismatch
from vadflow.nn.flow import Flow, FlowStep, masked_location_mean, nll_bits_map, nll_bits_per_dim, training_mean_std


class PoseFlow(nn.Module):
    score_unit = "bits/dim"  # score() is an NLL in bits per dimension (without a conditioner)

    def __init__(
        self,
        seg_len: int = 24,
        n_joints: int = 18,
        in_channels: int = 2,
        K: int = 8,
        R: float = 3.0,
        backbone=None,
        conditioner=None,
        objective: nn.Module | None = None,
        term_weights: dict | None = None,
        score_visible_only: bool = False,
        train_visible_only: bool = False,
    ):
        super().__init__()
        self.seg_len, self.n_joints, self.in_channels = seg_len, n_joints, in_channels
        self.R = float(R)
        self.score_visible_only = bool(score_visible_only)
        self.train_visible_only = bool(train_visible_only)
        backbone = STGCN() if backbone is None else backbone
        if not hasattr(backbone, "coupling"):  # backbone=none (an empty node)
            raise BackboneMismatch("a flow head needs a backbone for its coupling networks (stgcn, dual_attention or dual_space)")
        conditioner = conditioner or None  # conditioner=none composes an empty node
        self.backbone_name = backbone.name
        # the conditioner first: the order MSG-Flow has always drawn its initial weights in
        self.conditioner = conditioner(seg_len=seg_len, n_joints=n_joints, in_channels=in_channels) if conditioner is not None else None
        cond_channels = int(getattr(self.conditioner, "cond_channels", 0))
        for name, module in backbone.shared_modules().items():
            setattr(self, name, module)
        half = in_channels // 2
        out = 2 * (in_channels - half)
        self.flow = Flow([FlowStep(in_channels, backbone.coupling(k, half, out, seg_len, n_joints, cond_channels)) for k in range(K)])
        self.objective = objective if objective is not None else MeanNLL()
        # the method's default term weights; a loss config's weights override them (and may only
        # name terms in loss_terms(): vadflow.losses.check_terms)
        self.term_weights = {**getattr(self.conditioner, "default_weights", {}), **{k: float(v) for k, v in (term_weights or {}).items()}}
        if self.has_token_part:  # score standardisation: [token_nll, flow nll] over the training windows
            self.score_unit = "standardised"
            self.register_buffer("stat_mean", torch.zeros(2))
            self.register_buffer("stat_std", torch.ones(2))
            self.register_buffer("stats_fitted", torch.tensor(0, dtype=torch.uint8))
            self._register_load_state_dict_pre_hook(conditioner_keys)

    def loss_terms(self) -> set[str]:
        return {"nll"} | (self.conditioner.loss_terms() if self.conditioner is not None else set())

    @property
    def has_token_part(self) -> bool:
        """A conditioner with a score of its own (MSG-Flow's token NLL), standardised and joined to the flow's."""
        return self.conditioner is not None and getattr(self.conditioner, "has_token_part", True)

    @property
    def needs_trajectory(self) -> bool:
        """A camera-conditioned flow reads each window's camera from the batch."""
        return bool(getattr(self.conditioner, "reads_batch", False))

    def train_condition(self, batch: dict) -> tuple[torch.Tensor | None, dict, dict]:
        """(condition, the conditioner's loss terms, logged extras) of a training batch."""
        if getattr(self.conditioner, "reads_batch", False):
            return self.conditioner.train_terms(batch)
        return self.conditioner.train_terms(batch["x"], batch.get("vis"))

    def score_condition(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(condition, the conditioner's own score per window or None) of a batch, no update."""
        if getattr(self.conditioner, "reads_batch", False):
            return self.conditioner.score_terms(batch)
        return self.conditioner.score_terms(batch["x"])

    # -- the flow -------------------------------------------------------------------------
    def nll(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        z, logdet = self.flow(x, cond)
        return nll_bits_per_dim(z, logdet, self.R)

    def window_nll(self, batch: dict, visible_only: bool, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The window's NLL in bits per dimension, or its mean over detected joints only."""
        if visible_only:
            return masked_location_mean(self.score_map(batch, cond), batch.get("vis"))
        return self.nll(batch["x"], cond)

    def score_map(self, batch: dict, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Each frame's and joint's share of the flow NLL, (B, T, V) bits per dimension (fp32)."""
        if cond is None and self.conditioner is not None:
            cond, _ = self.score_condition(batch)
        z, logdet_map = self.flow(batch["x"], cond, per_location=True)
        return nll_bits_map(z, logdet_map, self.R)

    # -- the method's interface -------------------------------------------------------------
    def loss(self, batch: dict) -> dict:
        """``train_visible_only``: the training NLL counts detected joints only, as the score does
        (imputed joints still feed the coupling networks as context)."""
        terms, extras, cond = {}, {}, None
        if self.conditioner is not None:
            cond, terms, extras = self.train_condition(batch)
        if self.conditioner is None or cond is not None:  # no flow term while a staged conditioner trains alone
            terms["nll"] = self.window_nll(batch, self.train_visible_only, cond)
        out = {"loss": self.objective(terms, batch, defaults=self.term_weights)}
        out.update({k: v.detach().mean() for k, v in terms.items()})
        out.update(extras)
        return out

    def components(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """With a conditioner: per-window (token NLL in nats/token, flow NLL in bits/dim), fp32."""
        cond, token_nll = self.score_condition(batch)
        return token_nll, self.window_nll(batch, self.score_visible_only, cond)

    def score(self, batch: dict) -> torch.Tensor:
        """The window's NLL (official STG-NF), or with ``score_visible_only`` the mean of its
        per-location NLL over detected joints only: imputed joints are interpolations, and how
        likely the flow finds them says more about the imputation than about the person. With a
        conditioner that scores too (MSG-Flow's tokens): ``w_tok * (token_nll - mu) / sd + w_flow *
        (nll - mu) / sd``; with one that only conditions (the camera), the conditional NLL."""
        if self.conditioner is None:
            return self.window_nll(batch, self.score_visible_only)
        if not self.has_token_part:
            return self.window_nll(batch, self.score_visible_only, self.score_condition(batch)[0])
        u = (torch.stack(self.components(batch), 1).float() - self.stat_mean) / self.stat_std
        return self.conditioner.score_token_weight * u[:, 0] + self.conditioner.score_flow_weight * u[:, 1]

    @torch.no_grad()
    def fit_statistics(self, loader) -> None:
        """With a token conditioner: mean and std of token NLL and flow NLL over the training windows."""
        if not self.has_token_part:
            return
        mean, std = training_mean_std(self, loader, lambda b: torch.stack(self.components(b), 1), self.stat_mean.device)
        self.stat_mean.copy_(mean)
        self.stat_std.copy_(std)
        self.stats_fitted.fill_(1)


LEGACY_CONDITIONER_KEYS = ("encoder.", "quantizer.", "decoder.", "transformer.", "step")


def conditioner_keys(state_dict, prefix, *args) -> None:
    """MSG-Flow checkpoints written before the conditioner had its own module keep its weights at
    the top level (``encoder.*``, ``step``): they load here under ``conditioner.``, unchanged."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        rest = key[len(prefix):]
        if rest.startswith(LEGACY_CONDITIONER_KEYS) and (rest == "step" or "." in rest):
            state_dict[f"{prefix}conditioner.{rest}"] = state_dict.pop(key)
