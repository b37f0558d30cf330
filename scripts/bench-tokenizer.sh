#!/usr/bin/env bash
# Tokenizer throughput: the C++ tokenizer (`ssa data bench-tokenizer`) with one thread and with
# all cores, against the JavaScript reference (@lenml/tokenizers) on the same text, in one run.
# Usage: scripts/bench-tokenizer.sh [--input FILE] [--threads N]
# Without --input the text is the parity fixture (tests/fixtures/tokenizer/text.txt, 11 languages,
# code, emoji) repeated 32 times followed by the Debian changelogs under /usr/share/doc (English,
# technical) up to 16 MB in all, built once under ${SSA_CACHE:-$HOME/.cache/ssa}/bench.
# Needs the `ssa` binary (SSA_BUILD_DIR, default build/; built if missing) and node/npm.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
input=""
threads=$(nproc)
while (($#)); do
  case $1 in
    --input) input=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    *) echo "usage: $0 [--input FILE] [--threads N]" >&2; exit 2 ;;
  esac
done

tokenizer=$(bash "$root/scripts/fetch-tokenizer.sh")
ssa="${SSA_BUILD_DIR:-$root/build}/ssa"
[[ -x $ssa ]] || bash "$root/scripts/build.sh" --target ssa

if [[ -z $input ]]; then
  input=${SSA_CACHE:-$HOME/.cache/ssa}/bench/tokenizer-corpus.txt
  if [[ ! -s $input ]]; then
    mkdir -p "$(dirname "$input")"
    set +o pipefail  # head ends the pipeline early on purpose
    {
      for _ in $(seq 32); do cat "$root/tests/fixtures/tokenizer/text.txt"; echo; done
      find /usr/share/doc -name 'changelog*.gz' -print0 | sort -z | xargs -0 zcat 2>/dev/null | iconv -c -f utf-8 -t utf-8
    } | head -c 16000000 >"$input.tmp"
    set -o pipefail
    mv "$input.tmp" "$input"
  fi
fi

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(. /etc/os-release && echo "$PRETTY_NAME")"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "input: $input ($(stat -c %s "$input") bytes)"
results=$(
  "$ssa" data bench-tokenizer --tokenizer "$tokenizer" --input "$input" --threads "$threads"
  bash "$root/scripts/tokenizer-fixture/run-node.sh" bench.mjs "$input"
)
echo "$results"
node -e '
  const runs = require("fs").readFileSync(0, "utf8").trim().split("\n").map(JSON.parse);
  const reference = runs.find((r) => r.implementation !== "ssa");
  for (const r of runs.filter((r) => r.implementation === "ssa")) {
    console.log(`ssa, ${r.threads} thread(s): ${r.mb_per_s} MB/s = ${(r.mb_per_s / reference.mb_per_s).toFixed(1)}x the reference (${reference.mb_per_s} MB/s)`);
  }
  const agree = runs.every((r) => r.tokens === reference.tokens);
  console.log(`token counts ${agree ? "agree" : "DIFFER"}: ${runs.map((r) => r.tokens).join(", ")}`);
  process.exit(agree ? 0 : 1);
' <<<"$results"
