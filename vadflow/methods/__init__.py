"""One file per method. A method is a plain ``nn.Module`` with

* ``loss(batch) -> dict[str, Tensor]`` whose ``"loss"`` entry is optimised, and
* ``score(batch) -> Tensor[B]``: the per-window *anomaly* score (higher = more anomalous).

A batch is a dict: ``x`` (B, 2, T, V) normalised coordinates, ``vis`` (B, T, V) joint visibility,
``index`` (B,) window index in the dataset. Methods know nothing of Lightning, Hydra, files or AUC.
"""
from vadflow.methods.baselines import BodyHeight, CentreSpeed
from vadflow.methods.daflow import DAFlow
from vadflow.methods.dsnf import DSNF
from vadflow.methods.gmfcvae import GMFCVAE
from vadflow.methods.msgflow import MSGFlow
from vadflow.methods.stgnf import STGNF

METHODS = {"stgnf": STGNF, "daflow": DAFlow, "dsnf": DSNF, "gmfcvae": GMFCVAE, "msgflow": MSGFlow}
BASELINES = {"height_baseline": BodyHeight, "speed_baseline": CentreSpeed}  # nothing learned


def needs_trajectory(method) -> bool:
    """Whether a method's batches must carry the box trajectory and camera (``traj``, ``norm``,
    ``camera``): it says so itself (the trajectory-aware wrapper, the body-height baseline)."""
    return bool(getattr(method, "needs_trajectory", False))

__all__ = ["BASELINES", "METHODS", "needs_trajectory", "BodyHeight", "CentreSpeed", "DAFlow", "DSNF", "GMFCVAE", "MSGFlow", "STGNF"]
