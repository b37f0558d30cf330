#!/usr/bin/env bash
# Small-scale replication of the paper's claims (issue 13, docs/reproducing.md): trains every
# configuration of configs/replication/ for every seed on the replication corpus, evaluates each
# finished model under full and sparse inference, and plots the results. Resumable: a run that is
# complete is not trained or evaluated again, and with a time limit (SSA_RUN_SECONDS after the
# script starts, or SSA_DEADLINE in seconds since the epoch) training is stopped by one SIGTERM
# at the limit (a checkpoint is written), an evaluation is cut short and the script exits 3, so
# that a later call, possibly on another machine with the run folders copied, continues.
#
#   SSA_CORPUS=<shard folder> bash scripts/replicate.sh [config names...]
#
# Environment: SSA_BINARY (default build/ssa), SSA_CORPUS (default: scripts/prepare-replication-corpus.sh),
# SSA_SEEDS (default "1 2"), SSA_RUN_SECONDS or SSA_DEADLINE (default: no limit), SSA_RUNS (default
# runs/replication), SSA_TOKENIZER (default: scripts/fetch-tokenizer.sh), SSA_HELD_OUT_TEXT (text
# outside the corpus for the attention statistics and the needle's haystack; default the GPL-3),
# SSA_PLOTS=0 to skip the plots (when several copies of the script share the runs, one per GPU:
# scripts/gpu/gpu-queue.sh), SSA_PYTHON (with matplotlib; default /usr/bin/python3), SSA_EVAL_DEVICE
# (where `ssa eval` runs, in float32: cpu, the default, or cuda). Extra
# `key=value` overrides for every training run: SSA_TRAIN_OVERRIDES.
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
text=${SSA_HELD_OUT_TEXT:-/usr/share/common-licenses/GPL-3}
python=${SSA_PYTHON:-/usr/bin/python3}
deadline=${SSA_DEADLINE:-}
if [[ -z $deadline && -n ${SSA_RUN_SECONDS:-} ]]; then deadline=$(($(date +%s) + SSA_RUN_SECONDS)); fi

# Runs a command; at the deadline it gets one SIGTERM. GNU timeout in the foreground signals the
# command alone and once: a second signal (to its process group) would make `ssa train` exit at
# once without its checkpoint. Returns the command's exit code.
until_deadline() {
  if [[ -z $deadline ]]; then
    "$@"
    return
  fi
  local left=$((deadline - $(date +%s)))
  ((left > 0)) || return 124
  timeout --foreground --preserve-status -s TERM "$left" "$@"
}
past_deadline() { [[ -n $deadline ]] && (($(date +%s) >= deadline)); }

for name in "${configs[@]}"; do
  config=$root/configs/replication/$name.yaml
  [[ -f $config ]] || { echo "replicate.sh: no configuration $config" >&2; exit 2; }
  for seed in "${seeds[@]}"; do
    run=$runs/$name-seed$seed
    echo "== train $name, seed $seed -> $run"
    code=0
    until_deadline "$ssa" train -c "$config" "data.path=$corpus" "train.seed=$seed" "train.run_dir=$run" \
      "${overrides[@]}" --resume auto || code=$?
    if ((code == 3 || code == 124)); then
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
      code=0
      until_deadline "$ssa" eval --model "$model" --device "${SSA_EVAL_DEVICE:-cpu}" --tokenizer "$tokenizer" --attention full,sparse \
        --receptive-fields 128,256,512,1024 --max-length "$seq_len" --stats-tokens "$seq_len" \
        --tasks "ppl-shards:$corpus,stats:$text,niah" --shard-documents "$held_out" \
        --haystack "$text" --niah-lengths "$((seq_len / 2)),$seq_len" --niah-depths 0,0.5,1 --niah-cases 4 \
        --out "$results" || code=$?
      if ((code != 0)) && past_deadline; then
        echo "== evaluation cut short by the time limit: run the script again to evaluate"
        exit 3
      fi
      ((code == 0)) || exit "$code"
    fi
  done
done

[[ ${SSA_PLOTS:-1} == 0 ]] && exit 0
echo "== plots in $runs/plots"
"$python" "$root/scripts/plot-training.py" "$runs"/*-seed"${seeds[0]}" --out "$runs/plots"
"$python" "$root/scripts/plot-eval.py" "$runs"/eval/*-seed"${seeds[0]}".json --sparsity-field 256 --out "$runs/plots"
"$python" "$root/scripts/replication-report.py" "$runs"/eval/*.json | tee "$runs/report.md"
