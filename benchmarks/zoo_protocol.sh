#!/usr/bin/env bash
# The issue-14 training protocol for the ZINC-12k zoo: one fixed schedule for every model (E epochs, AdamW lr 1e-3,
# weight decay 1e-5, batch 32, L1, 5 warm-up epochs then cosine to 0, best-validation weights, 1 thread per run).
# Usage: bash benchmarks/zoo_protocol.sh RUN [RUN ...]    (RUN names below; runs go to runs/RUN)
# Each RUN resumes from its checkpoint when one exists (runs longer than a session continue with the same command)
# and is skipped when its record says it finished. Run two at a time on a 2-core machine (one per core).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
E=${E:-300}
declare -A ARCH CONFIG
GINE='"hidden_dim":96,"num_layers":6'
ARCH[gine-zinc]=gine;            CONFIG[gine-zinc]="{$GINE}"
ARCH[gine-rwse-zinc]=gine-rwse;  CONFIG[gine-rwse-zinc]="{$GINE,\"rwse_steps\":16}"
# DS-/DSS-GNN: ESAN's ZINC sweeps (configs/deterministic/DS(S)-ZINC.yaml) use ego_nets_plus at main.py's default
# --num_hops 2, 4 layers, batch 128, 400 epochs; here radius 2 and 4 layers, under the shared recipe.
ARCH[ds-gnn-zinc]=ds-gnn;        CONFIG[ds-gnn-zinc]='{"hidden_dim":96,"num_layers":4,"policy":"ego_plus","ego_radius":2}'
ARCH[dss-gnn-zinc]=dss-gnn;      CONFIG[dss-gnn-zinc]='{"hidden_dim":96,"num_layers":4,"policy":"ego_plus","ego_radius":2}'
ARCH[hod-gnn-k1-m2-zinc]=hod-gnn
CONFIG[hod-gnn-k1-m2-zinc]='{"k":1,"m":2,"deriv_encoder":"joint","output_derivatives":true}'
ARCH[hod-gnn-k1-m2-d8-zinc]=hod-gnn
CONFIG[hod-gnn-k1-m2-d8-zinc]='{"k":1,"m":2,"deriv_encoder":"joint","output_derivatives":true,"base_layers":8,"base_hidden_dim":16}'
ARCH[hod-gnn-k2-zinc]=hod-gnn
CONFIG[hod-gnn-k2-zinc]='{"k":2,"m":1,"base_layers":3,"base_hidden_dim":16,"encoder_hidden_dim":32}'

for run in "$@"; do
  name=${run%-s[0-9]*}; seed=0
  [[ $run =~ -s([0-9]+)$ ]] && seed=${BASH_REMATCH[1]}
  [[ -n ${ARCH[$name]:-} ]] || { echo "unknown run $run (known: ${!ARCH[*]}, optionally with -sSEED)" >&2; exit 2; }
  out=runs/$run
  if [[ -f $out/record.json ]] && grep -q '"finished"' "$out/record.json"; then echo "$run: finished, skipped"; continue; fi
  resume=(); [[ -f $out/checkpoint.safetensors ]] && resume=(--resume)
  echo "$(date -u +%FT%TZ) $run: start ${resume[*]}"
  "$PY" -m dgl_hod.train "${ARCH[$name]}" --dataset zinc12k --config "${CONFIG[$name]}" --epochs "$E" \
    --warmup-epochs 5 --seed "$seed" --threads 1 --no-progress --out "$out" "${resume[@]}"
done
