"""The ST-GCN block STG-NF uses as its coupling network (parameter names match the official code).

Speed: with STG-NF's graph (uniform strategy, 8 hops) every entry of A is 1/V, so the graph
convolution is a mean over joints and everything after it (BN, ReLU, temporal conv, BN) is the
same for every joint. ``STGCNBlock`` detects such an A and runs that branch once per (window,
frame) instead of once per joint: identical maths, ~V times less work. (The only difference is in
BatchNorm's running-variance update, whose unbiased n/(n-1) factor then counts B*T rather than
B*T*V elements: a 1e-4 relative change.) Tiny 1x1 convolutions run as einsums, because oneDNN's
convolution is slow for 1-2 channels on CPU.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pointwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution without oneDNN (same parameters, much faster for few channels)."""
    w = conv.weight[:, :, 0, 0]
    if w.shape[1] == 1:  # one input channel: a broadcast multiply
        y = x * w.view(1, -1, 1, 1)
    else:
        y = torch.einsum("bctv,oc->botv", x, w)
    return y + conv.bias.view(1, -1, 1, 1) if conv.bias is not None else y


def temporal_conv(conv: nn.Conv2d, h: torch.Tensor) -> torch.Tensor:
    """A (k, 1) convolution over time as unfold + matmul: for 2 channels this is several times
    faster than oneDNN's convolution, forward and backward."""
    b, c, t, v = h.shape
    k, pad = conv.kernel_size[0], conv.padding[0]
    cols = F.pad(h, (0, 0, pad, pad)).unfold(2, k, 1)  # (B, C, T, V, k)
    cols = cols.permute(0, 2, 3, 1, 4).reshape(b, t, v, c * k)
    y = cols @ conv.weight.view(conv.out_channels, c * k).t() + conv.bias  # (B, T, V, O)
    return y.permute(0, 3, 1, 2)


def is_joint_mean(A: torch.Tensor) -> bool:
    """One adjacency slice whose entries are all 1/V (up to float noise): aggregation = mean over joints."""
    return A.shape[0] == 1 and bool(torch.allclose(A, torch.full_like(A, 1.0 / A.shape[-1]), atol=1e-7))


def graph_features(gcn: "GraphConv", x: torch.Tensor, A: torch.Tensor, joint_mean: bool) -> torch.Tensor:
    """The graph convolution, once per frame (B, C, T, 1) when A is a joint mean, else per joint."""
    return pointwise(gcn.conv, x.mean(dim=3, keepdim=True)) if joint_mean else gcn(x, A)


class GraphConv(nn.Module):
    """1x1 conv to ``out * K`` channels, then aggregation over joints with the K adjacency slices."""

    def __init__(self, in_channels: int, out_channels: int, n_slices: int = 1):
        super().__init__()
        self.n_slices = n_slices
        self.conv = nn.Conv2d(in_channels, out_channels * n_slices, kernel_size=1)

    def forward(self, x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        x = pointwise(self.conv, x)
        n, kc, t, v = x.shape
        x = x.view(n, self.n_slices, kc // self.n_slices, t, v)
        return torch.einsum("nkctv,kvw->nctw", x, A)


class STGCNBlock(nn.Module):
    """gcn -> BN -> ReLU -> temporal conv -> BN (+ residual) -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, temporal_kernel: int, A: torch.Tensor, residual: bool = True):
        super().__init__()
        self.register_buffer("A", A.clone(), persistent=False)
        self.joint_mean = is_joint_mean(A)
        self.gcn = GraphConv(in_channels, out_channels, A.shape[0])
        pad = (temporal_kernel - 1) // 2
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, (temporal_kernel, 1), padding=(pad, 0)),
            nn.BatchNorm2d(out_channels),
        )
        if residual:
            self.residual = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
        else:
            self.residual = None

    def temporal(self, h: torch.Tensor) -> torch.Tensor:
        bn1, relu, conv, bn2 = self.tcn
        return bn2(temporal_conv(conv, relu(bn1(h))))

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        res = self.residual[1](pointwise(self.residual[0], x)) if self.residual is not None else 0.0
        out = self.temporal(graph_features(self.gcn, x, self.A, self.joint_mean)) + res
        return torch.relu(out.expand(-1, -1, -1, x.shape[3]))  # mean path without residual: (B, C, T, 1)
