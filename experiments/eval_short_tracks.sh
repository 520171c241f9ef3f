#!/usr/bin/env bash
# Re-score trained runs with test tracks shorter than a window scored too (dataset.short_tracks,
# one padded window per short track; same weights, same scoring option as the run's table row:
# flows score detected joints). Writes RUN/eval_short_<mode>/; python -m vadflow.table picks it up.
# Usage: MODES="reflect edge" experiments/eval_short_tracks.sh RUN_DIR...
set -u
cd "$(dirname "$0")/.."
export VADFLOW_DATA=${VADFLOW_DATA:-$(cd ../shared/datasets 2>/dev/null && pwd)}
for run in "$@"; do
  method=$(basename "$(dirname "$run")")
  extra=()
  case $method in stgnf|daflow|dsnf) extra=(+model_overrides.score_visible_only=true) ;; esac
  for mode in ${MODES:-reflect}; do
    echo "=== $run short_tracks=$mode $(date +%T)"
    .venv/bin/vadflow-eval ckpt_path=$run/model.ckpt "+dataset_overrides.short_tracks=$mode" "${extra[@]}" threads=${THREADS:-1} \
      hydra.run.dir=$run/eval_short_$mode 2>&1 | grep -E "AUC|error" || echo "FAILED $run $mode"
  done
done
