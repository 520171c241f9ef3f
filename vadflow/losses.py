"""Training objectives over per-sample quantities. Methods hand them per-sample values; the
objective reduces them to the scalar that is optimised (``conf/loss``)."""
from __future__ import annotations

import torch
from torch import nn


class MeanNLL(nn.Module):
    """Plain maximum likelihood: the mean of the per-sample NLL (bits per dimension)."""

    def forward(self, nll: torch.Tensor, batch: dict | None = None) -> torch.Tensor:
        return nll.mean()
