"""STG-NF (Hirschorn & Avidan, ICCV 2023), an exact port of the official ``orhir/STG-NF`` model.

K flow steps (ActNorm -> channel reversal -> affine coupling with an ST-GCN coupling network)
map a (2, T, 18) pose window to z; the prior is N(R, I) for normal data. The window's anomaly
score is its NLL in bits per dimension (the official code reports ``-NLL`` as a normality score;
scoring flips the sign once, in ``vadflow.scoring``).

Trainable parameters: 616 at T = 24, 488 at T = 16. ``load_official_state_dict`` reads the
released checkpoints (``flow.layers.k.actnorm`` / ``flow.layers.k.block.0``).
"""
from __future__ import annotations

import torch
from vadflow.methods.flow_head import PoseFlow
from vadflow.nn.backbones import STGCN


class STGNF(PoseFlow):
    """The flow head with STG-NF's ST-GCN coupling networks (``backbone=stgcn``); every other
    keyword (``seg_len``, ``K``, ``R``, ``objective``, ...) is the head's. ``temporal_kernel`` and
    ``max_hop`` are the backbone's options (``conf/backbone/stgcn.yaml``), kept here so that every
    STG-NF checkpoint rebuilds from its own config."""

    def __init__(self, temporal_kernel: int | None = None, max_hop: int = 8, **head):
        super().__init__(backbone=STGCN(temporal_kernel=temporal_kernel, max_hop=max_hop), **head)


def is_official_checkpoint(ckpt: dict) -> bool:
    return "state_dict" in ckpt and any(k.startswith("flow.layers.") for k in ckpt["state_dict"])


def load_official_state_dict(model: STGNF, state_dict: dict) -> None:
    """Load an ``orhir/STG-NF`` checkpoint's state_dict into :class:`STGNF` (strict on the flow)."""
    mapped = {}
    for key, value in state_dict.items():
        if not key.startswith("flow.layers."):
            continue  # prior_h*: the prior is the constant N(R, I), not a parameter
        _, _, k, rest = key.split(".", 3)
        if rest.startswith("block.0."):
            rest = "coupling.net." + rest[len("block.0.") :]
        mapped[f"flow.steps.{k}.{rest}"] = value
    for name, buf in model.state_dict().items():
        if name.endswith("actnorm.initialized"):
            mapped[name] = torch.ones_like(buf)  # a trained checkpoint is initialised
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    missing = [m for m in missing if not m.endswith(".objective")]
    if missing or unexpected:
        raise ValueError(f"official STG-NF checkpoint does not match: missing {missing}, unexpected {unexpected}")
