// Who this process is in a multi-process run, read from the launcher's environment:
//   torchrun (and any launcher like it): RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
//     MASTER_ADDR, MASTER_PORT; under torchrun the rendezvous store is the agent's
//     (TORCHELASTIC_USE_AGENT_STORE=True), keyed by TORCHELASTIC_RESTART_COUNT.
//   SLURM (srun): SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NODEID,
//     SLURM_NTASKS_PER_NODE or SLURM_TASKS_PER_NODE; the master is MASTER_ADDR or the first
//     host of SLURM_NODELIST (SLURM_JOB_NODELIST), its port MASTER_PORT or 29500 + the job id
//     modulo 1000 (jobs sharing a node then rarely collide).
// Neither set: one process, no process group (the single-process trainer, unchanged).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace ssa::dist {

struct LaunchEnvironment {
  std::string launcher = "none";  // none | torchrun | slurm
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;  // picks the GPU
  int64_t local_world_size = 1;
  std::string master_addr;
  int64_t master_port = 0;
  bool agent_store = false;  // connect to the launcher's store instead of hosting one on rank 0
  int64_t restart_count = 0;

  bool distributed() const { return launcher != "none"; }
};

using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// The launch environment from `lookup` (the process environment by default). UsageError with a
// one-line message naming the variable when one is missing, not a number or out of range.
LaunchEnvironment read_launch_environment(const EnvLookup& lookup);
LaunchEnvironment read_launch_environment();

// The first host of a SLURM node list: "gpu[03-05,7],cpu1" -> "gpu03", "a,b" -> "a".
std::string first_slurm_host(const std::string& nodelist);

// Tasks on node `node` of a SLURM tasks-per-node list: "4(x2),3" has 4, 4, 3 on nodes 0, 1, 2.
int64_t slurm_tasks_on_node(const std::string& tasks_per_node, int64_t node);

}  // namespace ssa::dist
