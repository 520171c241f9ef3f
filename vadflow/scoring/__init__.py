"""Window scores -> frame scores -> AUC, and what a user's alarm needs: one home for each step.

* ``protocols``: every evaluation protocol of the field, as its reference code does it.
* ``evaluator``: a split's scored windows -> one result per protocol (training, ``vadflow-eval``,
  ``vadflow-score --masks`` and the table all call it).
* ``inference``: a method's score for every window of a split, without Lightning.
* ``frames``: the per-clip frame scores ``vadflow-score`` reports (driving person, parts).
* ``calibration``: normal-data score quantiles, the threshold for a false-alarm rate.
* ``alarms``: frames above the threshold and the top anomalous segments.
"""
from vadflow.scoring.protocols import (  # noqa: F401  the protocol API
    MOCODAD_KEYS, PROTOCOLS, Protocol, STGNF_SIGMAS, average_precision, check_window_frames,
    cover_frame_scores, cover_max_over_tracks, dedup_window_scores, driver_means, equal_error_rate,
    evaluate_protocol, format_result, frame_scores, fuse_persons, keep_mask, make_protocol,
    mocodad_clip_scores, pad_absences, per_camera_quantiles, roc_auc, roc_points, score_offset,
    shift_and_smooth, smooth, smoothing_label,
)
from vadflow.scoring.evaluator import evaluate_windows, mocodad_offsets, needs_training_scores, protocols_of  # noqa: F401
