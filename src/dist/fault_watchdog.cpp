#include "ssa/dist/fault_watchdog.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>

#include "ssa/util/error.h"

namespace ssa::dist {

void exit_peer_lost(int64_t rank, const std::string& message) {
  const std::string line = fmt::format("rank {}: {}", rank, message);
  std::fprintf(stderr, "error: %s\n", line.c_str());
  std::fflush(stderr);
  try {
    spdlog::error("{}", line);
    spdlog::default_logger()->flush();
  } catch (...) {
  }
  std::_Exit(exit_code::kPeerLost);
}

FaultWatchdog::FaultWatchdog(int64_t rank, std::chrono::seconds timeout)
    : rank_(rank), timeout_(timeout), thread_([this] { watch(); }) {}

FaultWatchdog::~FaultWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

FaultWatchdog::Guard::Guard(FaultWatchdog& watchdog, std::string what) : watchdog_(watchdog) {
  {
    std::lock_guard<std::mutex> lock(watchdog_.mutex_);
    if (watchdog_.depth_++ > 0) return;
    watchdog_.what_ = std::move(what);
    watchdog_.deadline_ = std::chrono::steady_clock::now() + watchdog_.timeout_;
  }
  watchdog_.changed_.notify_all();
}

FaultWatchdog::Guard::~Guard() {
  {
    std::lock_guard<std::mutex> lock(watchdog_.mutex_);
    --watchdog_.depth_;
  }
  watchdog_.changed_.notify_all();
}

void FaultWatchdog::watch() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    if (depth_ == 0) {
      changed_.wait(lock);
      continue;
    }
    const auto deadline = deadline_;
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout && depth_ > 0 && deadline_ == deadline) {
      exit_peer_lost(rank_, fmt::format("{} waited {} s for the other ranks (dist.timeout_s): a rank died or hangs",
                                        what_, timeout_.count()));
    }
  }
}

}  // namespace ssa::dist
