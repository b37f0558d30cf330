#!/usr/bin/env bash
# The whole CPU test suite: installs dependencies, fetches the Llama-3 tokenizer (the parity test
# needs it), builds from scratch if needed and runs every test with CTest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/install-deps.sh"
bash "$root/scripts/fetch-tokenizer.sh" >/dev/null
bash "$root/scripts/build.sh"
ctest --test-dir "${SSA_BUILD_DIR:-$root/build}" --output-on-failure -j"$(nproc)"
