"""The base of the trajectory components that wrap a pose method (``trajectory=flow``, ``frame``)."""
from __future__ import annotations

from torch import nn


class PoseWrapper(nn.Module):
    """A module around a pose method (``self.pose``): attributes it does not define itself are the
    pose method's (``seg_len``, ``objective``, ``score_unit``, ...), except those in
    ``not_forwarded``, which must never reach the pose method around the wrapper."""

    not_forwarded: tuple[str, ...] = ()

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "pose" or name in self.not_forwarded:
                raise
            return getattr(super().__getattr__("pose"), name)
