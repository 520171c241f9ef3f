"""DA-Flow's Dual Attention Module (reconstructed; the paper gives only its outline).

Applied to the (B, C, T, V) output of a coupling network's graph/temporal convolution:

* frame attention: mean over joints -> temporal conv (kernel ``frame_kernel``) -> sigmoid gate
  over T: which frames matter;
* skeleton attention: mean over the joints of each body part (a fixed, configurable partition of
  the 18 joints) -> a learned P x P mixing across parts at each frame -> sigmoid gate broadcast back
  to the part's joints: relations between body parts.

``out = h * (1 + (g_frame + g_skeleton) / 2)`` -- the input plus the mean of the two gated maps.
Both branches cost C*C*k + P*P + C + P parameters (56 for C = 2, k = 3, P = 6).
"""
from __future__ import annotations

import torch
from torch import nn

from vadflow.nn.graph import BODY_PARTS
from vadflow.nn.stgcn import conv_over_time


def part_matrix(parts: dict[str, list[int]], n_joints: int) -> torch.Tensor:
    """(V, P) membership matrix; every joint must belong to exactly one part."""
    members = torch.zeros(n_joints, len(parts))
    for p, joints in enumerate(parts.values()):
        members[list(joints), p] = 1.0
    counts = members.sum(1)
    if not torch.all(counts == 1):
        bad = [j for j in range(n_joints) if counts[j] != 1]
        raise ValueError(f"body-part partition must cover each of the {n_joints} joints exactly once; joints {bad} do not")
    return members


class DualAttention(nn.Module):
    def __init__(self, channels: int, n_joints: int = 18, parts: dict | None = None, frame_kernel: int = 3,
                 frame: bool = True, skeleton: bool = True):
        super().__init__()
        members = part_matrix(dict(parts or BODY_PARTS), n_joints)
        self.register_buffer("pool", members / members.sum(0, keepdim=True), persistent=False)  # (V, P) mean
        self.register_buffer("spread", members.t().contiguous(), persistent=False)  # (P, V) broadcast
        n_parts = members.shape[1]
        self.frame = nn.Conv1d(channels, channels, frame_kernel, padding=frame_kernel // 2) if frame else None
        if skeleton:
            self.part_mix = nn.Parameter(torch.eye(n_parts) + 0.01 * torch.randn(n_parts, n_parts))
            self.part_bias = nn.Parameter(torch.zeros(n_parts))
        else:
            self.part_mix = None
        if not (frame or skeleton):
            raise ValueError("DualAttention needs at least one of the frame and skeleton branches")

    def gates(self, h: torch.Tensor) -> list[torch.Tensor]:
        """The gates in part space: frame (B, C, T, 1), skeleton (B, C, T, P)."""
        out = []
        if self.frame is not None:
            out.append(torch.sigmoid(conv_over_time(h.sum(3) * (1.0 / h.shape[3]), self.frame)).unsqueeze(3))
        if self.part_mix is not None:
            parts = h @ self.pool  # (B, C, T, P)
            out.append(torch.sigmoid(parts @ self.part_mix + self.part_bias))
        return out

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        gates = self.gates(h)
        if self.part_mix is None:
            return h * (1.0 + gates[0])
        # every joint is in exactly one part, so spreading (frame + part gates) from parts to joints
        # equals adding the frame gate to the spread part gate: one matmul, then h + h * gate
        gate = gates[-1] if len(gates) == 1 else (gates[0] + gates[1]) * 0.5
        return torch.addcmul(h, h, gate @ self.spread)


__all__ = ["DualAttention", "part_matrix"]
