#!/usr/bin/env bash
# Re-score trained flow runs with score_visible_only=true (mean per-location NLL over detected
# joints only; same weights). Usage: experiments/eval_visible_only.sh RUN_DIR...
set -u
cd "$(dirname "$0")/.."
export VADFLOW_DATA=${VADFLOW_DATA:-$(cd ../shared/datasets 2>/dev/null && pwd)}
for run in "$@"; do
  echo "=== $run $(date +%T)"
  .venv/bin/vadflow-eval ckpt_path=$run/model.ckpt +model_overrides.score_visible_only=true threads=${THREADS:-1} \
    hydra.run.dir=$run/eval_visible_only 2>&1 | grep -E "AUC|error" || echo "FAILED $run"
done
