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

__all__ = ["BASELINES", "METHODS", "BodyHeight", "CentreSpeed", "DAFlow", "DSNF", "GMFCVAE", "MSGFlow", "STGNF"]
