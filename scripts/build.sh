#!/usr/bin/env bash
# Configures and builds the project into ${SSA_BUILD_DIR:-build} (Release, Ninja). Idempotent;
# extra arguments are passed to `cmake --build` (for example `--target ssa`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${SSA_BUILD_DIR:-$root/build}
if [[ ! -f $build/build.ninja ]]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" -j"$(nproc)" "$@"
