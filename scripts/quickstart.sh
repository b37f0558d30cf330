#!/usr/bin/env bash
# The README's main command. On a fresh Debian 12 machine: installs dependencies, builds, prepares
# the demo corpus (Python documentation sources from Debian's python3.11-doc, tokenized with the
# Llama-3 tokenizer), pretrains a tiny SSA model for a few minutes with a progress display,
# evaluates it under full and sparse inference at several receptive fields, prints a table and
# writes PNG plots. Everything goes under ${SSA_RUN_DIR:-runs/quickstart}.
#
# With a CUDA PyTorch (its LibTorch is used for the build) and a GPU, the same command builds the
# CUDA kernels into build-cuda/ and trains a larger model on the GPU (configs/quickstart/gpu.yaml).
# Run it again to reuse what exists: a finished training run is not repeated (--resume auto).
# Extra arguments go to `ssa train` as config overrides, e.g. `train.steps=300`.
# SSA_SKIP_INSTALL=1 skips apt-get (machines that provide the dependencies otherwise, or have no
# network: then the tokenizer and the corpus must already be under ${SSA_CACHE:-~/.cache/ssa});
# SSA_PYTHON names a Python with matplotlib for the plots (default Debian's /usr/bin/python3).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
run=${SSA_RUN_DIR:-$root/runs/quickstart}
step() { echo; echo "== $*"; }

if [[ ${SSA_SKIP_INSTALL:-0} != 1 ]]; then
  step "installing dependencies (apt-get; skipped when present)"
  bash "$root/scripts/install-deps.sh"
fi
tokenizer=$(bash "$root/scripts/fetch-tokenizer.sh")

config=$root/configs/quickstart/cpu.yaml
eval_device=cpu
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 &&
    torch_prefix=$(python3 -c 'import torch; assert torch.cuda.is_available(); print(torch.utils.cmake_prefix_path)' 2>/dev/null); then
  config=$root/configs/quickstart/gpu.yaml
  eval_device=cuda
  export SSA_BUILD_DIR=${SSA_BUILD_DIR:-$root/build-cuda}
  if [[ ! -f $SSA_BUILD_DIR/build.ninja ]]; then
    cmake -S "$root" -B "$SSA_BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix" >/dev/null
  fi
fi
ssa=${SSA_BUILD_DIR:-$root/build}/ssa

step "building ssa ($(basename "${SSA_BUILD_DIR:-build}")/, $(nproc) cores)"
bash "$root/scripts/build.sh" --target ssa

step "preparing the demo corpus"
corpus=$(SSA_BINARY=$ssa bash "$root/scripts/prepare-demo-corpus.sh")

step "pretraining ($(realpath --relative-to="$root" "$config")) into $run/ssa"
"$ssa" train --config "$config" "data.path=$corpus" "train.run_dir=$run/ssa" "$@" --resume auto

step "evaluating the last checkpoint under full and sparse inference"
model=$run/ssa/checkpoints/$(cat "$run/ssa/checkpoints/latest")
# Windows as long as the training rows: the positions the model has seen.
seq_len=$(sed -n 's/^  seq_len: //p' "$run/ssa/config.yaml")
"$ssa" eval --model "$model" --device "$eval_device" --tokenizer "$tokenizer" --attention full,sparse \
  --receptive-fields "$((seq_len / 8)),$((seq_len / 4)),$((seq_len / 2))" --max-length "$seq_len" --stats-tokens "$seq_len" \
  --tasks "ppl-shards:$corpus,stats:/usr/share/common-licenses/GPL-3" --shard-documents 4 --out "$run/eval.json"

step "plots"
python=${SSA_PYTHON:-/usr/bin/python3}
"$python" "$root/scripts/plot-training.py" "$run/ssa" --out "$run/plots"
"$python" "$root/scripts/plot-eval.py" "$run/eval.json" --out "$run/plots"
echo
echo "done: model $model, results $run/eval.json, plots in $run/plots/"
