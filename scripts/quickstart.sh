#!/usr/bin/env bash
# The README's main command: installs dependencies, builds, fetches the Llama-3 tokenizer,
# initialises a tiny SSA model and scores a real text with it under full and sparse attention.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
run=${SSA_RUN_DIR:-$root/runs/quickstart}
bash "$root/scripts/install-deps.sh"
tokenizer=$(bash "$root/scripts/fetch-tokenizer.sh")
bash "$root/scripts/build.sh" --target ssa
ssa="${SSA_BUILD_DIR:-$root/build}/ssa"
mkdir -p "$run"

echo "== initialising a tiny SSA model (configs/model/tiny.yaml)"
"$ssa" init --config "$root/configs/model/tiny.yaml" --out "$run/model" --seed 1

echo "== tokenising README.md and docs/ with the Llama-3 tokenizer"
: >"$run/tokens.txt"
for text in "$root/README.md" "$root"/docs/*.md; do
  "$ssa" data encode --tokenizer "$tokenizer" <"$text" | head -c 20000 | sed 's/ [0-9]*$//' >>"$run/tokens.txt"
  echo >>"$run/tokens.txt"
done

for attention in full sparse; do
  echo "== scoring under $attention attention"
  "$ssa" score --model "$run/model" --tokens "$run/tokens.txt" --attention "$attention"
done
echo "== done: model and tokens under $run"
