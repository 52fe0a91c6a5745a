#!/usr/bin/env bash
# The issue-14 transfer rerun: hod-gnn-k1-m2-molhiv fine-tuned on a smaller OGB set against the same config from
# scratch (benchmarks/finetune_transfer.py: scratch, finetune, finetune-frozen-base; 3 seeds each).
# Usage: bash benchmarks/transfer_protocol.sh DATASET [SEED ...]    (DATASET: molbace, molbbbp or moltox21)
# Runs go to runs/transfer/hod-gnn-k1-m2-molhiv-to-ogbg-DATASET/<variant>-s<seed>; finished runs are skipped and
# interrupted ones resumed, so the same command continues in the next session. Give SEEDs to split one dataset
# across the two slots (e.g. `... moltox21 0` beside `... moltox21 1 2`), then run it once more with no seeds: every
# run is then finished and skipped, and the page benchmarks/results/transfer-DATASET.md gets all three seeds; each
# call then rewrites benchmarks/results/transfer-summary.md, one row per finished target.
# Epochs: 100 on molbace and molbbbp (the OGB protocol); 50 on moltox21, a documented cut: at ~8 s per epoch measured
# on molbace (1,210 training graphs, batch 32, 1 thread, two runs at a time), moltox21's 6,264 graphs were estimated at
# ~42 s per epoch; measured: 26.3 s, so 9 runs are ~3.3 single-core hours at 50 epochs against ~6.6 at 100.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[[ $# -ge 1 ]] || { echo "usage: bash benchmarks/transfer_protocol.sh molbace|molbbbp|moltox21 [SEED ...]" >&2; exit 2; }
ds=${1#ogbg-}; shift
case $ds in
  molbace|molbbbp) epochs=100 ;;
  moltox21) epochs=50 ;;
  *) echo "unknown dataset $ds (molbace, molbbbp or moltox21)" >&2; exit 2 ;;
esac
seeds=("$@"); [[ ${#seeds[@]} -gt 0 ]] || seeds=(0 1 2)
echo "$(date -u +%FT%TZ) transfer to ogbg-$ds: $epochs epochs, seeds ${seeds[*]}"
"$PY" benchmarks/finetune_transfer.py --pretrained hod-gnn-k1-m2-molhiv --dataset "ogbg-$ds" --epochs "$epochs" \
  --seeds "${seeds[@]}" --tag "transfer-$ds"
# the table over every finished target (benchmarks/results/transfer-summary.md)
"$PY" benchmarks/finetune_transfer.py --summary --pretrained hod-gnn-k1-m2-molhiv
