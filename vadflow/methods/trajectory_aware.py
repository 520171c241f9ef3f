"""Any method plus the trajectory component (``trajectory=flow``): pose and where/how big/how fast.

``TrajectoryAware(pose, trajectory)`` trains both parts together (the trajectory flow's NLL is
added to the pose method's loss; their parameters are disjoint, so each learns its own density)
and scores a window by both. Which score, exactly (``combine``):

* ``max`` (the default, for every method): each part minus its mean over the training windows,
  divided by its std there, and the larger of the two: ``score = max((pose - mu_p) / sd_p,
  (traj - mu_t) / sd_t)``, where ``pose`` is the method's own score and ``traj`` the trajectory
  flow's exact NLL. A window is as anomalous as its more unusual part, so a weak part cannot
  dilute a strong one. The statistics are fitted after training (``fit_statistics``), from
  training windows only, or with ``statistics=held_out`` from normal training clips held out of
  training (``dataset.val_fraction``).
* ``standardised``: the same z-scores, summed.

  Chosen on synthetic data (STG-NF, 3 seeds, ``experiments/logs/trajectory_combine_synthetic.log``;
  rule: the mean AUC-ROC over ``synthetic`` and ``synthetic_global`` and the three protocols):
  max 87.4, standardised sum 85.7, likelihood sum 80.1. Why not the joint likelihood below: a
  pose window has 2 T V = 864 dimensions and its NLL's spread over windows is 40-180x that of
  the trajectory part (per pose dimension), so in the sum the trajectory barely counts.
* ``likelihood`` (methods whose score is an NLL in bits per pose dimension: STG-NF, DA-Flow,
  DSNF): ``score = pose NLL + trajectory NLL / (D ln 2)``, D = 2 T V, i.e. the joint NLL of the
  pair (normalised pose x, trajectory vector g) under the product density
  ``p_pose(x) p_traj(g | camera)``, in bits per pose dimension. With ``normalisation_jacobian``
  the change of variables of the normalisation is added: the window in frame units is
  ``u = s x + m`` (m = mean, s = std(y), over the N detected (frame, joint) locations), and x
  lies on the set {mean 0, std(y) 1}, of dimension 2N - 3; then
  ``-log p(u) = -log p(x) - log p(m, s) + (2N - 3) log s + const``
  (``docs/trajectory.md`` derives it). g holds (m, log s) and also the box motion, which x sees
  too, so the product is a density of (x, g), not of u; the docs say so.
  GMFC-VAE's energy and MSG-Flow's standardised components are not NLLs in bits, so
  ``likelihood`` is a build-time error for them.

``score_parts(batch)`` returns both parts on the score's own scale (``combine_parts`` joins
them): which one drove an alarm.
"""
from __future__ import annotations

import torch
from torch import nn

from vadflow.methods.pose_wrapper import PoseWrapper
from vadflow.nn.flow import training_mean_std
from vadflow.nn.trajectory import TrajectoryFlow, bits_per_pose_dim

COMBINE_RULES = ("max", "standardised", "likelihood")
DEFAULT_COMBINE = "max"
STANDARDISED_RULES = ("max", "standardised")  # rules on the parts' training z-scores
# where the parts' means and stds come from: the training windows, or whole normal training clips held
# out of training (dataset.val_fraction), on which a part that fits its training windows too closely
# spreads as it does on unseen normal data
STATISTICS_SPLITS = ("training", "held_out")


class TrajectoryAware(PoseWrapper):
    needs_trajectory = True  # batches carry traj / norm / camera
    not_forwarded = ("trajectory",)

    @property
    def reads_trajectory_summary(self) -> bool:
        """Whether training batches should carry ``traj_summary`` (``PoseDataModule(trajectory_summary=True)``)."""
        return self.trajectory.features == "summary"

    def __init__(self, pose: nn.Module, trajectory: TrajectoryFlow, combine: str = DEFAULT_COMBINE, normalisation_jacobian: bool = False,
                 seg_len: int | None = None, statistics: str = "training"):
        super().__init__()
        if statistics not in STATISTICS_SPLITS:
            raise ValueError(f"trajectory statistics must be one of {STATISTICS_SPLITS}, got {statistics!r}")
        if statistics != "training" and combine not in STANDARDISED_RULES:
            raise ValueError(f"trajectory.statistics={statistics} standardises the parts: it needs combine=max or standardised")
        self.statistics_split = statistics
        if combine not in COMBINE_RULES:
            raise ValueError(f"trajectory combine must be one of {COMBINE_RULES}, got {combine!r}")
        if combine == "likelihood" and getattr(pose, "score_unit", None) != "bits/dim":
            raise ValueError(f"{type(pose).__name__}'s score is not an NLL in bits per dimension: "
                             "combine=likelihood needs one (use combine=max or standardised)")
        if normalisation_jacobian and combine != "likelihood":
            raise ValueError("normalisation_jacobian is a term of the likelihood: it needs combine=likelihood")
        pose_len = int(getattr(pose, "seg_len", seg_len or trajectory.seg_len))
        if {pose_len, trajectory.seg_len, int(seg_len or pose_len)} != {pose_len}:
            raise ValueError(f"window lengths differ: pose model {pose_len}, trajectory {trajectory.seg_len}, config {seg_len}")
        self.pose, self.trajectory = pose, trajectory
        self.combine, self.normalisation_jacobian = combine, bool(normalisation_jacobian)
        # standardised: mean / std of (pose score, trajectory NLL) over training windows
        self.register_buffer("part_mean", torch.zeros(2))
        self.register_buffer("part_std", torch.ones(2))
        self.register_buffer("parts_fitted", torch.tensor(0, dtype=torch.uint8))

    # -- training -----------------------------------------------------------------------
    def trajectory_bits(self, batch: dict) -> torch.Tensor:
        return bits_per_pose_dim(self.trajectory.nll(batch), batch["x"][0].numel())

    def loss(self, batch: dict) -> dict:
        out = self.pose.loss(batch)
        traj = self.trajectory_bits(batch)
        out["loss"] = out["loss"] + traj.mean()
        out["trajectory_nll"] = traj.detach().mean()
        return out

    # -- scoring ------------------------------------------------------------------------
    def jacobian_bits(self, batch: dict) -> torch.Tensor:
        """(2N - 3) log s in bits per pose dimension (N detected locations of the window)."""
        n = batch["vis"].flatten(1).sum(1).float() if getattr(self.pose, "score_visible_only", False) else torch.full(
            (batch["x"].shape[0],), float(batch["x"][0, 0].numel()), device=batch["x"].device)
        return bits_per_pose_dim((2 * n - 3).clamp_min(0) * batch["norm"][:, 2].float(), batch["x"][0].numel())

    def score_parts(self, batch: dict) -> dict[str, torch.Tensor]:
        """The score's two parts, (B,) each, on its own scale (``combine_parts`` joins them)."""
        pose = self.pose.score(batch).float()
        traj = self.trajectory_bits(batch)
        if self.combine in STANDARDISED_RULES:
            if not bool(self.parts_fitted):
                raise RuntimeError(f"combine={self.combine} needs fit_statistics(training windows) first")
            pose = (pose - self.part_mean[0]) / self.part_std[0]
            traj = (traj - self.part_mean[1]) / self.part_std[1]
        elif self.normalisation_jacobian:
            traj = traj + self.jacobian_bits(batch)
        return {"pose": pose, "trajectory": traj}

    def combine_parts(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """``max``: the larger part; ``standardised`` and ``likelihood``: their sum."""
        if self.combine == "max":
            return torch.maximum(parts["pose"], parts["trajectory"])
        return parts["pose"] + parts["trajectory"]

    def score(self, batch: dict) -> torch.Tensor:
        return self.combine_parts(self.score_parts(batch))

    @torch.no_grad()
    def fit_statistics(self, loader) -> None:
        """The pose method's own statistics first (if it has any), then, for ``max`` / ``standardised``, the
        mean and std of both parts over the training windows (eval mode, fp32)."""
        if hasattr(self.pose, "fit_statistics"):
            self.pose.fit_statistics(loader)
        if self.combine not in STANDARDISED_RULES:
            return
        columns = lambda b: torch.stack([self.pose.score(b).float(), self.trajectory_bits(b)], 1)  # noqa: E731
        mean, std = training_mean_std(self, loader, columns, self.part_mean.device)
        self.part_mean.copy_(mean)
        self.part_std.copy_(std)
        self.parts_fitted.fill_(1)
