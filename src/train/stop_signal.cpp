#include "ssa/train/stop_signal.h"

#include <unistd.h>

#include <csignal>
#include <stdexcept>

namespace ssa::train {
namespace {

volatile std::sig_atomic_t g_signal = 0;
bool g_installed = false;
struct sigaction g_previous_term, g_previous_int;

void on_signal(int signal_number) {
  if (g_signal != 0) {
    // Second signal: default action (terminate) right away. Only async-signal-safe calls here.
    std::signal(signal_number, SIG_DFL);
    std::raise(signal_number);
    return;
  }
  g_signal = signal_number;
  // Immediate feedback; write(2) is async-signal-safe, logging is not.
  static const char message[] =
      "ssa train: stop requested: finishing the current step, then writing a checkpoint (signal again to exit at "
      "once)\n";
  const ssize_t ignored = ::write(STDERR_FILENO, message, sizeof(message) - 1);
  (void)ignored;
}

}  // namespace

StopSignal::StopSignal() {
  if (g_installed) throw std::logic_error("StopSignal: only one instance at a time");
  g_signal = 0;
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // blocking reads and writes continue instead of failing with EINTR
  sigaction(SIGTERM, &action, &g_previous_term);
  sigaction(SIGINT, &action, &g_previous_int);
  g_installed = true;
}

StopSignal::~StopSignal() {
  sigaction(SIGTERM, &g_previous_term, nullptr);
  sigaction(SIGINT, &g_previous_int, nullptr);
  g_installed = false;
}

bool StopSignal::requested() const { return g_signal != 0; }
int StopSignal::signal_number() const { return static_cast<int>(g_signal); }

}  // namespace ssa::train
