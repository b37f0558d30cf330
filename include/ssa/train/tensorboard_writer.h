// TensorBoard event files (`events.out.tfevents.<time>.<host>`) with scalar summaries, so that
// `tensorboard --logdir run_dir/tb` shows the training curves.
//
// Written by hand: a file is a sequence of TFRecords (uint64 length, masked CRC-32C of the
// length, the bytes, masked CRC-32C of the bytes) each holding a serialized tensorflow.Event
// protobuf. Debian packages no generated TensorBoard/TensorFlow protobuf schema for C++, and
// the three messages we write (Event, Summary, Summary.Value with simple_value) take a few
// lines of protobuf wire encoding; pulling in protoc and the schema would cost more than it saves.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ssa::train {

// CRC-32C (Castagnoli polynomial, reflected 0x82F63B78), as TFRecord uses. Hand-written: zlib's
// crc32 is the IEEE polynomial and the project has no other CRC library.
uint32_t crc32c(std::string_view bytes);
// TFRecord's masking: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t masked_crc32c(std::string_view bytes);

// The serialized tensorflow.Event holding scalar summaries for `step`.
std::string scalar_event(double wall_time, int64_t step, const std::vector<std::pair<std::string, float>>& scalars);
// The first record of every event file: an Event with file_version "brain.Event:2".
std::string file_version_event(double wall_time);
// One TFRecord around `payload`.
std::string tf_record(std::string_view payload);

class TensorBoardWriter {
 public:
  // Creates `folder` and a new event file in it.
  explicit TensorBoardWriter(const std::filesystem::path& folder);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // Appends the scalars of `step` and flushes (a crashed run keeps what it logged).
  void add_scalars(int64_t step, const std::vector<std::pair<std::string, float>>& scalars);

  const std::filesystem::path& path() const { return path_; }

 private:
  void append(const std::string& record);
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
};

}  // namespace ssa::train
