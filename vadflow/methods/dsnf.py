"""DSNF (Leng et al., IEEE TIP 2025), reconstructed from the abstract: STG-NF whose coupling
network is a Dual-Space Parallel GCN -- a Euclidean ST-GCN branch (STG-NF's block: local joint
detail) next to a hyperbolic graph-conv branch on a Poincare ball (``vadflow.nn.hyperbolic``:
hierarchical relations), fused by a sum *before* shift and scale are read off, so the
coupling stays affine in z2 and the flow's log-determinant stays exact. Train it with
``loss=awam`` (``vadflow.losses.AWAM``), DSNF's adaptive re-weighting; ``loss=nll`` is the ablation.

Options: curvature ``c`` (fixed 1.0 by default, ``learnable_curvature``), hyperbolic width, the
hyperbolic branch's graph (``hyp_graph``: the body-part tree rooted at the torso, or the joints
with ``hyp_max_hop`` neighbourhoods), tangent-norm clip, ``compile_hyperbolic`` (``torch.compile`` the hyperbolic layer: same
maths, ~1.6x faster training on CPU; on in the config, off in the bare class).
"""
from __future__ import annotations

import torch
from torch import nn

from vadflow.methods.stgnf import STGNF
from vadflow.nn.attention import part_matrix
from vadflow.nn.graph import BODY_PARTS, part_adjacency, uniform_adjacency
from vadflow.nn.hyperbolic import HyperbolicGraphConv, poincare_ball
from vadflow.nn.stgcn import STGCNBlock, pointwise


class DualSpaceCoupling(nn.Module):
    """Euclidean ST-GCN block + hyperbolic graph conv on the same input, summed.

    ``pool`` (V, N) / ``spread`` (N, V): the hyperbolic branch's nodes. Joints: identities. Body
    parts (default): the mean of each part's joints in, the part's output copied to its joints
    out -- the skeleton's hierarchy (torso -> limbs) on 6 nodes, 3x less hyperbolic arithmetic."""

    def __init__(self, euclidean: STGCNBlock, in_channels: int, out_channels: int, hyp_channels: int,
                 A_hyp: torch.Tensor, ball, temporal_kernel: int, max_tangent_norm: float,
                 pool: torch.Tensor | None = None, spread: torch.Tensor | None = None, compile: bool = False):
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


class DSNF(STGNF):
    """DSNF's own options; every other keyword (``seg_len``, ``K``, ``R``, ``objective``...) is
    STG-NF's and goes to :class:`STGNF`."""

    def __init__(
        self,
        hyp_channels: int = 4,
        hyp_graph: str = "parts",
        hyp_max_hop: int = 1,
        hyp_temporal_kernel: int = 3,
        curvature: float = 1.0,
        learnable_curvature: bool = False,
        max_tangent_norm: float = 2.0,
        compile_hyperbolic: bool = False,
        **flow_args,
    ):
        n_joints = flow_args.get("n_joints", 18)
        self._hyp = dict(hyp_channels=hyp_channels, temporal_kernel=hyp_temporal_kernel, max_tangent_norm=max_tangent_norm,
                         compile=compile_hyperbolic)
        if hyp_graph == "joints":
            self._hyp["A_hyp"] = torch.from_numpy(uniform_adjacency(n_joints, max_hop=hyp_max_hop))[0]
        elif hyp_graph == "parts":
            members = part_matrix(BODY_PARTS, n_joints)
            self._hyp.update(A_hyp=torch.from_numpy(part_adjacency()), pool=members / members.sum(0, keepdim=True),
                             spread=members.t().contiguous())
        else:
            raise ValueError(f"DSNF: hyp_graph must be joints or parts, got {hyp_graph!r}")
        self._curvature = (curvature, learnable_curvature)
        super().__init__(**flow_args)

    def coupling_net(self, k, in_channels, out_channels, kernel, A):
        if not hasattr(self, "ball"):  # one ball (one curvature) shared by every step
            self.ball = poincare_ball(*self._curvature)
        block = super().coupling_net(k, in_channels, out_channels, kernel, A)
        return DualSpaceCoupling(block, in_channels, out_channels, ball=self.ball, **self._hyp)
