#include "ssa/dist/launch_environment.h"

#include <fmt/format.h>

#include <cstdlib>

#include "ssa/util/error.h"

namespace ssa::dist {
namespace {

int64_t parse_count(const std::string& name, const std::string& value) {
  size_t pos = 0;
  int64_t v = -1;
  try {
    v = std::stoll(value, &pos);
  } catch (const std::exception&) {
    pos = 0;
  }
  if (pos == 0 || pos != value.size() || v < 0) {
    throw UsageError(fmt::format("environment variable {}='{}' is not a non-negative integer", name, value));
  }
  return v;
}

class Reader {
 public:
  explicit Reader(const EnvLookup& lookup) : lookup_(lookup) {}
  bool has(const std::string& name) const { return lookup_(name).has_value(); }
  std::string text(const std::string& name) const {
    auto v = lookup_(name);
    if (!v || v->empty()) throw UsageError(fmt::format("distributed launch: environment variable {} is not set", name));
    return *v;
  }
  int64_t count(const std::string& name) const { return parse_count(name, text(name)); }
  int64_t count_or(const std::string& name, int64_t fallback) const { return has(name) ? count(name) : fallback; }

 private:
  const EnvLookup& lookup_;
};

void check(const LaunchEnvironment& e, const char* rank_var, const char* world_var, const char* local_var) {
  if (e.world_size < 1) throw UsageError(fmt::format("environment variable {} must be at least 1", world_var));
  if (e.rank >= e.world_size) {
    throw UsageError(fmt::format("environment: {}={} is not below {}={}", rank_var, e.rank, world_var, e.world_size));
  }
  if (e.local_world_size < 1 || e.local_rank >= e.local_world_size) {
    throw UsageError(fmt::format("environment: {}={} does not fit {} task(s) on this node", local_var, e.local_rank,
                                 e.local_world_size));
  }
  if (e.master_port < 1 || e.master_port > 65535) {
    throw UsageError(fmt::format("environment: MASTER_PORT={} is not a TCP port", e.master_port));
  }
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  // The first entry ends at the first comma outside brackets.
  std::string entry;
  int depth = 0;
  for (char ch : nodelist) {
    if (ch == ',' && depth == 0) break;
    depth += ch == '[' ? 1 : ch == ']' ? -1 : 0;
    entry.push_back(ch);
  }
  const auto open = entry.find('[');
  if (open == std::string::npos) return entry;
  // "prefix[03-05,7]suffix": the first number of the range, zero padding kept.
  const auto close = entry.find(']', open);
  if (close == std::string::npos) throw UsageError(fmt::format("SLURM node list '{}' is malformed", nodelist));
  const std::string range = entry.substr(open + 1, close - open - 1);
  const auto end = range.find_first_of(",-");
  return entry.substr(0, open) + range.substr(0, end) + entry.substr(close + 1);
}

int64_t slurm_tasks_on_node(const std::string& tasks_per_node, int64_t node) {
  int64_t first_node = 0;
  size_t start = 0;
  while (start <= tasks_per_node.size()) {
    const auto comma = tasks_per_node.find(',', start);
    const std::string item = tasks_per_node.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    // "N" or "N(xR)": N tasks on each of R nodes.
    const auto paren = item.find("(x");
    const int64_t tasks = parse_count("SLURM_TASKS_PER_NODE", item.substr(0, paren));
    int64_t repeat = 1;
    if (paren != std::string::npos) {
      if (item.back() != ')') throw UsageError(fmt::format("SLURM tasks per node '{}' is malformed", tasks_per_node));
      repeat = parse_count("SLURM_TASKS_PER_NODE", item.substr(paren + 2, item.size() - paren - 3));
    }
    if (node < first_node + repeat) return tasks;
    first_node += repeat;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  throw UsageError(fmt::format("SLURM tasks per node '{}' lists no node {}", tasks_per_node, node));
}

LaunchEnvironment read_launch_environment(const EnvLookup& lookup) {
  const Reader env(lookup);
  LaunchEnvironment e;
  if (env.has("RANK") || env.has("WORLD_SIZE")) {
    e.launcher = "torchrun";
    e.rank = env.count("RANK");
    e.world_size = env.count("WORLD_SIZE");
    e.local_rank = env.count_or("LOCAL_RANK", 0);
    e.local_world_size = env.count_or("LOCAL_WORLD_SIZE", std::max<int64_t>(e.local_rank + 1, 1));
    e.master_addr = env.text("MASTER_ADDR");
    e.master_port = env.count("MASTER_PORT");
    e.agent_store = lookup("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
    e.restart_count = env.count_or("TORCHELASTIC_RESTART_COUNT", 0);
    check(e, "RANK", "WORLD_SIZE", "LOCAL_RANK");
    return e;
  }
  if (env.has("SLURM_PROCID") && env.has("SLURM_NTASKS")) {
    e.launcher = "slurm";
    e.rank = env.count("SLURM_PROCID");
    e.world_size = env.count("SLURM_NTASKS");
    e.local_rank = env.count_or("SLURM_LOCALID", 0);
    if (env.has("SLURM_NTASKS_PER_NODE")) {
      e.local_world_size = slurm_tasks_on_node(env.text("SLURM_NTASKS_PER_NODE"), 0);
    } else if (env.has("SLURM_TASKS_PER_NODE")) {
      e.local_world_size = slurm_tasks_on_node(env.text("SLURM_TASKS_PER_NODE"), env.count_or("SLURM_NODEID", 0));
    } else {
      e.local_world_size = e.world_size;
    }
    if (env.has("MASTER_ADDR")) {
      e.master_addr = env.text("MASTER_ADDR");
    } else {
      e.master_addr = first_slurm_host(env.has("SLURM_NODELIST") ? env.text("SLURM_NODELIST") : env.text("SLURM_JOB_NODELIST"));
    }
    e.master_port = env.has("MASTER_PORT") ? env.count("MASTER_PORT") : 29500 + env.count_or("SLURM_JOB_ID", 0) % 1000;
    check(e, "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID");
    return e;
  }
  return e;
}

LaunchEnvironment read_launch_environment() {
  return read_launch_environment([](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  });
}

}  // namespace ssa::dist
