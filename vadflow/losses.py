"""Training objectives (``conf/loss``): how a method's per-sample loss terms become the optimised
scalar. An objective is term weights plus a reducer.

A method's ``loss(batch)`` computes named per-sample terms, each a ``(B,)`` tensor -- ``nll`` for a
flow, ``recon``/``kl``/``energy``/``cov`` for GMFC-VAE, ``commit``/``codebook``/``token_nll``/``recon``
for the VQ-token conditioner -- and declares them in ``loss_terms()``. Its objective makes::

    total_i = sum_k w_k * term_k[i]          (per sample; conf/loss/*.yaml `weights`)
    loss    = reduce(total)                  (conf/loss/reducer: mean, or AWAM's weighted mean)

``w_k`` comes from the loss config's ``weights``, else from the method's own defaults, else 1. A
weight naming a term the method does not produce is refused when the method is built
(:func:`check_terms`): ``loss=gmm_energy`` with a flow would otherwise train plain NLL silently.
Any reducer goes with any weights: ``loss=gmm_energy loss/reducer=awam``.
"""
from __future__ import annotations

import torch
from torch import nn

from vadflow.data.types import ConfigError


class Mean:
    """The batch mean of the per-sample totals (maximum likelihood when the only term is ``nll``)."""

    def __call__(self, total: torch.Tensor, batch: dict | None = None) -> torch.Tensor:
        return total.mean()


class AWAMReducer:
    """Adaptive Weighted Approximation Mass (DSNF; reconstructed -- the paper gives only its aim).

    DSNF's AWAM puts stronger constraints where the model discriminates poorly. Here a sample's
    difficulty is its per-sample loss ``l_i`` (NLL for a flow): normal training windows the model
    still finds unlikely lie where the density is least discriminative. With ``u_i`` the batch-
    standardised, detached ``l_i``::

        s_i = B * softmax(u / tau)_i                 (mean 1 over the batch)
        w_i = min((1 - lam) + lam * s_i, w_max)
        loss = sum_i w_i * l_i / sum_i w_i

    ``tau`` (temperature) sets how sharply weight moves to hard samples, ``lam`` mixes with uniform
    weights (0 = plain mean), ``w_max`` caps a single window's influence (robust to outliers, e.g.
    a contaminated training set). Dividing by ``sum w`` keeps the loss on the NLL scale. The weights
    are detached: they steer where the gradient goes, they are not optimised themselves.
    """

    def __init__(self, tau: float = 1.0, lam: float = 0.5, w_max: float = 5.0):
        if tau <= 0 or not 0 <= lam <= 1 or w_max < 1:
            raise ValueError(f"AWAM needs tau > 0, 0 <= lam <= 1, w_max >= 1 (got {tau}, {lam}, {w_max})")
        self.tau, self.lam, self.w_max = float(tau), float(lam), float(w_max)

    def sample_weights(self, total: torch.Tensor) -> torch.Tensor:
        l = total.detach().float()
        if l.numel() < 2:
            return torch.ones_like(l)
        u = (l - l.mean()) / (l.std() + 1e-6)
        s = l.numel() * torch.softmax(u / self.tau, dim=0)
        return ((1 - self.lam) + self.lam * s).clamp(max=self.w_max)

    def __call__(self, total: torch.Tensor, batch: dict | None = None) -> torch.Tensor:
        w = self.sample_weights(total)
        return (w * total).sum() / w.sum()


class Objective(nn.Module):
    """Weighted sum of per-sample terms, reduced over the batch by ``reducer`` (default: the mean)."""

    def __init__(self, weights: dict | None = None, reducer=None):
        super().__init__()
        self.weights = {k: float(v) for k, v in (weights or {}).items()}
        self.reducer = reducer if reducer is not None else Mean()

    def per_sample(self, terms: dict[str, torch.Tensor], defaults: dict | None = None) -> torch.Tensor:
        defaults = defaults or {}
        total = None
        for name, value in terms.items():
            w = self.weights.get(name, defaults.get(name, 1.0))
            if w == 0.0:
                continue
            part = w * value.float()
            total = part if total is None else total + part
        if total is None:
            raise ValueError(f"every loss term has weight 0: {sorted(terms)}")
        return total

    def reduce(self, total: torch.Tensor, batch: dict | None) -> torch.Tensor:
        return self.reducer(total, batch)

    @property
    def name(self) -> str:
        return objective_name(self.weights, isinstance(self.reducer, AWAMReducer))

    def forward(self, terms: dict[str, torch.Tensor] | torch.Tensor, batch: dict | None = None, defaults: dict | None = None) -> torch.Tensor:
        if torch.is_tensor(terms):
            terms = {"nll": terms}
        return self.reduce(self.per_sample(terms, defaults), batch)


class MeanNLL(Objective):
    """Maximum likelihood: the batch mean of the per-sample NLL (bits per dimension for flows; the
    negative ELBO, an upper bound of the NLL, for VAEs)."""


class AWAM(Objective):
    """The AWAM reducer (:class:`AWAMReducer`) over the weighted terms."""

    def __init__(self, tau: float = 1.0, lam: float = 0.5, w_max: float = 5.0, weights: dict | None = None):
        super().__init__(weights, AWAMReducer(tau, lam, w_max))

    def sample_weights(self, total: torch.Tensor) -> torch.Tensor:
        return self.reducer.sample_weights(total)


class GMMEnergy(Objective):
    """GMFC-VAE's objective (reconstructed): the negative ELBO with a Gaussian-mixture prior plus
    DAGMM-style sample-energy terms, per sample::

        total_i = w_recon * recon_i + w_kl * kl_i + w_energy * energy_i + w_cov * cov
        loss    = mean_i total_i

    ``recon``: Gaussian NLL of the visible joints, ``kl``: KL(q || mixture prior) (beta = ``w_kl``),
    ``energy``: mean sample energy E(m) = -log sum_k pi_k N(m; mu_k, Sigma_k) at the posterior means
    of the visible locations, ``cov``: sum_k sum_d 1 / sigma_kd^2 (keeps the mixture from collapsing
    onto single points). The weights come from ``weights`` (conf/loss/gmm_energy.yaml)."""


def objective_name(weights: dict, awam: bool) -> str:
    """How runs and tables name an objective (``conf/loss``): nll, awam, vq or gmm_energy, with
    ``+awam`` when a weighted objective other than the NLL is reduced by AWAM."""
    family = "gmm_energy" if {"energy", "cov"} & set(weights) else "vq" if "commit" in weights else "nll"
    if awam:
        return "awam" if family == "nll" else f"{family}+awam"
    return family


class LossTermError(ConfigError):
    """A loss weight names a term the method does not produce."""


def check_terms(objective: Objective, method: nn.Module, method_name: str = "the method") -> None:
    """Refuse weights for terms ``method`` never produces (its ``loss_terms()``), in one line."""
    produced = set(method.loss_terms())
    unknown = sorted(set(objective.weights) - produced)
    if unknown:
        raise LossTermError(f"loss.weights.{unknown[0]}: {method_name} produces no {unknown[0]!r} term "
                            f"(its terms: {', '.join(sorted(produced)) or 'none, it learns nothing'})")
