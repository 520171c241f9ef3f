"""One file per method. A method is a plain ``nn.Module`` with

* ``loss(batch) -> dict[str, Tensor]`` whose ``"loss"`` entry is optimised, and
* ``score(batch) -> Tensor[B]``: the per-window *anomaly* score (higher = more anomalous).

A batch is a dict: ``x`` (B, 2, T, V) normalised coordinates, ``vis`` (B, T, V) joint visibility,
``index`` (B,) window index in the dataset. Methods know nothing of Lightning, Hydra, files or AUC.
Each declares ``loss_terms()``, the names of the per-sample terms its objective weights.

The flow methods are presets of one head (``flow_head.PoseFlow``) with a backbone from
``vadflow.nn.backbones`` and an optional conditioner (``vadflow.nn.tokens``); GMFC-VAE takes its
encoder/decoder blocks from the same backbones where the shapes allow.
"""
from vadflow.methods.baselines import BodyHeight, CentreSpeed
from vadflow.methods.daflow import DAFlow
from vadflow.methods.dsnf import DSNF
from vadflow.methods.gmfcvae import GMFCVAE
from vadflow.methods.msgflow import MSGFlow
from vadflow.methods.stgnf import STGNF

METHODS = {"stgnf": STGNF, "daflow": DAFlow, "dsnf": DSNF, "gmfcvae": GMFCVAE, "msgflow": MSGFlow}
BASELINES = {"height_baseline": BodyHeight, "speed_baseline": CentreSpeed}  # nothing learned


def _allowed() -> list[dict]:
    """Every head x backbone x conditioner x loss that builds and trains (``tests/test_composition.py``
    holds each to the method contract); anything else is refused when it is built, in one line."""
    flows = [dict(head="flow", backbone=b, conditioner=c, loss=l)
             for b in ("stgcn", "dual_attention", "dual_space") for c in ("none", "vq_tokens", "camera")
             for l in ("nll", "awam") + (("vq",) if c == "vq_tokens" else ())]
    vaes = [dict(head="vae", backbone=b, conditioner="none", loss=l) for b in ("st_conv", "stgcn") for l in ("nll", "awam", "gmm_energy")]
    return flows + vaes


ALLOWED_COMBINATIONS = _allowed()


def needs_trajectory(method) -> bool:
    """Whether a method's batches must carry the box trajectory and camera (``traj``, ``norm``,
    ``camera``): it says so itself (the trajectory components, a camera-conditioned flow, the
    body-height baseline)."""
    return bool(getattr(method, "needs_trajectory", False))


def reads_trajectory_summary(method) -> bool:
    """Whether a method reads each window's trajectory summary (``traj_summary``), which the data
    then keeps per window instead of the method computing it on every batch."""
    return bool(getattr(method, "reads_trajectory_summary", False))


__all__ = ["ALLOWED_COMBINATIONS", "BASELINES", "METHODS", "needs_trajectory", "reads_trajectory_summary", "BodyHeight", "CentreSpeed", "DAFlow", "DSNF", "GMFCVAE", "MSGFlow", "STGNF"]
