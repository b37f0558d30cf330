// A rank must never wait forever for one that died or hangs. Every blocking wait on the other
// ranks (collectives, barriers, the communication part of a step) runs under a Guard; a guard
// still alive after dist.timeout_s makes the process print one line and exit with
// exit_code::kPeerLost. A separate thread watches the clock because the waiting thread may be
// stuck inside NCCL or a socket read where no timeout of ours reaches.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace ssa::dist {

// Prints "error: rank R: MESSAGE" (stderr and the run log) and ends the process with
// exit_code::kPeerLost at once: destructors could block on the broken communicator.
[[noreturn]] void exit_peer_lost(int64_t rank, const std::string& message);

class FaultWatchdog {
 public:
  FaultWatchdog(int64_t rank, std::chrono::seconds timeout);
  ~FaultWatchdog();
  FaultWatchdog(const FaultWatchdog&) = delete;
  FaultWatchdog& operator=(const FaultWatchdog&) = delete;

  // Arms the watchdog for `what` (nested guards keep the outermost deadline).
  class Guard {
   public:
    Guard(FaultWatchdog& watchdog, std::string what);
    ~Guard();
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    FaultWatchdog& watchdog_;
  };

  std::chrono::seconds timeout() const { return timeout_; }

 private:
  void watch();

  int64_t rank_;
  std::chrono::seconds timeout_;
  std::mutex mutex_;
  std::condition_variable changed_;
  int depth_ = 0;
  std::string what_;
  std::chrono::steady_clock::time_point deadline_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace ssa::dist
