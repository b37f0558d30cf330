#!/usr/bin/env bash
# Builds the demo corpus and prints its folder:
#   ${SSA_CACHE:-$HOME/.cache/ssa}/corpus/debian-docs/
# Real English text: the reStructuredText sources of the Python 3.11 documentation that Debian's
# python3.11-doc package installs under /usr/share/doc/python3.11/html/_sources/ (about 500
# *.rst.txt files, 12 MB), one document per file, tokenized with the Llama-3 tokenizer
# (scripts/fetch-tokenizer.sh) by `ssa data tokenize` into datatrove shards (uint32 tokens,
# EOS after every document, no BOS, files in sorted path order).
#
# Validation split: the shards hold every document; the data loader holds documents out,
# evenly spread over the sorted files and independent of the seed, e.g. with
# `validation_documents: 25` (about 5%) in LoaderOptions. See docs/data-formats.md.
#
# Idempotent: a finished corpus is kept. It is built in a staging folder and renamed into place,
# so the folder exists only when complete. Needs apt-get (as root, or sudo) when the package is
# missing, and the ssa binary (${SSA_BINARY:-${SSA_BUILD_DIR:-build}/ssa}; built if missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ssa=${SSA_BINARY:-${SSA_BUILD_DIR:-$root/build}/ssa}
sources=/usr/share/doc/python3.11/html/_sources
out=${SSA_CACHE:-$HOME/.cache/ssa}/corpus/debian-docs

if [[ -d $out ]]; then
  echo "$out"
  exit 0
fi
if [[ ! -d $sources ]]; then
  sudo=()
  if ((EUID != 0)); then sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq python3.11-doc >&2
fi
if [[ ! -x $ssa ]]; then
  bash "$root/scripts/build.sh" --target ssa >&2
fi
tokenizer=$("$root/scripts/fetch-tokenizer.sh")

staging="$out.tmp"
rm -rf "$staging"
"$ssa" data tokenize --tokenizer "$tokenizer" --input "$sources" --out "$staging" --name debian-docs \
  --shard-tokens 1000000 >&2
mv "$staging" "$out"
"$ssa" data inspect "$out" >&2
echo "$out"
