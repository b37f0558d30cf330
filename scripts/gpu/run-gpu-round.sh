#!/usr/bin/env bash
# One round on the GPU machine (the device tool's lent H100/H200): unpack the carried Debian
# packages into a private prefix, configure and build the CUDA build, run the GPU tests and the
# attention benchmark, and leave logs and JSON under $OUT. Run from the repository root with
# `.devdeps` carried. Environment knobs:
#   SSA_GPU_STEPS    steps to run, any of "build test suite train bench" (default: build test bench);
#                    suite = the whole CTest suite of the CUDA build (needs SSA_TOKENIZER_JSON);
#                    train = `ssa train` on the GPU: the GPU quick start with a SIGTERM and a resume,
#                    then a few steps of the paper's 1B model at 8k for each method (needs
#                    SSA_CORPUS, a folder of token shards);
#                    scale = the paper's 1B model at 8k on one GPU (SSA, then full and sparse) and
#                    on every GPU of the machine under torchrun with ZeRO 2 and 1, same global
#                    batch (SSA_SCALE_STEPS steps, default 6; needs SSA_CORPUS)
#                    benchstep = `ssa bench step` of the paper's 1B model (full, sparse, ssa in one
#                    process, synthetic tokens) at 8k, then at 32k with full activation checkpointing
#                    (each run limited to SSA_BENCHSTEP_TIMEOUT seconds, default 300)
#   SSA_GPU_TARGETS  ninja targets (default: ssa ssa_test_kernels)
#   SSA_GTEST_FILTER GoogleTest filter for ssa_test_kernels (default: all)
#   SSA_BENCH_ARGS   extra arguments for `ssa bench attention`
#   SSA_GPU_PROFILE=1       Nsight Compute reports of the attention kernels
#   SSA_PROFILE_ARGS        benchmark arguments while profiling
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
out=${OUT:-$root/build-gpu/out}
mkdir -p "$out"
steps=${SSA_GPU_STEPS:-build test bench}
targets=${SSA_GPU_TARGETS:-ssa ssa_test_kernels}
build=$root/build-gpu
prefix=/tmp/devdeps

log() { echo "[gpu-round $(date +%H:%M:%S)] $*"; }

log "device: $(nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit,driver_version \
  --format=csv,noheader 2>&1)"

# Debian bookworm packages (yaml-cpp, spdlog, fmt, CLI11, GoogleTest, nlohmann-json, PCRE2, zstd)
# go to a private prefix, never into /.
mkdir -p "$prefix"
for f in .devdeps/*.deb; do dpkg -x "$f" "$prefix"; done
multiarch=$prefix/usr/lib/x86_64-linux-gnu
export PKG_CONFIG_PATH=$multiarch/pkgconfig:$prefix/usr/share/pkgconfig
# The packages' .pc files say prefix=/usr; the sysroot maps them into the private prefix.
export PKG_CONFIG_SYSROOT_DIR=$prefix
export LD_LIBRARY_PATH=$multiarch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export CUDACXX=${CUDACXX:-/usr/local/cuda/bin/nvcc}
export PATH=/usr/local/cuda/bin:$PATH

status=0
test_bin=$build/tests/ssa_test_kernels
bench=("$build/ssa" bench attention)
if [[ " $steps " == *" build "* ]]; then
  torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
  log "configure (torch at $torch_prefix)"
  start=$(date +%s)
  if ! cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$torch_prefix;$prefix/usr" -DSSA_CUDA_ARCH=90a > "$out/build.log" 2>&1; then
    tail -20 "$out/build.log"
    status=1
  else
    log "build $targets"
    # shellcheck disable=SC2086
    if ! ninja -C "$build" -j"$(nproc)" $targets >> "$out/build.log" 2>&1; then
      log "build FAILED; first errors:"
      grep -E -A8 "FAILED|error:" "$out/build.log" | head -60
      status=1
    fi
  fi
  log "build took $(( $(date +%s) - start )) s"
  grep -h -E "registers|spill|bytes stack|Compiling entry" "$out/build.log" 2>/dev/null | grep -v cub | \
    sed 's/_ZN3ssa7kernels[0-9A-Za-z_]*_cu_[0-9a-f]*//' > "$out/ptxas.txt" || true
fi

if [[ $status -eq 0 && " $steps " == *" test "* && -x $test_bin ]]; then
  log "kernel tests"
  timeout "${SSA_TEST_TIMEOUT:-300}" "$test_bin" --gtest_filter="${SSA_GTEST_FILTER:-*}" \
    --gtest_output=json:"$out/kernel-tests.json" > "$out/kernel-tests.log" 2>&1 || status=1
  grep -E "^\[ *(OK|FAILED|PASSED|RUN) *\]|Failure|error|Expected|Which is|relative|seed|max abs|^    " \
    "$out/kernel-tests.log" | grep -v "^\[ RUN" | head -150
  tail -3 "$out/kernel-tests.log"
fi

if [[ $status -eq 0 && " $steps " == *" suite "* ]]; then
  log "whole test suite (CTest)"
  ctest --test-dir "$build" -j8 --output-on-failure > "$out/ctest.log" 2>&1 || status=1
  grep -E "tests passed|\*\*\*Failed|Total Test time" "$out/ctest.log" | head -40
fi

if [[ $status -eq 0 && " $steps " == *" train "* ]]; then
  ssa_bin=$build/ssa
  runs=/tmp/gpu-runs
  rm -rf "$runs"
  log "train: GPU quick start, stopped by SIGTERM, then resumed"
  quick=("$ssa_bin" train -c configs/quickstart/gpu.yaml "data.path=$SSA_CORPUS" "train.run_dir=$runs/quick"
         train.steps=80 checkpoint.every=20 eval.every=40 log.every=10)
  "${quick[@]}" > "$out/train-quick.log" 2>&1 &
  pid=$!
  for _ in $(seq 120); do
    grep -q "step 30/" "$out/train-quick.log" 2>/dev/null && break
    sleep 1
  done
  kill -TERM $pid
  wait $pid
  echo "exit code after SIGTERM: $?" >> "$out/train-quick.log"
  "${quick[@]}" --resume auto >> "$out/train-quick.log" 2>&1 || status=1
  echo "exit code of the resumed run: $?" >> "$out/train-quick.log"
  grep -E "step [0-9]+/80 \||validation|checkpoint|resum|exit code|error|signal" "$out/train-quick.log" | cut -c1-220
  cp "$runs/quick/metrics.jsonl" "$out/train-quick-metrics.jsonl" 2>/dev/null
  for method in full sparse ssa; do
    log "train: paper 1B at 8k, method $method"
    timeout 180 "$ssa_bin" train -c configs/paper/table1/ssa-rf256.yaml "data.path=$SSA_CORPUS" \
      "train.run_dir=$runs/paper-$method" ssa.method=$method train.steps=8 train.global_batch_size=2 \
      checkpoint.every=0 eval.every=0 log.every=1 ${SSA_TRAIN_ARGS:-} > "$out/train-1b-$method.log" 2>&1 || status=1
    grep -E "train:|step [0-9]+/8 \||error" "$out/train-1b-$method.log" | cut -c1-260
    # The end-of-run checkpoint of a 1B model with its optimizer state is about 15 GB.
    rm -rf "$runs/paper-$method"
  done
fi

if [[ $status -eq 0 && " $steps " == *" scale "* ]]; then
  ssa_bin=$build/ssa
  runs=/tmp/gpu-scale
  gpus=$(nvidia-smi -L | wc -l)
  scale_steps=${SSA_SCALE_STEPS:-6}
  # p_full 1: every micro-batch in the same mode whatever the number of ranks, so the losses of
  # one GPU and of several can be compared step by step (an SSA step computes both streams anyway).
  common=(-c configs/paper/table1/ssa-rf256.yaml "data.path=$SSA_CORPUS" "train.steps=$scale_steps"
          train.global_batch_size=4 train.micro_batch_size=1 ssa.p_full=1.0 checkpoint.every=0 eval.every=0
          log.every=1 log.tensorboard=false)
  scale_run() {  # label, launcher..., -- overrides...
    local label=$1
    shift
    log "scale: $label"
    rm -rf "$runs/$label"
    timeout "${SSA_SCALE_TIMEOUT:-150}" "$@" "train.run_dir=$runs/$label" > "$out/scale-$label.log" 2>&1
    echo "exit code $?" >> "$out/scale-$label.log"
    cp "$runs/$label/metrics.jsonl" "$out/scale-$label-metrics.jsonl" 2>/dev/null
    grep -E "train:|step [0-9]+/$scale_steps \\||error|exit code" "$out/scale-$label.log" | cut -c1-240
    # The end-of-run checkpoint of a 1B model with its optimizer state is about 15 GB.
    rm -rf "$runs/$label"
  }
  scale_run 1gpu-ssa "$ssa_bin" train "${common[@]}" ssa.method=ssa
  torchrun=(python3 -m torch.distributed.run --no-python --standalone --nproc-per-node "$gpus")
  scale_run "${gpus}gpu-ssa-zero2" "${torchrun[@]}" "$ssa_bin" train "${common[@]}" ssa.method=ssa dist.zero=2
  scale_run 1gpu-full "$ssa_bin" train "${common[@]}" ssa.method=full
  scale_run 1gpu-sparse "$ssa_bin" train "${common[@]}" ssa.method=sparse
  scale_run "${gpus}gpu-ssa-zero1" "${torchrun[@]}" "$ssa_bin" train "${common[@]}" ssa.method=ssa dist.zero=1
fi

if [[ $status -eq 0 && " $steps " == *" benchstep "* ]]; then
  for length in 8192 32768; do
    label=bench-step-$(( length / 1024 ))k
    args=(-c configs/paper/table1/ssa-rf256.yaml --seq-len "$length" --method full,sparse,ssa --out "$out/$label.json")
    # At 32k the 1B model fits one GPU only with every layer checkpointed.
    if [[ $length -eq 32768 ]]; then args+=(train.activation_checkpointing=full); fi
    log "training-step benchmark at $length tokens"
    timeout "${SSA_BENCHSTEP_TIMEOUT:-300}" "$build/ssa" bench step "${args[@]}" > "$out/$label.md" 2>&1 || status=1
    cat "$out/$label.md"
  done
fi

if [[ ${SSA_GPU_PROFILE:-0} == 1 ]]; then
  ncu_bin=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  if [[ -n $ncu_bin ]]; then
    log "profiling with $ncu_bin"
    for kernel in block_select_kernel sparse_forward_kernel sparse_forward_keys_kernel sparse_backward_kernel; do
      count=1
      [[ $kernel == sparse_forward_keys_kernel ]] && count=2
      # shellcheck disable=SC2086
      timeout 150 "$ncu_bin" -k "regex:$kernel" -c $count --section SpeedOfLight --section Occupancy \
        --section LaunchStats --section WarpStateStats --section SchedulerStats --section ComputeWorkloadAnalysis \
        --section MemoryWorkloadAnalysis "${bench[@]}" --out /tmp/profile-bench.json \
        ${SSA_PROFILE_ARGS:---lengths 32768 --kv-heads 8 --budgets 16x16 --dense 0 --repeats 1 --warmup 1} \
        >> "$out/profile.txt" 2>&1
    done
    grep -E "^  [a-z_]+kernel|Duration|Compute \(SM\) Throughput|Memory Throughput|L2 Cache Throughput|Achieved Occupancy|Registers Per|Issue Slots Busy|Warp Cycles Per Issued|No Eligible|Theoretical Occupancy|Executed Ipc A" \
      "$out/profile.txt" | head -120
  else
    log "no ncu on this machine"
  fi
fi

if [[ " $steps " == *" bench "* && -x ${bench[0]} ]]; then
  log "attention benchmark"
  # shellcheck disable=SC2086
  timeout "${SSA_BENCH_TIMEOUT:-240}" "${bench[@]}" --out "$out/attention-bench.json" ${SSA_BENCH_ARGS:-} \
    > "$out/attention-bench.md" 2>&1 || status=1
  cat "$out/attention-bench.md"
fi
log "done, status $status"
exit $status
