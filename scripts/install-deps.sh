#!/usr/bin/env bash
# Installs the build and test dependencies on Debian 12 (bookworm) with apt-get. Idempotent:
# packages already present are skipped, so the README's commands can call it every time.
set -euo pipefail

# libopenblas0-pthread: Debian's libtorch links the generic libblas.so.3, which is the reference
# BLAS unless an optimised one is installed; OpenBLAS takes over that name (update-alternatives)
# and makes CPU matrix products about 8x faster.
packages=(
  build-essential cmake ninja-build pkg-config libopenblas0-pthread
  libtorch-dev libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev libgtest-dev libgmock-dev
  nlohmann-json3-dev libpcre2-dev libzstd-dev zlib1g-dev libgloo-dev
  python3 python3-numpy python3-matplotlib curl ca-certificates
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
