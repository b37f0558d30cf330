// Reading the launcher's variables: torchrun, SLURM, none, and the one-line errors.
#include <gtest/gtest.h>

#include <map>

#include "ssa/dist/launch_environment.h"
#include "ssa/util/error.h"

namespace ssa::dist {
namespace {

LaunchEnvironment read(const std::map<std::string, std::string>& vars) {
  return read_launch_environment([&](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  });
}

TEST(LaunchEnvironment, NoVariablesMeansOneProcess) {
  const auto e = read({});
  EXPECT_FALSE(e.distributed());
  EXPECT_EQ(e.rank, 0);
  EXPECT_EQ(e.world_size, 1);
}

TEST(LaunchEnvironment, Torchrun) {
  const auto e = read({{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "4"},
                       {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "29400"}, {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                       {"TORCHELASTIC_RESTART_COUNT", "2"}});
  EXPECT_EQ(e.launcher, "torchrun");
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 4);
  EXPECT_EQ(e.master_addr, "node7");
  EXPECT_EQ(e.master_port, 29400);
  EXPECT_TRUE(e.agent_store);
  EXPECT_EQ(e.restart_count, 2);
}

TEST(LaunchEnvironment, TorchrunVariablesWinOverSlurm) {
  const auto e = read({{"RANK", "0"}, {"WORLD_SIZE", "1"}, {"MASTER_ADDR", "localhost"}, {"MASTER_PORT", "29500"},
                       {"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"}});
  EXPECT_EQ(e.launcher, "torchrun");
  EXPECT_EQ(e.world_size, 1);
  EXPECT_FALSE(e.agent_store);
}

TEST(LaunchEnvironment, Slurm) {
  const auto e = read({{"SLURM_PROCID", "6"}, {"SLURM_NTASKS", "7"}, {"SLURM_LOCALID", "2"}, {"SLURM_NODEID", "1"},
                       {"SLURM_TASKS_PER_NODE", "4,3"}, {"SLURM_NODELIST", "gpu[07-08]"}, {"SLURM_JOB_ID", "123456"}});
  EXPECT_EQ(e.launcher, "slurm");
  EXPECT_EQ(e.rank, 6);
  EXPECT_EQ(e.world_size, 7);
  EXPECT_EQ(e.local_rank, 2);
  EXPECT_EQ(e.local_world_size, 3);
  EXPECT_EQ(e.master_addr, "gpu07");
  EXPECT_EQ(e.master_port, 29500 + 456);
}

TEST(LaunchEnvironment, SlurmTakesMasterAddressAndPortFromTheEnvironmentWhenSet) {
  const auto e = read({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_NTASKS_PER_NODE", "2"},
                       {"SLURM_NODELIST", "a,b"}, {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "1234"}});
  EXPECT_EQ(e.master_addr, "10.0.0.1");
  EXPECT_EQ(e.master_port, 1234);
  EXPECT_EQ(e.local_world_size, 2);
}

TEST(LaunchEnvironment, SlurmNodeLists) {
  EXPECT_EQ(first_slurm_host("gpu[03-05,7],cpu1"), "gpu03");
  EXPECT_EQ(first_slurm_host("a,b"), "a");
  EXPECT_EQ(first_slurm_host("node-[12,3]-ib"), "node-12-ib");
  EXPECT_EQ(first_slurm_host("single"), "single");
  EXPECT_THROW(first_slurm_host("bad[1-2"), UsageError);
}

TEST(LaunchEnvironment, SlurmTasksPerNode) {
  EXPECT_EQ(slurm_tasks_on_node("4(x2),3", 0), 4);
  EXPECT_EQ(slurm_tasks_on_node("4(x2),3", 1), 4);
  EXPECT_EQ(slurm_tasks_on_node("4(x2),3", 2), 3);
  EXPECT_EQ(slurm_tasks_on_node("8", 0), 8);
  EXPECT_THROW(slurm_tasks_on_node("4(x2),3", 3), UsageError);
  EXPECT_THROW(slurm_tasks_on_node("x", 0), UsageError);
}

TEST(LaunchEnvironment, BadValuesAreOneLineUsageErrors) {
  const std::map<std::string, std::string> good = {
      {"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "29500"}};
  const auto with = [&](const std::string& key, const std::string& value) {
    auto vars = good;
    vars[key] = value;
    return vars;
  };
  const auto message = [&](const std::map<std::string, std::string>& vars) {
    try {
      read(vars);
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(with("RANK", "2")).find("RANK=2 is not below WORLD_SIZE=2"), std::string::npos);
  EXPECT_NE(message(with("WORLD_SIZE", "two")).find("WORLD_SIZE='two'"), std::string::npos);
  EXPECT_NE(message(with("MASTER_PORT", "70000")).find("MASTER_PORT"), std::string::npos);
  auto no_master = good;
  no_master.erase("MASTER_ADDR");
  EXPECT_NE(message(no_master).find("MASTER_ADDR is not set"), std::string::npos);
  auto local = with("LOCAL_RANK", "3");
  local["LOCAL_WORLD_SIZE"] = "2";
  EXPECT_NE(message(local).find("LOCAL_RANK=3"), std::string::npos);
  EXPECT_EQ(message(good), "no error");
}

}  // namespace
}  // namespace ssa::dist
