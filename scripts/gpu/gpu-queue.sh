#!/usr/bin/env bash
# Runs the commands of a queue file on the GPUs of this machine: one worker per GPU takes the next
# command not yet taken (file order) and runs it with CUDA_VISIBLE_DEVICES set to its GPU, until
# none is left or SSA_DEADLINE (seconds since the epoch) has passed. Used to spread many one-GPU
# jobs (the replication's trainings, benchmarks) over a multi-GPU machine.
#
#   bash scripts/gpu/gpu-queue.sh QUEUE_FILE STATE_DIR
#
# QUEUE_FILE: one bash command per line, run from the repository root; blank lines and lines
# starting with # are skipped. A line `@S command` is started only while at least S seconds
# remain before SSA_DEADLINE (for commands that do not stop at the deadline themselves). A command that exits 0 is recorded in STATE_DIR/done and skipped
# when the queue runs again, so the same call can be repeated until everything is done (the
# commands must themselves resume, as scripts/replicate.sh does). Each command's output goes to
# STATE_DIR/logs/<line number>.log. SSA_GPUS lists the GPU indices to use (default: all).
# A worker whose command fails goes on with the next one. Exit code: 0 when every command is
# done, 3 when some are left because time ran out, 1 when one failed.
set -uo pipefail
if (($# != 2)); then
  echo "usage: gpu-queue.sh QUEUE_FILE STATE_DIR" >&2
  exit 2
fi
queue=$1
state=$2
[[ -f $queue ]] || { echo "gpu-queue.sh: no queue file $queue" >&2; exit 2; }
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$state/done" "$state/logs"
read -r -a gpus <<<"${SSA_GPUS:-$(nvidia-smi --query-gpu=index --format=csv,noheader | tr '\n' ' ')}"
((${#gpus[@]})) || { echo "gpu-queue.sh: no GPU" >&2; exit 2; }
# Claims of this call only: a command taken by a worker is a folder here (mkdir is atomic).
claims=$(mktemp -d)
trap 'rm -rf "$claims"' EXIT

mapfile -t lines <"$queue"
key() { printf '%s' "${lines[$1]}" | sha1sum | cut -c1-16; }
time_left() { [[ -z ${SSA_DEADLINE:-} ]] || (($(date +%s) + $1 < SSA_DEADLINE)); }

worker() {
  local gpu=$1 i code failed=0
  for i in "${!lines[@]}"; do
    [[ ${lines[$i]} =~ ^[[:space:]]*(#|$) ]] && continue
    [[ -e $state/done/$(key "$i") ]] && continue
    local command=${lines[$i]} needs=0
    if [[ $command =~ ^@([0-9]+)[[:space:]]+(.*)$ ]]; then
      needs=${BASH_REMATCH[1]}
      command=${BASH_REMATCH[2]}
    fi
    time_left 0 || return 3
    # Too little time for this one: leave it to a later call (another worker may take a shorter one).
    time_left "$needs" || continue
    mkdir "$claims/$i" 2>/dev/null || continue
    echo "[queue $(date +%H:%M:%S)] gpu $gpu: line $((i + 1)): $command"
    local start=$SECONDS
    (cd "$root" && CUDA_VISIBLE_DEVICES=$gpu bash -c "$command") >"$state/logs/$((i + 1)).log" 2>&1
    code=$?
    echo "[queue $(date +%H:%M:%S)] gpu $gpu: line $((i + 1)) exit $code after $((SECONDS - start)) s"
    if ((code == 0)); then
      echo "${lines[$i]}" >"$state/done/$(key "$i")"
    elif ((code == 3)); then
      return 3
    else
      tail -5 "$state/logs/$((i + 1)).log" | sed "s/^/[queue] line $((i + 1)): /"
      failed=1
    fi
  done
  return $failed
}

pids=()
for gpu in "${gpus[@]}"; do
  worker "$gpu" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid"
  code=$?
  if ((code == 1)); then
    status=1
  elif ((code == 3 && status == 0)); then
    status=3
  fi
done
# A command still not done (not taken because time ran out) leaves the queue unfinished.
if ((status == 0)); then
  for i in "${!lines[@]}"; do
    [[ ${lines[$i]} =~ ^[[:space:]]*(#|$) ]] && continue
    [[ -e $state/done/$(key "$i") ]] || status=3
  done
fi
exit $status
