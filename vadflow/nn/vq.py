"""A reusable vector quantiser (VQ-VAE's bottleneck), used by MSG-Flow's motion tokens.

``VectorQuantizer(z_e)`` maps every D-dim vector of ``z_e (..., D)`` to its nearest codebook entry
and returns a :class:`VQOutput`:

* ``q``: the quantised vectors with the straight-through estimator, ``z_e + (e - z_e).detach()``:
  the forward value is the code ``e``, the gradient goes to ``z_e`` unchanged;
* ``codes``: the code indices (...,);
* ``commit``: ``||z_e - sg(e)||^2`` per vector (mean over D), pulls the encoder to its code;
* ``codebook``: ``||sg(z_e) - e||^2`` per vector, moves the codes (gradient updates only; ``None``
  with EMA updates, where the codebook follows exponential moving averages instead);
* ``perplexity``: ``exp(entropy)`` of the code usage in this batch (1 = one code, K = uniform).

Codebook updates (``ema``): ``True`` = k-means-like EMA updates of per-code counts and sums
(``decay``, Laplace-smoothed with ``eps``), the codebook is a buffer; ``False`` = the codebook is a
parameter trained by the ``codebook`` term. Either way the codebook is initialised from the first
training batch (random encoder outputs; the ``initialized`` flag is a buffer) and **dead codes are
restarted**: a code whose usage (assignments per batch, EMA with ``usage_decay``, faster than the
codebook's ``decay`` so that early collapse is caught in tens of steps) falls below
``dead_threshold`` times the mean usage of all codes is replaced by an encoder output of the current batch, drawn with probability proportional to its
squared distance from its nearest code (the worst-represented vectors, as in k-means++), and gets
the mean usage, so it has time to attract vectors. Distances are computed in fp32 (safe
under bf16 autocast). Under DDP the EMA statistics are averaged over ranks and rank 0's
initialisation and restarts are broadcast, so every rank keeps the same codebook.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


@dataclass
class VQOutput:
    q: torch.Tensor
    codes: torch.Tensor
    commit: torch.Tensor
    codebook: torch.Tensor | None
    perplexity: torch.Tensor


class VectorQuantizer(nn.Module):
    def __init__(
        self,
        num_codes: int = 32,
        dim: int = 16,
        ema: bool = True,
        decay: float = 0.99,
        eps: float = 1e-5,
        dead_threshold: float = 0.05,
        restart: bool = True,
        usage_decay: float = 0.9,
    ):
        super().__init__()
        if num_codes < 2 or dim < 1 or not 0.0 < decay < 1.0:
            raise ValueError(f"VectorQuantizer needs num_codes >= 2, dim >= 1, 0 < decay < 1 (got {num_codes}, {dim}, {decay})")
        self.num_codes, self.dim, self.ema = int(num_codes), int(dim), bool(ema)
        self.decay, self.eps = float(decay), float(eps)
        self.dead_threshold, self.restart, self.usage_decay = float(dead_threshold), bool(restart), float(usage_decay)
        init = torch.randn(num_codes, dim)
        if self.ema:
            self.register_buffer("embed", init)
            self.register_buffer("cluster_size", torch.ones(num_codes))
            self.register_buffer("embed_sum", init.clone())
        else:
            self.embed = nn.Parameter(init)
        # assignments per batch, EMA: decides which codes are dead (both update modes)
        self.register_buffer("usage", torch.ones(num_codes))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    @property
    def codebook(self) -> torch.Tensor:
        return self.embed

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of ``flat (N, D)`` (fp32 squared distances)."""
        with torch.autocast(device_type=flat.device.type, enabled=False):
            dtype = torch.promote_types(flat.dtype, torch.float32)
            flat, e = flat.to(dtype), self.embed.to(dtype)
            d = (flat**2).sum(1, keepdim=True) - 2 * flat @ e.t() + (e**2).sum(1)[None]
            return d.argmin(1)

    def lookup(self, codes: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
        return F.embedding(codes, self.embed.to(torch.promote_types(self.embed.dtype, dtype)))

    def forward(self, z_e: torch.Tensor, update: bool | None = None) -> VQOutput:
        """``update``: whether to initialise/EMA-update/restart the codebook (default: in training)."""
        update = self.training if update is None else update
        shape = z_e.shape[:-1]
        dtype = torch.promote_types(z_e.dtype, torch.float32)  # at least fp32 (bf16 autocast)
        flat = z_e.to(dtype).reshape(-1, self.dim)
        if update and not bool(self.initialized):
            self._init_from(flat.detach())
        codes = self.nearest(flat.detach())
        onehot = F.one_hot(codes, self.num_codes).to(dtype)
        counts = onehot.sum(0)
        if update:
            self._update(flat.detach(), onehot, counts)
            codes = self.nearest(flat.detach())  # restarted / moved codes may be nearer now
            onehot = F.one_hot(codes, self.num_codes).to(dtype)
            counts = onehot.sum(0)
        e = self.lookup(codes, dtype)
        commit = ((flat - e.detach()) ** 2).mean(1).view(shape)
        codebook = None if self.ema else ((flat.detach() - e) ** 2).mean(1).view(shape)
        q = flat + (e - flat).detach()  # straight-through estimator
        p = counts / counts.sum().clamp_min(1.0)
        perplexity = torch.exp(-(p * torch.log(p + 1e-10)).sum())
        return VQOutput(q.view(*shape, self.dim), codes.view(shape), commit, codebook, perplexity)

    # -- codebook maintenance ------------------------------------------------------------
    @torch.no_grad()
    def _random_rows(self, flat: torch.Tensor, n: int, weights: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` rows of ``flat`` (plus a little noise), uniformly or with probability ~ ``weights``."""
        if weights is not None and float(weights.sum()) > 0:
            idx = torch.multinomial(weights.float(), n, replacement=True)
        else:
            idx = torch.randint(0, flat.shape[0], (n,), device=flat.device)
        rows = flat[idx] + 1e-3 * flat.std() * torch.randn(n, self.dim, device=flat.device)
        if _distributed():
            dist.broadcast(rows, 0)
        return rows

    @torch.no_grad()
    def _init_from(self, flat: torch.Tensor) -> None:
        new = self._random_rows(flat, self.num_codes).to(self.embed.dtype)
        self.embed.data.copy_(new)
        level = flat.shape[0] / self.num_codes  # uniform usage of this batch
        self.usage.fill_(level)
        if self.ema:
            self.cluster_size.fill_(level)
            self.embed_sum.copy_(new * level)
        self.initialized.fill_(1)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, onehot: torch.Tensor, counts: torch.Tensor) -> None:
        with torch.autocast(device_type=flat.device.type, enabled=False):
            sums = onehot.to(flat.dtype).t() @ flat  # (K, D)
        if _distributed():
            stats = torch.cat([counts[:, None], sums], 1)
            dist.all_reduce(stats)
            stats /= dist.get_world_size()
            counts, sums = stats[:, 0], stats[:, 1:]
        self.usage.mul_(self.usage_decay).add_(counts, alpha=1 - self.usage_decay)
        if self.ema:
            self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
            self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            n = self.cluster_size.sum()
            size = (self.cluster_size + self.eps) / (n + self.num_codes * self.eps) * n  # Laplace smoothing
            self.embed.copy_(self.embed_sum / size[:, None])
        if self.restart:
            self.restart_dead(flat)

    @torch.no_grad()
    def restart_dead(self, flat: torch.Tensor) -> int:
        """Replace codes whose usage EMA is below ``dead_threshold`` x the mean usage by encoder
        outputs of this batch, drawn with probability proportional to their squared distance to
        the nearest code (k-means++-like). Returns the number of restarted codes."""
        level = float(self.usage.mean())
        dead = (self.usage < self.dead_threshold * level).to(torch.uint8)
        if _distributed():
            dist.broadcast(dead, 0)
        dead = dead.bool()
        n = int(dead.sum())
        if n == 0:
            return 0
        # k-means++-like: prefer the vectors the current codebook represents worst
        err = (flat - self.lookup(self.nearest(flat), flat.dtype)).pow(2).sum(1)
        new = self._random_rows(flat, n, err).to(self.embed.dtype)
        self.embed.data[dead] = new
        self.usage[dead] = level
        if self.ema:
            self.cluster_size[dead] = level
            self.embed_sum[dead] = new * level
        return n
