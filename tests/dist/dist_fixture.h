// Runs `ssa train` as several ranks on localhost (the Gloo backend), the way torchrun would
// start them: one process per rank with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/run_command.h"

namespace ssa::test {

// A TCP port that was free a moment ago.
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// `ssa train ARGS` with `env` added to this process's environment (minus any launcher
// variables), output in `log`. Returns the pid.
inline pid_t spawn_ssa_train(const std::vector<std::string>& args, const std::vector<std::string>& env,
                             const std::filesystem::path& log) {
  std::vector<std::string> command = {"train"};
  command.insert(command.end(), args.begin(), args.end());
  std::vector<std::string> env_storage;
  for (char** e = environ; *e; ++e) {
    const std::string var(*e);
    bool launcher = false;
    for (const char* prefix : {"RANK=", "WORLD_SIZE=", "LOCAL_RANK=", "LOCAL_WORLD_SIZE=", "MASTER_ADDR=",
                               "MASTER_PORT=", "SLURM_", "OMP_NUM_THREADS="}) {
      launcher = launcher || var.rfind(prefix, 0) == 0;
    }
    if (!launcher) env_storage.push_back(var);
  }
  // Two CPU cores are shared by the ranks: one thread each.
  env_storage.push_back("OMP_NUM_THREADS=1");
  env_storage.insert(env_storage.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  return spawn_ssa(std::move(command), log, envp.data());
}

// The exit code of `pid`, or nullopt if it is still running after `timeout` (it is then killed)
// or died of a signal.
inline std::optional<int> wait_exit(pid_t pid, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) return WIFEXITED(status) ? std::optional<int>(WEXITSTATUS(status)) : std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return std::nullopt;
}

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Starts `world` ranks of `ssa train ARGS`; rank r logs to `log_prefix`-r.log.
inline std::vector<pid_t> spawn_ranks(int world, const std::vector<std::string>& args,
                                      const std::filesystem::path& log_prefix) {
  const int port = free_port();
  std::vector<pid_t> pids;
  for (int rank = 0; rank < world; ++rank) {
    const std::vector<std::string> env = {"RANK=" + std::to_string(rank), "WORLD_SIZE=" + std::to_string(world),
                                          "LOCAL_RANK=" + std::to_string(rank),
                                          "LOCAL_WORLD_SIZE=" + std::to_string(world), "MASTER_ADDR=127.0.0.1", "GLOO_SOCKET_IFNAME=lo",
                                          "MASTER_PORT=" + std::to_string(port)};
    pids.push_back(spawn_ssa_train(args, env, log_prefix.string() + "-" + std::to_string(rank) + ".log"));
  }
  return pids;
}

}  // namespace ssa::test
