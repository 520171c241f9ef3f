"""GMFC-VAE (Fan, Wen, Li, Qiu, Levine, CVIU 195, 2020), ported to pose tracks and reconstructed.

The paper (on video frames) fixes: a VAE with a Gaussian-mixture prior (normal samples belong to at
least one component), a fully convolutional encoder/decoder (no fully-connected layer, so the latent
keeps its layout and anomalies can be localised), *sample energy* scoring, and two streams
(appearance and motion) fused. vadflow ports it to (C, T, V) pose windows; everything else is a
reconstruction with named options (see the README section "GMFC-VAE").

Per stream s (``appearance`` = joint positions x, ``motion`` = joint velocities
``motion_scale * (x_t - x_{t-1})``, the first frame repeating the second one's velocity):

* encoder: 1x1 lift -> ``depth`` spatio-temporal blocks -> 1x1 head giving the posterior
  q(z | x) = N(m, diag s^2) with a ``latent_dim``-vector at *every* (t, v). A block is a graph
  convolution: aggregation over skeleton neighbours within ``max_hop`` hops, then a
  (``temporal_kernel``, 1) convolution over time that mixes channels, a residual and a ReLU. The decoder mirrors
  it and outputs the mean of a Gaussian with one learned standard deviation per coordinate channel.
  Only 1x1, (k, 1) and graph convolutions: no ``nn.Linear`` anywhere.
* prior: p(z) = sum_k pi_k N(z; mu_k, diag sigma_k^2), K = ``n_components`` learnable components
  (softmax logits, means, log-variances), shared by all (t, v) locations of the stream.
* sample energy: E(z) = -log sum_k pi_k N(z; mu_k, Sigma_k), evaluated at the posterior mean m, per
  (t, v): the stream's energy map (B, T, V).

Loss terms (per sample, (B,), all in nats per (frame, joint) location, summed over both streams):

* ``recon``: Gaussian NLL of the visible joints' coordinates (summed over channels), averaged over
  visible locations -- imputed joints are never a reconstruction target. A velocity is visible when
  the joint is visible in both frames.
* ``kl``: KL(q || p) for the mixture prior, which has no closed form: -H[q] (exact) + E(z) with
  z ~ q (one reparameterised sample), averaged over all T * V latent locations. recon + kl is the
  negative ELBO per location, so ``loss=nll`` trains the plain VAE.
* ``energy``: E(m) averaged over visible locations (DAGMM's sample-energy term; weight 0 by default).
* ``cov``: sum over components and dimensions of 1 / sigma_k^2 (DAGMM's singularity penalty,
  the same for every sample; weight 0 by default).

Scoring: the fused map ``sum_s stream_weights[s] * E_s`` (``score_map``, (B, T, V), fp32); the window
score is its ``max`` or ``mean`` (``score_reduce``) over *observed* (t, v) locations when
``mask_imputed`` (imputed joints are interpolations, their energy says more about the tracker than
about the person; a window without any observed joint falls back to all locations). Every
log-density, log-sum-exp and KL is computed in fp32 with autocast off, so bf16-mixed training
is stable.

With ``dataset.missing_joints=zeros`` the batch's ``vis`` still marks detected joints (the (0, 0)
points are kept in ``x``, as in the official STG-NF code), so the masking above still keeps those
points out of the reconstruction loss and the score; ``mask_imputed=false`` treats them as real.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vadflow.losses import MeanNLL
from vadflow.nn.backbones import STConv as STConvBackbone
from vadflow.nn.backbones import STConvBlock as STConv
from vadflow.nn.backbones import conv1x1
from vadflow.nn.graph import uniform_adjacency

STREAMS = ("appearance", "motion")
LOG_2PI = math.log(2 * math.pi)


def gmm_log_density(z: torch.Tensor, logits: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor) -> torch.Tensor:
    """log sum_k pi_k N(z; mu_k, diag exp(logvar_k)) for z (..., D); prior (K,), (K, D), (K, D).

    Computed in fp32 with autocast off. The Mahalanobis terms use the expansion
    sum_d (z_d - mu_kd)^2 / var_kd = (z^2) . (1/var_k) - 2 z . (mu_k/var_k) + sum_d mu_kd^2 / var_kd,
    i.e. two (N, D) x (D, K) products instead of an (N, K, D) tensor (the same numbers up to fp32
    rounding, several times less memory traffic)."""
    with torch.autocast(device_type=z.device.type, enabled=False):
        z, means, logvars = z.float(), means.float(), logvars.float()
        prec = torch.exp(-logvars)  # (K, D)
        maha = (z * z) @ prec.t() - 2.0 * (z @ (means * prec).t()) + (means * means * prec).sum(-1)
        const = torch.log_softmax(logits.float(), dim=0) - 0.5 * (logvars.sum(-1) + z.shape[-1] * LOG_2PI)
        return torch.logsumexp(const - 0.5 * maha.clamp_min(0.0), dim=-1)


class ConvNet(nn.Module):
    """1x1 lift -> ``depth`` backbone blocks (default :class:`STConv`) -> 1x1 head: fully
    convolutional, (B, T, V, C) in and out."""

    def __init__(self, c_in: int, c_out: int, hidden: int, depth: int, A: torch.Tensor, temporal_kernel: int, backbone=None):
        super().__init__()
        backbone = backbone if backbone is not None else STConvBackbone()
        self.lift = nn.Conv2d(c_in, hidden, 1)
        self.blocks = nn.ModuleList([backbone.block(hidden, A, temporal_kernel) for _ in range(depth)])
        self.head = nn.Conv2d(hidden, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(conv1x1(self.lift, x))
        for block in self.blocks:
            h = block(h)
        return conv1x1(self.head, h)


class StreamVAE(nn.Module):
    """One stream: fully convolutional encoder/decoder and its own Gaussian-mixture prior."""

    def __init__(self, c_in: int, hidden: int, latent_dim: int, depth: int, n_components: int, A: torch.Tensor,
                 temporal_kernel: int, prior_init_scale: float, init_recon_std: float, backbone=None):
        super().__init__()
        self.encoder = ConvNet(c_in, 2 * latent_dim, hidden, depth, A, temporal_kernel, backbone)
        self.decoder = ConvNet(latent_dim, c_in, hidden, depth, A, temporal_kernel, backbone)
        self.recon_logstd = nn.Parameter(torch.full((c_in,), math.log(init_recon_std)))
        self.prior_logits = nn.Parameter(torch.zeros(n_components))
        self.prior_means = nn.Parameter(prior_init_scale * torch.randn(n_components, latent_dim))
        self.prior_logvars = nn.Parameter(torch.zeros(n_components, latent_dim))

    def prior_logvar(self) -> torch.Tensor:
        return self.prior_logvars.float().clamp(-8.0, 8.0)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> posterior mean and log-variance, each (B, T, V, D) in fp32."""
        m, logvar = self.encoder(x.permute(0, 2, 3, 1)).float().chunk(2, dim=-1)
        return m, logvar.clamp(-10.0, 6.0)

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        """Sample energy -log p(z) per location: (..., D) -> (...)."""
        return -gmm_log_density(z, self.prior_logits, self.prior_means, self.prior_logvar())

    def terms(self, x: torch.Tensor, vis: torch.Tensor) -> dict[str, torch.Tensor]:
        m, logvar = self.encode(x)
        z = m + torch.exp(0.5 * logvar) * torch.randn_like(m) if self.training else m
        recon = self.decoder(z.to(x.dtype)).permute(0, 3, 1, 2)
        with torch.autocast(device_type=x.device.type, enabled=False):
            logstd = self.recon_logstd.float().clamp(-6.0, 3.0).view(1, -1, 1, 1)
            err = (x.float() - recon.float()) * torch.exp(-logstd)
            nll = (0.5 * err * err + logstd + 0.5 * LOG_2PI).sum(1)  # (B, T, V)
            n_vis = vis.sum((1, 2)).clamp_min(1.0)
            rec = (nll * vis).sum((1, 2)) / n_vis
            entropy = 0.5 * (logvar + 1.0 + LOG_2PI).sum(-1)  # H[q] per location, exact
            kl = (self.energy(z) - entropy).mean((1, 2))
            energy_mean = (self.energy(m) * vis).sum((1, 2)) / n_vis
            cov = torch.exp(-self.prior_logvar()).sum().expand(x.shape[0])
        return {"recon": rec, "kl": kl, "energy": energy_mean, "cov": cov}

    def energy_map(self, x: torch.Tensor) -> torch.Tensor:
        m, _ = self.encode(x)
        return self.energy(m)


class GMFCVAE(nn.Module):
    term_weights = {"recon": 1.0, "kl": 1.0, "energy": 0.0, "cov": 0.0}

    def __init__(
        self,
        seg_len: int = 24,
        n_joints: int = 18,
        in_channels: int = 2,
        streams=("appearance", "motion"),
        stream_weights: dict | None = None,
        hidden: int = 8,
        latent_dim: int = 4,
        depth: int = 1,
        n_components: int = 4,
        temporal_kernel: int = 3,
        max_hop: int = 1,
        motion_scale: float = 20.0,
        score_reduce: str = "mean",
        mask_imputed: bool = True,
        prior_init_scale: float = 1.0,
        init_recon_std: float = 0.1,
        backbone=None,
        objective: nn.Module | None = None,
    ):
        super().__init__()
        self.backbone_name = getattr(backbone, "name", "st_conv")
        streams = tuple(streams)
        if not streams or any(s not in STREAMS for s in streams):
            raise ValueError(f"streams must be a non-empty subset of {STREAMS}, got {streams}")
        if score_reduce not in ("max", "mean"):
            raise ValueError(f"score_reduce must be 'max' or 'mean', got {score_reduce!r}")
        if temporal_kernel % 2 == 0:
            raise ValueError(f"temporal_kernel must be odd (same-length output), got {temporal_kernel}")
        weights = {"appearance": 1.0, "motion": 1.0, **dict(stream_weights or {})}
        self.streams = streams
        self.stream_weights = {s: float(weights[s]) for s in streams}
        self.seg_len, self.motion_scale = seg_len, float(motion_scale)
        self.score_reduce, self.mask_imputed = score_reduce, bool(mask_imputed)
        A = torch.from_numpy(uniform_adjacency(n_joints, max_hop=max_hop))
        self.vaes = nn.ModuleDict({
            s: StreamVAE(in_channels, hidden, latent_dim, depth, n_components, A, temporal_kernel, prior_init_scale, init_recon_std,
                         backbone)
            for s in streams
        })
        self.objective = objective if objective is not None else MeanNLL()

    def loss_terms(self) -> set[str]:
        return set(self.term_weights)

    # -- inputs -------------------------------------------------------------------------
    def stream_inputs(self, batch: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Each stream's (input (B, C, T, V), visibility (B, T, V) float)."""
        x = batch["x"]
        vis = batch["vis"].to(torch.float32) if "vis" in batch else torch.ones(x.shape[0], x.shape[2], x.shape[3], device=x.device)
        out = {}
        if "appearance" in self.streams:
            out["appearance"] = (x, vis)
        if "motion" in self.streams:
            vel = x[:, :, 1:] - x[:, :, :-1]
            vvis = vis[:, 1:] * vis[:, :-1]
            vel = torch.cat([vel[:, :, :1], vel], dim=2) * self.motion_scale
            out["motion"] = (vel, torch.cat([vvis[:, :1], vvis], dim=1))
        return out

    # -- training -----------------------------------------------------------------------
    def loss(self, batch: dict) -> dict:
        totals: dict[str, torch.Tensor] = {}
        logged: dict[str, torch.Tensor] = {}
        for name, (x, vis) in self.stream_inputs(batch).items():
            for key, value in self.vaes[name].terms(x, vis).items():
                totals[key] = totals[key] + value if key in totals else value
                logged[f"{key}_{name}"] = value.detach().mean()
        out = {"loss": self.objective(totals, batch, defaults=self.term_weights)}
        out.update({k: v.detach().mean() for k, v in totals.items()})
        out.update(logged)
        return out

    # -- scoring ------------------------------------------------------------------------
    def score_map(self, batch: dict) -> torch.Tensor:
        """Fused per-frame, per-joint sample energy (B, T, V), fp32: sum_s w_s * E_s(m_s)."""
        with torch.autocast(device_type=batch["x"].device.type, enabled=False):
            fused = None
            for name, (x, _) in self.stream_inputs(batch).items():
                e = self.stream_weights[name] * self.vaes[name].energy_map(x.float())
                fused = e if fused is None else fused + e
        return fused

    def reduce(self, energy: torch.Tensor, vis: torch.Tensor | None) -> torch.Tensor:
        """Window score from an energy map: max or mean over observed locations (all if none)."""
        b = energy.shape[0]
        flat = energy.reshape(b, -1)
        if vis is None or not self.mask_imputed:
            mask = torch.ones_like(flat, dtype=torch.bool)
        else:
            mask = vis.reshape(b, -1).bool()
            mask = mask | ~mask.any(1, keepdim=True)  # nothing observed: use every location
        if self.score_reduce == "max":
            return flat.masked_fill(~mask, float("-inf")).amax(1)
        m = mask.to(flat.dtype)
        return (flat * m).sum(1) / m.sum(1)

    def score(self, batch: dict) -> torch.Tensor:
        return self.reduce(self.score_map(batch), batch.get("vis"))
