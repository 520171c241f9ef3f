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

from vadflow.methods.flow_head import PoseFlow
from vadflow.nn.backbones import DualSpace


class DSNF(PoseFlow):
    """The flow head with DSNF's dual-space coupling networks (``backbone=dual_space``); every
    other keyword (``seg_len``, ``K``, ``R``, ``objective``...) is the head's."""

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
        temporal_kernel: int | None = None,
        max_hop: int = 8,
        **head,
    ):
        backbone = DualSpace(hyp_channels=hyp_channels, hyp_graph=hyp_graph, hyp_max_hop=hyp_max_hop,
                             hyp_temporal_kernel=hyp_temporal_kernel, curvature=curvature, learnable_curvature=learnable_curvature,
                             max_tangent_norm=max_tangent_norm, compile_hyperbolic=compile_hyperbolic,
                             temporal_kernel=temporal_kernel, max_hop=max_hop)
        super().__init__(backbone=backbone, **head)
