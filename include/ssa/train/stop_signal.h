// SIGTERM / SIGINT during training: the first one asks the run to stop after the current step
// (it then writes a checkpoint and exits with ssa::exit_code::kStopped); a second one ends the
// process at once with the signal's default action.
#pragma once

namespace ssa::train {

class StopSignal {
 public:
  // Installs the handlers; the destructor restores the previous ones. One instance at a time.
  StopSignal();
  ~StopSignal();
  StopSignal(const StopSignal&) = delete;
  StopSignal& operator=(const StopSignal&) = delete;

  bool requested() const;
  // The signal that asked to stop (SIGTERM or SIGINT), 0 if none.
  int signal_number() const;
};

}  // namespace ssa::train
