#!/usr/bin/env bash
# bf16-mixed autocast training check (DSNF's hyperbolic branch): EPOCHS epochs per seed on
# HR-ShanghaiTech, counting non-finite training losses (metrics.json: nonfinite_loss_steps).
# Usage: METHOD=dsnf SEEDS="1 2 3" EPOCHS=1 experiments/bf16_check.sh [extra overrides, e.g. +trainer.limit_train_batches=0.25]
set -u
cd "$(dirname "$0")/.."
export VADFLOW_DATA=${VADFLOW_DATA:-$(cd ../shared/datasets 2>/dev/null && pwd)}
m=${METHOD:-dsnf}
for seed in ${SEEDS:-1 2 3}; do
  dir=runs/bf16_check/${m}_seed$seed
  echo "=== $m bf16-mixed seed=$seed $(date +%T)"
  .venv/bin/vadflow-train experiment=$m/hr_shanghaitech seed=$seed trainer.precision=bf16-mixed trainer.max_epochs=${EPOCHS:-1} \
    logger=none threads=${THREADS:-1} calibrate=false +trainer.enable_progress_bar=false hydra.run.dir=$dir "$@" 2>&1 | grep -E "mpedrnn protocol|rror" || echo "FAILED $seed"
  python3 -c "import json; m=json.load(open('$dir/metrics.json')); print('precision', m['precision'], 'non-finite training losses:', m['nonfinite_loss_steps'], 'epochs', m['epochs'])"
done
