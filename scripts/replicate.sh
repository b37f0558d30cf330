#!/usr/bin/env bash
# Small-scale replication of the paper's claims (issue 13, docs/reproducing.md): trains every
# configuration of configs/replication/ for every seed on the replication corpus, evaluates each
# finished model under full and sparse inference, and plots the results. Resumable: a run that is
# complete is not trained again, and with SSA_RUN_SECONDS each training call is stopped by SIGTERM
# after that many seconds (a checkpoint is written) and the script exits 3, so that a later call,
# possibly on another machine with the run folders copied, continues where it stopped.
#
#   SSA_CORPUS=<shard folder> bash scripts/replicate.sh [config names...]
#
# Environment: SSA_BINARY (default build/ssa), SSA_CORPUS (default: scripts/prepare-replication-corpus.sh),
# SSA_SEEDS (default "1 2"), SSA_RUN_SECONDS (default: no limit), SSA_RUNS (default runs/replication),
# SSA_TOKENIZER (default: scripts/fetch-tokenizer.sh). Extra `key=value` overrides for every training
# run: SSA_TRAIN_OVERRIDES.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ssa=${SSA_BINARY:-$root/build/ssa}
runs=${SSA_RUNS:-$root/runs/replication}
corpus=${SSA_CORPUS:-$(bash "$root/scripts/prepare-replication-corpus.sh")}
tokenizer=${SSA_TOKENIZER:-$(bash "$root/scripts/fetch-tokenizer.sh")}
read -r -a seeds <<<"${SSA_SEEDS:-1 2}"
read -r -a overrides <<<"${SSA_TRAIN_OVERRIDES:-}"
configs=("$@")
((${#configs[@]})) || configs=(full moba-rf256 ssa-rf256 moba-rf1024 ssa-rf1024)
# Held-out text outside the corpus for the attention statistics and the needle's haystack.
text=/usr/share/common-licenses/GPL-3

for name in "${configs[@]}"; do
  config=$root/configs/replication/$name.yaml
  [[ -f $config ]] || { echo "replicate.sh: no configuration $config" >&2; exit 2; }
  for seed in "${seeds[@]}"; do
    run=$runs/$name-seed$seed
    echo "== train $name, seed $seed -> $run"
    "$ssa" train -c "$config" "data.path=$corpus" "train.seed=$seed" "train.run_dir=$run" \
      "${overrides[@]}" --resume auto &
    pid=$!
    # One SIGTERM to the trainer alone: GNU timeout would also signal its process group, and a
    # second signal makes `ssa train` exit at once without its checkpoint.
    timer=
    if [[ -n ${SSA_RUN_SECONDS:-} ]]; then
      (sleep "$SSA_RUN_SECONDS" && kill -TERM "$pid" 2>/dev/null) &
      timer=$!
    fi
    code=0
    wait "$pid" || code=$?
    [[ -n $timer ]] && kill "$timer" 2>/dev/null || true
    if ((code == 3)); then
      echo "== stopped by the time limit with a checkpoint: run the script again to continue"
      exit 3
    fi
    ((code == 0)) || exit "$code"

    results=$runs/eval/$name-seed$seed.json
    if [[ ! -f $results ]]; then
      echo "== evaluate $name, seed $seed"
      mkdir -p "$runs/eval"
      model=$run/checkpoints/$(cat "$run/checkpoints/latest")
      seq_len=$(sed -n 's/^  seq_len: //p' "$run/config.yaml")
      held_out=$(sed -n 's/^  validation_documents: //p' "$run/config.yaml")
      "$ssa" eval --model "$model" --tokenizer "$tokenizer" --attention full,sparse \
        --receptive-fields 128,256,512,1024 --max-length "$seq_len" --stats-tokens "$seq_len" \
        --tasks "ppl-shards:$corpus,stats:$text,niah" --shard-documents "$held_out" \
        --haystack "$text" --niah-lengths "$((seq_len / 2)),$seq_len" --niah-depths 0,0.5,1 --niah-cases 4 \
        --out "$results"
    fi
  done
done

echo "== plots in $runs/plots"
/usr/bin/python3 "$root/scripts/plot-training.py" "$runs"/*-seed"${seeds[0]}" --out "$runs/plots"
/usr/bin/python3 "$root/scripts/plot-eval.py" "$runs"/eval/*.json --out "$runs/plots"
