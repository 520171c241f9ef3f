"""The one evaluator: a split's scored windows -> one result per protocol.

Training, ``vadflow-eval``, ``vadflow-score --masks`` and the table's re-scoring all call
:func:`evaluate_windows` with the same inputs: the windows (``data.windows.ScoringWindows``: clip,
person and covered frames of each), their de-duplicated anomaly scores, the dataset's protocols
(:func:`protocols_of`) and its labels. So a frame score means the same everywhere.
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from vadflow.scoring.protocols import Protocol, dedup_window_scores, evaluate_protocol, make_protocol, score_offset

PROTOCOL_KEYS = ("protocols", "exclude_clips", "ignore_ranges", "smoothing_sigmas", "window_to_frame", "mocodad")


def protocols_of(dataset_cfg: Mapping) -> list[Protocol]:
    """The dataset's protocols (``dataset.protocols``, the first is the headline), built from its
    clip lists, keep-mask, smoothing and MoCoDAD settings."""
    names = dataset_cfg.get("protocols") or ("stgnf", "mpedrnn")
    smoothing = {"sigmas": dataset_cfg.get("smoothing_sigmas"), "window_to_frame": dataset_cfg.get("window_to_frame")}
    return [make_protocol(p, exclude_clips=dataset_cfg.get("exclude_clips") or (), ignore_ranges=dataset_cfg.get("ignore_ranges"),
                          mocodad=dataset_cfg.get("mocodad"), **({} if p == "mocodad" else smoothing))
            for p in names]


def needs_training_scores(protocols: list[Protocol]) -> bool:
    """A protocol fixes a constant from the training windows' scores (mocodad's offset)."""
    return any(p.kind == "mocodad" for p in protocols)


def mocodad_offsets(protocols: list[Protocol], train_score: np.ndarray | None) -> dict[str, float]:
    """Each mocodad protocol's score offset: a quantile of the training windows' scores. Stored in
    checkpoints, so ``vadflow-score`` evaluates without the training data."""
    wanted = [p for p in protocols if p.kind == "mocodad"]
    if wanted and (train_score is None or not len(train_score)):
        raise ValueError("the mocodad protocol needs the scores of training windows (its offset)")
    return {p.name: score_offset(train_score, p.offset_quantile) for p in wanted}


def evaluate_windows(windows, index: np.ndarray, score: np.ndarray, protocols: list[Protocol],
                     masks_for: Callable[[str], dict] | Mapping[str, np.ndarray], dataset: str,
                     offsets: Mapping[str, float] | None = None) -> list[dict]:
    """Gathered (possibly duplicated) window scores -> one result per protocol.

    ``windows``: the split's ``ScoringWindows`` (every window must be scored once); ``masks_for``:
    the labelled clips of a protocol (a callable, or one mask dict for every protocol);
    ``offsets``: mocodad's score offsets (:func:`mocodad_offsets`)."""
    index, score = dedup_window_scores(index, score)
    if len(index) != windows.n:
        raise ValueError(f"{dataset}: scores for {len(index)} of {windows.n} test windows")
    labels = masks_for if callable(masks_for) else (lambda _name: masks_for)
    results = []
    for p in protocols:
        offset = None
        if p.kind == "mocodad":
            if offsets is None or p.name not in offsets:
                raise ValueError(f"{dataset}: the {p.name} protocol needs its score offset (from training windows)")
            offset = float(offsets[p.name])
        results.append(evaluate_protocol(
            p, labels(p.name), windows.clip[index], windows.frame[index], score, dataset, win_person=windows.person[index],
            seg_len=windows.seg_len, win_first=windows.first[index], win_span=windows.span[index], score_offset=offset,
        ))
    return results
