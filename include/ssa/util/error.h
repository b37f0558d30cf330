// Error types and their exit codes. Every user-facing failure is one of these, caught in main(),
// printed as one line and turned into the documented exit code.
#pragma once

#include <stdexcept>
#include <string>

namespace ssa {

// A problem with the user's input: configuration, command-line usage, file contents. Exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A configuration error (unknown key, wrong type, impossible combination). Exit code 2.
class ConfigError : public UsageError {
 public:
  using UsageError::UsageError;
};

// A corrupt, truncated or inconsistent file (shards, checkpoints, safetensors). Exit code 1.
class FormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace exit_code {
inline constexpr int kOk = 0;
inline constexpr int kFailure = 1;   // runtime failure, corrupt file
inline constexpr int kUsage = 2;     // bad configuration or command line
inline constexpr int kStopped = 3;   // stopped by SIGTERM/SIGINT after writing a checkpoint
inline constexpr int kDiverged = 4;  // too many non-finite steps in a row
inline constexpr int kPeerLost = 5;  // another distributed rank died or timed out
}  // namespace exit_code

}  // namespace ssa
