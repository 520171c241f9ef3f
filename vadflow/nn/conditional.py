"""A conditional ST-GCN coupling network: STG-NF's block whose hidden features also see a condition.

``CondSTGCNBlock(z1, cond)`` with ``z1 (B, C_in, T, V)`` and ``cond (B, D, T, 1)`` or
``(B, D, T, V)``: graph conv of ``z1`` to ``hidden`` channels, plus a 1x1 projection of ``cond``
(added), then BN -> ReLU -> temporal conv -> BN (+ residual of ``z1``) -> ReLU, as
:class:`vadflow.nn.stgcn.STGCNBlock`. Used as ``net(z1, cond)`` inside
:class:`vadflow.nn.flow.AffineCoupling`: the coupling's log-determinant stays exact because the
condition is held fixed while ``z2`` is transformed. ``cond=None`` drops the condition (the block is
then an STG-NF block with ``hidden`` channels before the temporal conv).
"""
from __future__ import annotations

import torch
from torch import nn

from vadflow.nn.stgcn import GraphConv, graph_features, is_joint_mean, pointwise, temporal_conv


class CondSTGCNBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, cond_channels: int, hidden: int,
                 temporal_kernel: int, A: torch.Tensor, residual: bool = True):
        super().__init__()
        self.register_buffer("A", A.clone(), persistent=False)
        self.joint_mean = is_joint_mean(A)  # run the branch once per frame (see stgcn.py)
        self.gcn = GraphConv(in_channels, hidden, A.shape[0])
        self.cond = nn.Conv2d(cond_channels, hidden, kernel_size=1)
        pad = (temporal_kernel - 1) // 2
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, out_channels, (temporal_kernel, 1), padding=(pad, 0)),
            nn.BatchNorm2d(out_channels),
        )
        self.residual = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels)) if residual else None

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        res = self.residual[1](pointwise(self.residual[0], x)) if self.residual is not None else 0.0
        h = graph_features(self.gcn, x, self.A, self.joint_mean)
        if cond is not None:
            h = h + pointwise(self.cond, cond.to(h.dtype))  # (B, H, T, 1 or V): broadcasts over joints
        bn1, relu, conv, bn2 = self.tcn
        out = bn2(temporal_conv(conv, relu(bn1(h)))) + res
        return torch.relu(out.expand(-1, -1, -1, x.shape[3]))
