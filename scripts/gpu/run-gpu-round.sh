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
#                    benchstep = `ssa bench step` (full, sparse, ssa in one process, synthetic tokens)
#                    for the runs named in SSA_BENCHSTEP_RUNS (default "llama-8k paper-8k paper-32k"):
#                    llama-8k = stock Llama-3.2-1B at 8k without activation checkpointing, paper-8k =
#                    the paper's 1B at 8k as configured (no checkpointing), both with the fused
#                    and the eager kernel sets; paper-32k = the paper's 1B at 32k with every layer
#                    checkpointed, fused kernels (paper-32k-recompute: without keeping the
#                    attention results for the recomputation); continuation-32k = the 32k
#                    continuation's configs/continuation/ssa.yaml (document masking) on rows of 16
#                    documents; each run limited to SSA_BENCHSTEP_TIMEOUT seconds
#                    (default 300); SSA_BENCHSTEP_KERNELS replaces the 8k runs' kernel sets
#                    (default fused,eager); SSA_BENCHSTEP_ARGS adds arguments to every run (e.g.
#                    "--steps 10")
#                    queue = the one-GPU jobs of the files SSA_GPU_QUEUES (scripts/gpu/queues/),
#                    spread over every GPU by scripts/gpu/gpu-queue.sh; resumable: repeat the round
#                    until the queue is done (state in runs/gpu-queue, outputs in runs/gpu-results)
#                    multigpu = the paper's 1B at 8k on every GPU (issue 11, docs/performance.md):
#                    one GPU, then torchrun with ZeRO 0, 1 and 2 at the same global batch, a resume
#                    on half the GPUs from the ZeRO 2 run's sharded checkpoint, and a killed rank
#                    (SSA_MULTI_STEPS steps, default 24, of SSA_MULTI_ROWS_PER_GPU 8k rows per GPU,
#                    default 2; needs SSA_CORPUS); SSA_MULTI_PARTS picks
#                    among "scaling resume killed" (default all; resume needs scaling's ZeRO 2 run)
#   SSA_ROUND_SECONDS       time limit of the round: the queue stops taking and stops its jobs then
#                           (SSA_DEADLINE), and multigpu runs only if SSA_MULTI_SECONDS (default 330) remain
#   SSA_GPU_TARGETS  ninja targets (default: ssa ssa_test_kernels)
#   SSA_GTEST_FILTER GoogleTest filter for ssa_test_kernels (default: all)
#   SSA_PACK_OUT=1   at the end, pack everything under $OUT into $OUT/out.tgz (the device tool
#                    returns only a few files per call); the console output is then not in it
#                    unless tee'd into $OUT/round.log before the pack, e.g. by the caller
#   SSA_BENCH_ARGS   extra arguments for `ssa bench attention`
#   SSA_GPU_PROFILE=1       Nsight Compute reports of the attention kernels
#   SSA_PROFILE_ARGS        benchmark arguments while profiling
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
out=${OUT:-$root/build-gpu/out}
mkdir -p "$out"
round_start=$(date +%s)
if [[ -n ${SSA_ROUND_SECONDS:-} ]]; then export SSA_DEADLINE=$((round_start + SSA_ROUND_SECONDS)); fi
steps=${SSA_GPU_STEPS:-build test bench}
targets=${SSA_GPU_TARGETS:-ssa ssa_test_kernels}
build=$root/build-gpu
prefix=/tmp/devdeps

log() { echo "[gpu-round $(date +%H:%M:%S)] $*"; }

# A multi-GPU launch of `ssa train`: append the number of processes, then the binary and its arguments.
torchrun=(python3 -m torch.distributed.run --no-python --standalone --nproc-per-node)

# One training run of the scale and multigpu steps: `train_run STEP LABEL STEPS LIMIT command...`
# runs the command with train.run_dir=$runs/LABEL for at most LIMIT seconds (less where
# SSA_DEADLINE is nearer), keeps its log and metrics as $out/STEP-LABEL*, and prints the lines of
# its STEPS steps, the errors and the exit code.
train_run() {
  local step=$1 label=$2 shown=$3 limit=$4
  shift 4
  log "$step: $label"
  if [[ -n ${SSA_DEADLINE:-} ]] && ((SSA_DEADLINE - $(date +%s) < limit)); then limit=$((SSA_DEADLINE - $(date +%s))); fi
  timeout "$((limit > 1 ? limit : 1))" "$@" "train.run_dir=$runs/$label" > "$out/$step-$label.log" 2>&1
  echo "exit code $?" >> "$out/$step-$label.log"
  cp "$runs/$label/metrics.jsonl" "$out/$step-$label-metrics.jsonl" 2>/dev/null
  grep -E "train:|step [0-9]+/$shown \\||error|exit code|resum" "$out/$step-$label.log" | cut -c1-260 | tail -8
}

log "device: $(nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit,driver_version \
  --format=csv,noheader 2>&1)"

# Debian bookworm packages (yaml-cpp, spdlog, fmt, CLI11, GoogleTest, nlohmann-json, PCRE2, zstd)
# go to a private prefix, never into /.
# Once per machine: jobs of the queue run this script too, concurrently.
if [[ ! -e $prefix/.unpacked ]]; then
  mkdir -p "$prefix"
  for f in .devdeps/*.deb; do dpkg -x "$f" "$prefix"; done
  touch "$prefix/.unpacked"
fi
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
  scale_run() {  # label, command...
    local label=$1
    shift
    rm -rf "$runs/$label"
    train_run scale "$label" "$scale_steps" "${SSA_SCALE_TIMEOUT:-150}" "$@"
    # The end-of-run checkpoint of a 1B model with its optimizer state is about 15 GB.
    rm -rf "$runs/$label"
  }
  scale_run 1gpu-ssa "$ssa_bin" train "${common[@]}" ssa.method=ssa
  scale_run "${gpus}gpu-ssa-zero2" "${torchrun[@]}" "$gpus" "$ssa_bin" train "${common[@]}" ssa.method=ssa dist.zero=2
  scale_run 1gpu-full "$ssa_bin" train "${common[@]}" ssa.method=full
  scale_run 1gpu-sparse "$ssa_bin" train "${common[@]}" ssa.method=sparse
  scale_run "${gpus}gpu-ssa-zero1" "${torchrun[@]}" "$gpus" "$ssa_bin" train "${common[@]}" ssa.method=ssa dist.zero=1
fi

if [[ $status -eq 0 && " $steps " == *" benchstep "* ]]; then
  benchstep_kernels=${SSA_BENCHSTEP_KERNELS:-fused,eager}
  for label in ${SSA_BENCHSTEP_RUNS:-llama-8k paper-8k paper-32k}; do
    case $label in
      llama-8k) args=(-c configs/model/llama3.2-1b.yaml --seq-len 8192 train.activation_checkpointing=none
                      --kernels "$benchstep_kernels") ;;
      paper-8k) args=(-c configs/paper/table1/ssa-rf256.yaml --seq-len 8192 --kernels "$benchstep_kernels") ;;
      # At 32k the 1B model fits one GPU only with every layer checkpointed.
      paper-32k) args=(-c configs/paper/table1/ssa-rf256.yaml --seq-len 32768 train.activation_checkpointing=full) ;;
      paper-32k-recompute) args=(-c configs/paper/table1/ssa-rf256.yaml --seq-len 32768
                                 train.activation_checkpointing=full
                                 train.activation_checkpointing_keep_attention=false) ;;
      # The 32k continuation as configured (document masking, every layer checkpointed), rows of
      # 16 documents.
      continuation-32k) args=(-c configs/continuation/ssa.yaml --documents 16) ;;
      *) log "benchstep: unknown run '$label'"; status=1; continue ;;
    esac
    log "training-step benchmark $label"
    # shellcheck disable=SC2086
    timeout "${SSA_BENCHSTEP_TIMEOUT:-300}" "$build/ssa" bench step "${args[@]}" --method full,sparse,ssa \
      ${SSA_BENCHSTEP_ARGS:-} \
      --out "$out/bench-step-$label.json" > "$out/bench-step-$label.md" 2>&1 || status=1
    cat "$out/bench-step-$label.md"
  done
fi

# Once per machine (runs/gpu-results/multigpu.done): a later round of the same command skips it.
if [[ $status -eq 0 && " $steps " == *" multigpu "* && ! -e $root/runs/gpu-results/multigpu.done ]] &&
    [[ -z ${SSA_DEADLINE:-} || $((SSA_DEADLINE - $(date +%s))) -ge ${SSA_MULTI_SECONDS:-330} ]]; then
  ssa_bin=$build/ssa
  runs=/tmp/gpu-multi
  gpus=$(nvidia-smi -L | wc -l)
  multi_steps=${SSA_MULTI_STEPS:-24}
  half=$((multi_steps / 2))
  # The same global batch (SSA_MULTI_ROWS_PER_GPU rows, default 2, per GPU of the largest run) on
  # every number of GPUs, p_full 1 so that every micro-batch takes the same mode whatever the split
  # (an SSA step computes both streams).
  common=(-c configs/paper/table1/ssa-rf256.yaml "data.path=$SSA_CORPUS" "train.steps=$multi_steps"
          "train.global_batch_size=$((${SSA_MULTI_ROWS_PER_GPU:-2} * gpus))" train.micro_batch_size=1
          ssa.method=ssa ssa.p_full=1.0
          eval.every=0 log.every=1 log.tensorboard=false dist.timeout_s=120)
  multi_run() {  # label, command...
    train_run multi "$1" "$multi_steps" "${SSA_MULTI_TIMEOUT:-150}" "${@:2}"
  }
  parts=" ${SSA_MULTI_PARTS:-scaling resume killed} "
  rm -rf "$runs"
  if [[ $parts == *" scaling "* ]]; then
    multi_run 1gpu "$ssa_bin" train "${common[@]}" checkpoint.every=0
    rm -rf "$runs/1gpu"  # a 1B checkpoint with its optimizer state is about 15 GB
    for zero in 0 1; do
      multi_run "${gpus}gpu-zero$zero" "${torchrun[@]}" "$gpus" "$ssa_bin" train "${common[@]}" checkpoint.every=0 "dist.zero=$zero"
      rm -rf "$runs/${gpus}gpu-zero$zero"
    done
    multi_run "${gpus}gpu-zero2" "${torchrun[@]}" "$gpus" "$ssa_bin" train "${common[@]}" "checkpoint.every=$half" checkpoint.keep_last=2 dist.zero=2
  fi
  if [[ $parts == *" resume "* ]]; then
    middle=$runs/${gpus}gpu-zero2/checkpoints/$(printf 'step-%08d' "$half")
    ls "$middle" > "$out/multi-sharded-checkpoint.txt" 2>&1
    multi_run "$((gpus / 2))gpu-zero2-resumed" "${torchrun[@]}" "$((gpus / 2))" "$ssa_bin" train "${common[@]}" checkpoint.every=0 dist.zero=2 \
      --resume "$middle"
  fi
  rm -rf "$runs"
  if [[ $parts == *" killed "* ]]; then
    # A killed rank, without torchrun (whose agent would stop the others itself): the ranks must see
    # the dead peer and exit with code 5 within dist.timeout_s.
    label=${gpus}gpu-killed
    log "multigpu: $label"
    pids=()
    for ((r = 0; r < gpus; r++)); do
      RANK=$r WORLD_SIZE=$gpus LOCAL_RANK=$r LOCAL_WORLD_SIZE=$gpus MASTER_ADDR=127.0.0.1 MASTER_PORT=29517 \
        "$ssa_bin" train "${common[@]}" checkpoint.every=0 dist.zero=2 dist.timeout_s=60 "train.run_dir=$runs/$label" \
        > "$out/multi-$label-rank$r.log" 2>&1 &
      pids+=($!)
    done
    for _ in $(seq 90); do
      # Rank 0 creates metrics.jsonl with its first step.
      [[ -f $runs/$label/metrics.jsonl && $(wc -l < "$runs/$label/metrics.jsonl") -ge 3 ]] && break
      sleep 1
    done
    # Whatever happens, nothing outlives dist.timeout_s and a margin.
    (sleep 90 && kill -KILL "${pids[@]}" 2>/dev/null) &
    guard=$!
    victim=$((gpus - 1))
    kill -KILL "${pids[$victim]}"
    killed_ns=$(date +%s%N)
    for ((r = 0; r < gpus; r++)); do
      ((r == victim)) && continue
      wait "${pids[$r]}"
      code=$?
      echo "rank $r: exit code $code, $((($(date +%s%N) - killed_ns) / 1000000)) ms after rank $victim was killed" |
        tee -a "$out/multi-$label.log"
      grep -m1 "error: rank" "$out/multi-$label-rank$r.log" | cut -c1-260 | tee -a "$out/multi-$label.log"
    done
    wait "${pids[$victim]}" 2>/dev/null
    kill "$guard" 2>/dev/null
    rm -rf "$runs"
  fi
  mkdir -p "$root/runs/gpu-results"
  touch "$root/runs/gpu-results/multigpu.done"
fi

if [[ $status -eq 0 && " $steps " == *" queue "* ]]; then
  queue_file=$root/runs/gpu-queue/queue.txt
  mkdir -p "$root/runs/gpu-queue" "$root/runs/gpu-results"
  # shellcheck disable=SC2086
  cat ${SSA_GPU_QUEUES:?SSA_GPU_QUEUES names the queue files} > "$queue_file"
  export SSA_BINARY=$build/ssa SSA_RESULTS=$root/runs/gpu-results
  log "queue: $(grep -c -v -E '^[[:space:]]*(#|$)' "$queue_file") jobs on $(nvidia-smi -L | wc -l) GPUs"
  SSA_PACK_OUT=0 bash "$root/scripts/gpu/gpu-queue.sh" "$queue_file" "$root/runs/gpu-queue"
  queue_status=$?
  log "queue exit $queue_status (0 all done, 3 to be continued, 1 a job failed)"
  mkdir -p "$out/queue-logs"
  cp "$root"/runs/gpu-queue/logs/*.log "$out/queue-logs/" 2>/dev/null
  cp -r "$root/runs/gpu-results" "$out/results"
  ((queue_status == 1)) && status=1
fi

if [[ ${SSA_GPU_PROFILE:-0} == 1 ]]; then
  ncu_bin=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  if [[ -n $ncu_bin ]]; then
    log "profiling with $ncu_bin"
    for kernel in block_select_kernel sparse_forward_kernel sparse_forward_keys_kernel sparse_backward_kernel \
        sparse_backward_dq_kernel; do
      count=1
      [[ $kernel == sparse_forward_keys_kernel ]] && count=2
      # shellcheck disable=SC2086
      timeout 150 "$ncu_bin" -k "regex:$kernel" -c $count --section SpeedOfLight --section Occupancy \
        --section LaunchStats --section WarpStateStats --section SchedulerStats --section ComputeWorkloadAnalysis \
        --section MemoryWorkloadAnalysis "${bench[@]}" --out /tmp/profile-bench.json \
        ${SSA_PROFILE_ARGS:---lengths 32768 --kv-heads 8 --block-sizes 16 --topks 16 --no-dense --repeats 1 --warmup 1} \
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
if [[ ${SSA_PACK_OUT:-0} == 1 ]]; then
  tar -C "$out" -czf /tmp/round-out.tgz . && find "$out" -mindepth 1 -delete && mv /tmp/round-out.tgz "$out/out.tgz"
fi
exit $status
