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

The global stream (``streams`` with ``global``; ``trajectory=stream``) models what the window
normalisation removes: where the person is, how big and how fast. Its input is the per-frame box
track (``box_track_features``: centre x, y, log height, aspect, centre velocity in body heights per
frame, growth of log height), each feature against its camera's median and spread over the
training windows (``fit_reference``, before training; a camera with fewer than
``MIN_CAMERA_WINDOWS`` training windows, or none, takes the reference of all of them), through
asinh. It is a fully convolutional VAE like the others, over time only (one node per frame), with
its own Gaussian-mixture prior whose mixture weights are per camera (the components are shared):
each camera weights the modes of normal motion it shows, and on a ``camera_dropout`` share of
training windows the camera-free weights (slot 0, for unseen cameras) are trained instead. Its
per-frame score (``global_score``) is the sample energy at the posterior mean plus the
reconstruction NLL of the box features decoded from it (``energy_recon``, as DAGMM's energy also
sees the reconstruction error: a feature constant in normal training, such as the row people walk
on, the encoder may ignore, and only the decoder's miss shows it), or the sample energy alone
(``energy``). The window score is the pose streams' part plus the global part, each its stream's
score reduced over observed locations; with ``global_fusion=standardised`` each part is first
standardised by its mean and std over the training windows (``fit_statistics``, after training;
the sample energy alone spreads about 20x less than the pose streams' over synthetic training
windows). ``score_parts`` returns both, so a plot can say which drove an alarm. The defaults
(``energy_recon``, ``sum``) were chosen on synthetic data (``docs/trajectory.md``).

With ``dataset.missing_joints=zeros`` the batch's ``vis`` still marks detected joints (the (0, 0)
points are kept in ``x``, as in the official STG-NF code), so the masking above still keeps those
points out of the reconstruction loss and the score; ``mask_imputed=false`` treats them as real.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vadflow.data.cameras import CAMERA_SLOTS
from vadflow.data.types import DataError
from vadflow.losses import MeanNLL
from vadflow.nn.backbones import STConv as STConvBackbone
from vadflow.nn.backbones import STConvBlock as STConv
from vadflow.nn.backbones import conv1x1
from vadflow.nn.camera import camera_rows, camera_slots
from vadflow.nn.flow import training_mean_std
from vadflow.nn.graph import uniform_adjacency

POSE_STREAMS = ("appearance", "motion")
STREAMS = POSE_STREAMS + ("global",)
GLOBAL_SCORES = ("energy_recon", "energy")  # the global stream's per-frame score: sample energy, plus reconstruction NLL or not
GLOBAL_FUSIONS = ("standardised", "sum")  # how the global stream's energy joins the pose streams' (see split_score)
MIN_CAMERA_WINDOWS = 32  # a camera with fewer training windows takes slot 0's reference and prior weights
GLOBAL_CHANNELS = 7  # per frame: centre x, y, log height, aspect, centre velocity x, y, growth (box_track_features)


def box_track_features(traj: torch.Tensor) -> torch.Tensor:
    """(B, T, 4) box per frame (centre x, y, log width, log height; frame units) -> (B, 7, T): the
    centre x, y and log height (where and how big), the log aspect w / h, the centre's velocity
    in body heights per frame (the window's geometric-mean height: one speed means the same near
    and far) and the growth rate of log height (walking towards or away from the camera). The
    first frame repeats the second one's motion, as in the motion stream."""
    centre, log_w, log_h = traj[..., :2], traj[..., 2], traj[..., 3]
    height = log_h.mean(1, keepdim=True).exp()
    step = (centre[:, 1:] - centre[:, :-1]) / height[..., None]
    grow = log_h[:, 1:] - log_h[:, :-1]
    step, grow = torch.cat([step[:, :1], step], 1), torch.cat([grow[:, :1], grow], 1)
    return torch.stack([centre[..., 0], centre[..., 1], log_h, log_w - log_h, step[..., 0], step[..., 1], grow], 1)
LOG_2PI = math.log(2 * math.pi)


def gmm_log_density(z: torch.Tensor, logits: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor) -> torch.Tensor:
    """log sum_k pi_k N(z; mu_k, diag exp(logvar_k)) for z (..., D); prior (K,), (K, D), (K, D). The
    mixture logits may also be per sample, (..., K) broadcasting against z's leading dimensions.

    Computed in fp32 with autocast off. The Mahalanobis terms use the expansion
    sum_d (z_d - mu_kd)^2 / var_kd = (z^2) . (1/var_k) - 2 z . (mu_k/var_k) + sum_d mu_kd^2 / var_kd,
    i.e. two (N, D) x (D, K) products instead of an (N, K, D) tensor (the same numbers up to fp32
    rounding, several times less memory traffic)."""
    with torch.autocast(device_type=z.device.type, enabled=False):
        z, means, logvars = z.float(), means.float(), logvars.float()
        prec = torch.exp(-logvars)  # (K, D)
        maha = (z * z) @ prec.t() - 2.0 * (z @ (means * prec).t()) + (means * means * prec).sum(-1)
        const = torch.log_softmax(logits.float(), dim=-1) - 0.5 * (logvars.sum(-1) + z.shape[-1] * LOG_2PI)
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
    """One stream: fully convolutional encoder/decoder and its own Gaussian-mixture prior. With
    ``prior_slots`` the mixture weights are per camera slot (the components are shared): each
    camera weights the modes of normal behaviour it shows."""

    def __init__(self, c_in: int, hidden: int, latent_dim: int, depth: int, n_components: int, A: torch.Tensor,
                 temporal_kernel: int, prior_init_scale: float, init_recon_std: float, backbone=None, prior_slots: int = 0):
        super().__init__()
        self.encoder = ConvNet(c_in, 2 * latent_dim, hidden, depth, A, temporal_kernel, backbone)
        self.decoder = ConvNet(latent_dim, c_in, hidden, depth, A, temporal_kernel, backbone)
        self.recon_logstd = nn.Parameter(torch.full((c_in,), math.log(init_recon_std)))
        self.prior_logits = nn.Parameter(torch.zeros((prior_slots, n_components) if prior_slots else (n_components,)))
        self.prior_means = nn.Parameter(prior_init_scale * torch.randn(n_components, latent_dim))
        self.prior_logvars = nn.Parameter(torch.zeros(n_components, latent_dim))

    def prior_logvar(self) -> torch.Tensor:
        return self.prior_logvars.float().clamp(-8.0, 8.0)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> posterior mean and log-variance, each (B, T, V, D) in fp32."""
        m, logvar = self.encoder(x.permute(0, 2, 3, 1)).float().chunk(2, dim=-1)
        return m, logvar.clamp(-10.0, 6.0)

    def energy(self, z: torch.Tensor, slot: torch.Tensor | None = None) -> torch.Tensor:
        """Sample energy -log p(z) per location: (B, ..., D) -> (B, ...); ``slot`` (B,): each
        sample's camera slot, for a prior with per-camera mixture weights."""
        logits = self.prior_logits
        if slot is not None:
            logits = logits[slot].view(slot.shape[0], *([1] * (z.dim() - 2)), -1)
        return -gmm_log_density(z, logits, self.prior_means, self.prior_logvar())

    def recon_nll(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Gaussian NLL of x (B, C, T, V) under the decoder at z (B, T, V, D), per location (B, T, V), fp32."""
        recon = self.decoder(z.to(x.dtype)).permute(0, 3, 1, 2)
        with torch.autocast(device_type=x.device.type, enabled=False):
            logstd = self.recon_logstd.float().clamp(-6.0, 3.0).view(1, -1, 1, 1)
            err = (x.float() - recon.float()) * torch.exp(-logstd)
            return (0.5 * err * err + logstd + 0.5 * LOG_2PI).sum(1)

    def terms(self, x: torch.Tensor, vis: torch.Tensor, slot: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        m, logvar = self.encode(x)
        z = m + torch.exp(0.5 * logvar) * torch.randn_like(m) if self.training else m
        nll = self.recon_nll(x, z)  # (B, T, V)
        with torch.autocast(device_type=x.device.type, enabled=False):
            n_vis = vis.sum((1, 2)).clamp_min(1.0)
            rec = (nll * vis).sum((1, 2)) / n_vis
            entropy = 0.5 * (logvar + 1.0 + LOG_2PI).sum(-1)  # H[q] per location, exact
            kl = (self.energy(z, slot) - entropy).mean((1, 2))
            energy_mean = (self.energy(m, slot) * vis).sum((1, 2)) / n_vis
            cov = torch.exp(-self.prior_logvar()).sum().expand(x.shape[0])
        return {"recon": rec, "kl": kl, "energy": energy_mean, "cov": cov}

    def energy_map(self, x: torch.Tensor, slot: torch.Tensor | None = None, with_recon: bool = False) -> torch.Tensor:
        """Sample energy at the posterior mean per location; ``with_recon``: plus the reconstruction
        NLL of the location's input decoded from that mean (as DAGMM's energy also sees the
        reconstruction error: an input the encoder cannot tell from normal, the decoder cannot rebuild)."""
        m, _ = self.encode(x)
        energy = self.energy(m, slot)
        return energy + self.recon_nll(x, m) if with_recon else energy


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
        camera_dropout: float = 0.1,
        global_fusion: str = "sum",
        global_score: str = "energy_recon",
        n_cameras: int = CAMERA_SLOTS,
        backbone=None,
        objective: nn.Module | None = None,
    ):
        super().__init__()
        self.backbone_name = getattr(backbone, "name", "st_conv")
        streams = tuple(streams)
        if not any(s in POSE_STREAMS for s in streams) or any(s not in STREAMS for s in streams):
            raise ValueError(f"streams must be a subset of {STREAMS} with at least one of {POSE_STREAMS}, got {streams}")
        if score_reduce not in ("max", "mean"):
            raise ValueError(f"score_reduce must be 'max' or 'mean', got {score_reduce!r}")
        if temporal_kernel % 2 == 0:
            raise ValueError(f"temporal_kernel must be odd (same-length output), got {temporal_kernel}")
        if global_score not in GLOBAL_SCORES:
            raise ValueError(f"global_score must be one of {GLOBAL_SCORES}, got {global_score!r}")
        if global_fusion not in GLOBAL_FUSIONS:
            raise ValueError(f"global_fusion must be one of {GLOBAL_FUSIONS}, got {global_fusion!r}")
        weights = {"appearance": 1.0, "motion": 1.0, "global": 1.0, **dict(stream_weights or {})}
        self.streams = streams
        self.stream_weights = {s: float(weights[s]) for s in streams}
        self.seg_len, self.motion_scale = seg_len, float(motion_scale)
        self.score_reduce, self.mask_imputed = score_reduce, bool(mask_imputed)
        A = torch.from_numpy(uniform_adjacency(n_joints, max_hop=max_hop))
        self.vaes = nn.ModuleDict({s: StreamVAE(in_channels, hidden, latent_dim, depth, n_components, A, temporal_kernel, prior_init_scale,
                                                init_recon_std, backbone) for s in streams if s in POSE_STREAMS})
        if self.has_global:
            # the box track is one "joint" per frame: a graph of one node, convolutions over time only
            self.vaes["global"] = StreamVAE(GLOBAL_CHANNELS, hidden, latent_dim, depth, n_components, torch.ones(1, 1, 1), temporal_kernel,
                                            prior_init_scale, 1.0, backbone, n_cameras)  # standardised inputs: unit initial std
            self.camera_dropout = float(camera_dropout)
            # per camera slot: median and robust spread of each box feature (fit_reference); slot 0 = all cameras
            self.register_buffer("box_centre", torch.zeros(n_cameras, GLOBAL_CHANNELS))
            self.register_buffer("box_scale", torch.ones(n_cameras, GLOBAL_CHANNELS))
            self.register_buffer("seen", torch.zeros(n_cameras, dtype=torch.bool))
            self.global_fusion, self.global_score = global_fusion, global_score
            # standardised fusion: mean / std of the (pose, global) parts over training windows, after training
            self.register_buffer("part_mean", torch.zeros(2))
            self.register_buffer("part_std", torch.ones(2))
            self.register_buffer("parts_fitted", torch.tensor(0, dtype=torch.uint8))
        self.objective = objective if objective is not None else MeanNLL()

    @property
    def has_global(self) -> bool:
        return "global" in self.streams

    @property
    def needs_trajectory(self) -> bool:
        """The global stream reads the batch's box trajectory and camera."""
        return self.has_global

    def loss_terms(self) -> set[str]:
        return set(self.term_weights)

    # -- the global stream's reference ----------------------------------------------------
    @torch.no_grad()
    def fit_reference(self, loader) -> None:
        """Each camera's median and spread ((q75 - q25) / 1.349) of the box features, from the
        middle frame of every training window; nothing without the global stream."""
        if not self.has_global:
            return
        feats, cameras = [], []
        for batch in loader:
            self._check_trajectory(batch)
            feats.append(box_track_features(batch["traj"].double())[:, :, self.seg_len // 2])
            cameras.append(batch["camera"].long())
        if not feats:
            raise DataError("gmfcvae global stream: no training window to fit the camera references on")
        feat, camera = torch.cat(feats), torch.cat(cameras)
        self.seen.zero_()
        for slot, rows in camera_rows(camera, MIN_CAMERA_WINDOWS):
            q = feat[rows].quantile(torch.tensor([0.25, 0.5, 0.75], dtype=feat.dtype), dim=0)
            self.box_centre[slot] = q[1].to(self.box_centre)
            self.box_scale[slot] = ((q[2] - q[0]) / 1.349).clamp_min(1e-3).to(self.box_scale)
            self.seen[slot] = True

    def _check_trajectory(self, batch: dict) -> None:
        if "traj" not in batch or "camera" not in batch:
            raise ValueError("gmfcvae's global stream needs the box trajectory and camera: batches with traj and camera "
                             "(PoseDataModule(trajectory_features=True))")

    def camera_slot(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(reference slot, prior slot), each (B,): the camera, or 0 for a camera unseen in training;
        in training the prior's slot is 0 ("camera unknown") on a ``camera_dropout`` share of windows."""
        self._check_trajectory(batch)
        if not bool(self.seen[0]):
            raise RuntimeError("gmfcvae global stream: fit_reference(training windows) must run before training or scoring")
        ref = camera_slots(batch["camera"], self.seen)
        return ref, camera_slots(batch["camera"], self.seen, self.camera_dropout, self.training)

    # -- inputs -------------------------------------------------------------------------
    def stream_inputs(self, batch: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Each stream's (input (B, C, T, V), visibility (B, T, V) float); the global stream's V is 1."""
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
        if self.has_global:
            ref, _ = self.camera_slot(batch)
            feats = box_track_features(batch["traj"].float())
            # against the camera's median and spread; asinh keeps a detector's box jumps (tens of
            # spreads) from dominating the Gaussian reconstruction loss, and is monotone, so they still score high
            feats = torch.asinh((feats - self.box_centre[ref][..., None]) / self.box_scale[ref][..., None])
            out["global"] = (feats[..., None].to(x.dtype), self.observed_frames(vis)[..., None])
        return out

    def observed_frames(self, vis: torch.Tensor) -> torch.Tensor:
        """(B, T) float: frames whose box is observed, for the global stream's loss and score: the
        frame and the one before it have a detected joint (place needs the first, motion both);
        every frame without ``mask_imputed``."""
        if not self.mask_imputed:
            return torch.ones_like(vis[..., 0])
        seen = vis.amax(2)
        return seen * torch.cat([seen[:, 1:2], seen[:, :-1]], 1)

    # -- training -----------------------------------------------------------------------
    def loss(self, batch: dict) -> dict:
        totals: dict[str, torch.Tensor] = {}
        logged: dict[str, torch.Tensor] = {}
        slot = self.camera_slot(batch)[1] if self.has_global else None
        for name, (x, vis) in self.stream_inputs(batch).items():
            for key, value in self.vaes[name].terms(x, vis, slot if name == "global" else None).items():
                totals[key] = totals[key] + value if key in totals else value
                logged[f"{key}_{name}"] = value.detach().mean()
        out = {"loss": self.objective(totals, batch, defaults=self.term_weights)}
        out.update({k: v.detach().mean() for k, v in totals.items()})
        out.update(logged)
        return out

    # -- scoring ------------------------------------------------------------------------
    def stream_energies(self, batch: dict) -> dict[str, torch.Tensor]:
        """Each stream's weighted energy map, fp32: (B, T, V) for the pose streams, (B, T, 1) for the global one."""
        slot = self.camera_slot(batch)[1] if self.has_global else None
        with torch.autocast(device_type=batch["x"].device.type, enabled=False):
            return {name: self.stream_weights[name] * (self.vaes[name].energy_map(x.float(), slot, self.global_score == "energy_recon")
                                                          if name == "global" else self.vaes[name].energy_map(x.float()))
                    for name, (x, _) in self.stream_inputs(batch).items()}

    def score_map(self, batch: dict) -> torch.Tensor:
        """Fused per-frame, per-joint sample energy (B, T, V), fp32: sum_s w_s * E_s(m_s) (the global
        stream's per-frame energy on every joint of its frame)."""
        return sum(self.stream_energies(batch).values())

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

    def raw_parts(self, batch: dict) -> torch.Tensor:
        """(B, 2): the pose streams' fused energy reduced over observed (frame, joint) locations, and
        the global stream's reduced over observed frames."""
        energies = self.stream_energies(batch)
        glob = energies.pop("global")[..., 0]
        vis = batch.get("vis")
        frames = None if vis is None else self.observed_frames(vis.to(torch.float32))
        return torch.stack([self.reduce(sum(energies.values()), vis), self.reduce(glob, frames)], 1)

    def split_score(self, batch: dict) -> dict[str, torch.Tensor]:
        """The window score's two parts, (B,) each (``raw_parts``; with ``global_fusion=standardised``
        each minus its training mean, over its training std). The score is their sum
        (``combine_parts``), so a plot can say which one drove an alarm."""
        parts = self.raw_parts(batch)
        if self.global_fusion == "standardised":
            if not bool(self.parts_fitted):
                raise RuntimeError("gmfcvae global_fusion=standardised needs fit_statistics(training windows) first")
            parts = (parts - self.part_mean) / self.part_std
        return {"pose": parts[:, 0], "trajectory": parts[:, 1]}

    @torch.no_grad()
    def fit_statistics(self, loader) -> None:
        """``global_fusion=standardised``: mean and std of both parts over the training windows (eval mode, fp32)."""
        if not self.has_global or self.global_fusion != "standardised":
            return
        mean, std = training_mean_std(self, loader, self.raw_parts, self.part_mean.device)
        self.part_mean.copy_(mean)
        self.part_std.copy_(std)
        self.parts_fitted.fill_(1)

    @property
    def score_parts(self):
        # only a model with the global stream has parts: hasattr(model, "score_parts") says so
        if not self.has_global:
            raise AttributeError("score_parts: gmfcvae without its global stream has one part")
        return self.split_score

    def combine_parts(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        return parts["pose"] + parts["trajectory"]

    def score(self, batch: dict) -> torch.Tensor:
        if self.has_global:
            return self.combine_parts(self.split_score(batch))
        return self.reduce(self.score_map(batch), batch.get("vis"))
