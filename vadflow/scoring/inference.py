"""A method's anomaly score for every window of a split, in this process, without Lightning
(``vadflow-score``, calibration, the nothing-learned baselines). Training and ``vadflow-eval``
score the same windows through the LightningModule, so DDP can share the work."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vadflow.data.types import DataError


@dataclass
class WindowScores:
    """One anomaly score per window (window ``i`` of the ``ScoringWindows``), and with methods that
    split their score (``score_parts``, e.g. pose and trajectory) each part per window."""

    score: np.ndarray  # (N,) float64
    parts: dict[str, np.ndarray] | None = None


def score_windows(method, windows, batch_size: int = 4096) -> WindowScores:
    scores = np.empty(windows.n)
    parts = {} if hasattr(method, "score_parts") else None
    was_training = method.training
    method.eval()  # batch norm must use its running statistics (Lightning leaves modules in train mode)
    with torch.inference_mode():
        for i in range(0, windows.n, batch_size):
            sl = slice(i, min(i + batch_size, windows.n))
            batch = windows.batch(np.arange(sl.start, sl.stop))
            if parts is None:
                scores[sl] = method.score(batch).double().numpy()
                continue
            window_parts = method.score_parts(batch)
            for name, value in window_parts.items():
                parts.setdefault(name, np.empty(windows.n))[sl] = value.double().numpy()
            scores[sl] = method.combine_parts(window_parts).double().numpy()
    method.train(was_training)
    if not np.isfinite(scores).all():
        raise DataError(f"the model gave {int((~np.isfinite(scores)).sum())} NaN/inf window scores (check the input coordinates and --frame-size)")
    return WindowScores(scores, parts)
