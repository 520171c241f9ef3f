#!/usr/bin/env bash
# Train/evaluate methods on the real datasets with their experiment presets, seeds 1-3, one run at a
# time. Results: runs/train/<dataset>/<method>/*/metrics.json; aggregate with
#   .venv/bin/python -m vadflow.table --methods stgnf daflow dsnf ...
# Usage: METHODS="daflow dsnf" DATASETS="hr_avenue poselift hr_shanghaitech" SEEDS="1 2 3" THREADS=1 experiments/run_methods_real.sh [extra overrides]
set -u
cd "$(dirname "$0")/.."
export VADFLOW_DATA=${VADFLOW_DATA:-$(cd ../shared/datasets 2>/dev/null && pwd)}
METHODS=${METHODS:-"daflow dsnf"}
DATASETS=${DATASETS:-"hr_avenue poselift hr_shanghaitech"}
SEEDS=${SEEDS:-"1 2 3"}
for m in $METHODS; do
  for ds in $DATASETS; do
    for seed in $SEEDS; do
      echo "=== $m $ds seed=$seed $(date +%T)"
      .venv/bin/vadflow-train experiment=$m/$ds seed=$seed logger=none threads=${THREADS:-1} "$@" 2>&1 \
        | grep -E "AUC|Error|error:|run directory|nan|NaN" || echo "FAILED $m $ds $seed"
    done
  done
done
echo "=== done $(date +%T)"
