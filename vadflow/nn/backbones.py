"""Backbones (``conf/backbone``): the networks a head builds its layers from.

A flow head (``vadflow.methods.flow_head.PoseFlow``) asks its backbone for step k's coupling
network, ``backbone.coupling(k, in_channels, out_channels, seg_len, n_joints, cond_channels)``:
a module ``net(z1, cond) -> (B, out_channels, T, V)`` that the affine coupling reads shift and
scale from, so every backbone keeps the flow's log-determinant exact. A VAE head
(``GMFCVAE``) asks ``backbone.block(channels, A, temporal_kernel)`` for its encoder/decoder blocks.

* ``STGCN``: STG-NF's ST-GCN block (graph conv -> temporal conv, residual from step 1 on);
  with a condition, the condition's 1x1 projection is added to the graph features (MSG-Flow).
* ``DualAttention``: that block followed by DA-Flow's Dual Attention Module.
* ``DualSpace``: that block next to DSNF's hyperbolic graph conv on a Poincare ball, summed.

A backbone that cannot serve a head says so in one line when the head is built
(``BackboneMismatch``), never by dropping a condition or an option.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vadflow.data.types import ConfigError
from vadflow.nn.attention import DualAttention as DualAttentionModule
from vadflow.nn.attention import part_matrix
from vadflow.nn.graph import BODY_PARTS, part_adjacency, uniform_adjacency
from vadflow.nn.stgcn import STGCNBlock, pointwise


class BackboneMismatch(ConfigError):
    """A head x backbone x conditioner combination that cannot work, named at build time."""


def default_temporal_kernel(seg_len: int) -> int:
    """STG-NF's temporal kernel, ``seg_len // 2 + 1`` (13 for its 24 frames), rounded up to odd:
    an even kernel under the block's symmetric padding returns one frame fewer than it was given."""
    kernel = seg_len // 2 + 1
    return kernel + 1 - kernel % 2


class STGCN:
    """STG-NF's coupling network. ``temporal_kernel`` null = :func:`default_temporal_kernel`; ``max_hop`` 8 over
    the 18-joint skeleton makes the graph conv a joint mean (STG-NF); ``hidden`` null = as many
    channels as the coupling's output."""

    name = "stgcn"

    def __init__(self, temporal_kernel: int | None = None, max_hop: int = 8, hidden: int | None = None):
        if temporal_kernel is not None and int(temporal_kernel) % 2 == 0:
            raise ConfigError(f"backbone.temporal_kernel must be odd (a same-length output), got {temporal_kernel}")
        self.temporal_kernel, self.max_hop, self.hidden = temporal_kernel, int(max_hop), hidden

    def adjacency(self, n_joints: int) -> torch.Tensor:
        return torch.from_numpy(uniform_adjacency(n_joints, max_hop=self.max_hop))

    def shared_modules(self) -> dict[str, nn.Module]:
        """Modules every step shares, registered once on the head (their state-dict names)."""
        return {}

    def coupling(self, k: int, in_channels: int, out_channels: int, seg_len: int, n_joints: int,
                 cond_channels: int = 0) -> nn.Module:
        kernel = self.temporal_kernel or default_temporal_kernel(seg_len)
        return STGCNBlock(in_channels, out_channels, kernel, self.adjacency(n_joints), residual=k > 0, hidden=self.hidden,
                          cond_channels=cond_channels)

    def block(self, channels: int, A: torch.Tensor, temporal_kernel: int) -> nn.Module:
        """An encoder/decoder block for a VAE head, channels-last (B, T, V, C) in and out: the
        ST-GCN block on this backbone's graph (``max_hop``), with its ``temporal_kernel`` or, when
        that is null, the head's."""
        A = self.adjacency(A.shape[-1])
        return ChannelsLast(STGCNBlock(channels, channels, self.temporal_kernel or temporal_kernel, A, residual=True))


class ChannelsLast(nn.Module):
    """A (B, C, T, V) block on channels-last maps, as GMFC-VAE's encoder/decoder carries them."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.block(h.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class AttentiveCoupling(nn.Module):
    """ST-GCN block (graph + temporal conv) followed by the Dual Attention Module."""

    def __init__(self, block: STGCNBlock, attention: DualAttentionModule):
        super().__init__()
        self.block = block
        self.attention = attention

    def forward(self, z1: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.attention(self.block(z1, cond))


class DualAttention(STGCN):
    """DA-Flow's coupling network: the ST-GCN block, then frame and body-part attention gates."""

    name = "dual_attention"

    def __init__(self, frame_attention: bool = True, skeleton_attention: bool = True, frame_kernel: int = 3,
                 body_parts: dict | None = None, **stgcn):
        super().__init__(**stgcn)
        self.attention = dict(parts=body_parts, frame_kernel=frame_kernel, frame=frame_attention, skeleton=skeleton_attention)

    def coupling(self, k, in_channels, out_channels, seg_len, n_joints, cond_channels=0):
        block = super().coupling(k, in_channels, out_channels, seg_len, n_joints, cond_channels)
        return AttentiveCoupling(block, DualAttentionModule(out_channels, n_joints=n_joints, **self.attention))

    def block(self, channels, A, temporal_kernel):
        raise BackboneMismatch("backbone=dual_attention builds flow coupling networks only; a VAE head takes backbone=stgcn or st_conv")


class DualSpaceCoupling(nn.Module):
    """Euclidean ST-GCN block + hyperbolic graph conv on the same input, summed.

    ``pool`` (V, N) / ``spread`` (N, V): the hyperbolic branch's nodes. Joints: identities. Body
    parts (default): the mean of each part's joints in, the part's output copied to its joints
    out -- the skeleton's hierarchy (torso -> limbs) on 6 nodes, 3x less hyperbolic arithmetic."""

    def __init__(self, euclidean: STGCNBlock, in_channels: int, out_channels: int, hyp_channels: int,
                 A_hyp: torch.Tensor, ball, temporal_kernel: int, max_tangent_norm: float,
                 pool: torch.Tensor | None = None, spread: torch.Tensor | None = None, compile: bool = False):
        from vadflow.nn.hyperbolic import HyperbolicGraphConv

        super().__init__()
        self.euclidean = euclidean
        self.register_buffer("pool", pool, persistent=False)
        self.register_buffer("spread", spread, persistent=False)
        self.lift = nn.Conv2d(in_channels, hyp_channels, 1)  # Euclidean input -> tangent vectors at 0
        self.hyperbolic = HyperbolicGraphConv(hyp_channels, hyp_channels, A_hyp, ball, temporal_kernel, max_tangent_norm,
                                              compile=compile)
        self.fuse = nn.Conv2d(hyp_channels, out_channels, 1)
        nn.init.normal_(self.fuse.weight, std=0.01)  # start close to STG-NF; the branch grows in
        nn.init.zeros_(self.fuse.bias)

    def forward(self, z1: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h_euc = self.euclidean(z1, cond)
        # pool first (a part mean, columns summing to 1), then lift: the same as lifting every
        # joint and pooling, on 3x fewer numbers
        u = pointwise(self.lift, z1 @ self.pool if self.pool is not None else z1)
        h_hyp = pointwise(self.fuse, torch.relu(self.hyperbolic(u)))
        if self.spread is not None:
            h_hyp = h_hyp @ self.spread
        return h_euc + h_hyp.to(h_euc.dtype)


class DualSpace(STGCN):
    """DSNF's coupling network: the ST-GCN block next to a hyperbolic graph conv, summed before
    shift and scale are read off. One Poincare ball (one curvature) is shared by every step."""

    name = "dual_space"

    def __init__(self, hyp_channels: int = 4, hyp_graph: str = "parts", hyp_max_hop: int = 1, hyp_temporal_kernel: int = 3,
                 curvature: float = 1.0, learnable_curvature: bool = False, max_tangent_norm: float = 2.0,
                 compile_hyperbolic: bool = False, **stgcn):
        super().__init__(**stgcn)
        if hyp_graph not in ("joints", "parts"):
            raise ValueError(f"DSNF: hyp_graph must be joints or parts, got {hyp_graph!r}")
        self.hyp = dict(hyp_channels=hyp_channels, temporal_kernel=hyp_temporal_kernel, max_tangent_norm=max_tangent_norm,
                        compile=compile_hyperbolic)
        self.hyp_graph, self.hyp_max_hop = hyp_graph, int(hyp_max_hop)
        self.curvature = (float(curvature), bool(learnable_curvature))
        self._ball = None

    @property
    def ball(self):
        if self._ball is None:
            from vadflow.nn.hyperbolic import poincare_ball

            self._ball = poincare_ball(*self.curvature)
        return self._ball

    def shared_modules(self):
        return {"ball": self.ball}

    def graph(self, n_joints: int) -> dict:
        if self.hyp_graph == "joints":
            return {"A_hyp": torch.from_numpy(uniform_adjacency(n_joints, max_hop=self.hyp_max_hop))[0]}
        members = part_matrix(BODY_PARTS, n_joints)
        return {"A_hyp": torch.from_numpy(part_adjacency()), "pool": members / members.sum(0, keepdim=True),
                "spread": members.t().contiguous()}

    def coupling(self, k, in_channels, out_channels, seg_len, n_joints, cond_channels=0):
        ball = self.ball  # before the block: the order DSNF has always drawn its initial weights in
        block = super().coupling(k, in_channels, out_channels, seg_len, n_joints, cond_channels)
        return DualSpaceCoupling(block, in_channels, out_channels, ball=ball, **self.hyp, **self.graph(n_joints))

    def block(self, channels, A, temporal_kernel):
        raise BackboneMismatch("backbone=dual_space builds flow coupling networks only; a VAE head takes backbone=stgcn or st_conv")


def conv1x1(conv: nn.Conv2d, h: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution on a channels-last map (B, T, V, C) as one fused GEMM (same parameters)."""
    b, t, v, c = h.shape
    w = conv.weight.view(conv.out_channels, c).t()
    return torch.addmm(conv.bias, h.reshape(-1, c), w).view(b, t, v, conv.out_channels)


class STConvBlock(nn.Module):
    """Spatio-temporal block on channels-last maps (B, T, V, C)::

        out = act(TemporalConv_k(A_agg(h)) + h)

    ``A_agg`` averages every joint with its skeleton neighbours (column-normalised adjacency within
    ``max_hop`` hops, no parameters), the (k, 1) convolution over time mixes channels. A 1x1 graph
    convolution before it would be redundant (two linear maps in a row), so the block is a graph
    convolution whose channel mixing is folded into the temporal kernel. Computed as one batched
    neighbour matmul, a time-unfold and one GEMM: several times faster on CPU than oneDNN here."""

    def __init__(self, channels: int, A: torch.Tensor, temporal_kernel: int):
        super().__init__()
        self.register_buffer("At", A[0].t().contiguous().clone(), persistent=False)  # (V, V): out joint <- in joints
        self.tcn = nn.Conv2d(channels, channels, (temporal_kernel, 1), padding=((temporal_kernel - 1) // 2, 0))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, v, c = h.shape
        a = torch.matmul(self.At.to(h.dtype), h.reshape(b * t, v, c)).view(b, t, v, c)
        k, pad = self.tcn.kernel_size[0], self.tcn.padding[0]
        ap = F.pad(a, (0, 0, 0, 0, pad, pad))
        cols = torch.cat([ap[:, j : j + t] for j in range(k)], dim=-1)  # (B, T, V, k*C), tap-major
        w = self.tcn.weight[..., 0].permute(2, 1, 0).reshape(k * c, c)  # (k*C_in, C_out)
        y = torch.addmm(self.tcn.bias, cols.reshape(-1, k * c), w.to(cols.dtype)).view(b, t, v, c)
        return F.relu(y + h)


class STConv:
    """GMFC-VAE's own encoder/decoder block (:class:`STConvBlock`); a flow head cannot use it."""

    name = "st_conv"

    def shared_modules(self):
        return {}

    def coupling(self, *args, **kwargs):
        raise BackboneMismatch("backbone=st_conv is GMFC-VAE's encoder block; a flow head takes backbone=stgcn, dual_attention or dual_space")

    def block(self, channels, A, temporal_kernel):
        return STConvBlock(channels, A, temporal_kernel)


BACKBONES = {b.name: b for b in (STGCN, DualAttention, DualSpace, STConv)}
