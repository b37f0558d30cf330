#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "ssa/train/tensorboard_writer.h"
#include "support/temp_dir.h"

namespace ssa::train {
namespace {

// A reader of the few protobuf fields the writer uses, independent of the writer's code.
struct Reader {
  std::string_view bytes;
  size_t at = 0;
  bool done() const { return at >= bytes.size(); }
  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0;; shift += 7) {
      const auto b = static_cast<uint8_t>(bytes.at(at++));
      value |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return value;
    }
  }
  template <class T>
  T fixed() {
    T v;
    std::memcpy(&v, bytes.data() + at, sizeof(T));
    at += sizeof(T);
    return v;
  }
  std::string_view length_delimited() {
    const auto n = varint();
    auto out = bytes.substr(at, n);
    at += n;
    return out;
  }
};

struct Event {
  double wall_time = 0;
  int64_t step = -1;
  std::string file_version;
  std::vector<std::pair<std::string, float>> values;
};

Event parse_event(std::string_view bytes) {
  Event e;
  Reader r{bytes};
  while (!r.done()) {
    const auto tag = r.varint();
    switch (tag) {
      case (1 << 3) | 1: e.wall_time = r.fixed<double>(); break;
      case (2 << 3) | 0: e.step = static_cast<int64_t>(r.varint()); break;
      case (3 << 3) | 2: e.file_version = std::string(r.length_delimited()); break;
      case (5 << 3) | 2: {
        Reader summary{r.length_delimited()};
        while (!summary.done()) {
          EXPECT_EQ(summary.varint(), (1u << 3) | 2);
          Reader value{summary.length_delimited()};
          std::pair<std::string, float> item;
          while (!value.done()) {
            const auto t = value.varint();
            if (t == ((1 << 3) | 2)) item.first = std::string(value.length_delimited());
            else if (t == ((2 << 3) | 5)) item.second = value.fixed<float>();
            else ADD_FAILURE() << "unexpected Value field " << t;
          }
          e.values.push_back(item);
        }
        break;
      }
      default: ADD_FAILURE() << "unexpected Event field " << tag; return e;
    }
  }
  return e;
}

// Splits a TFRecord file, checking every length and CRC.
std::vector<std::string> read_records(const std::string& file) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < file.size()) {
    EXPECT_GE(file.size() - at, 12u);
    uint64_t length;
    uint32_t length_crc;
    std::memcpy(&length, file.data() + at, 8);
    std::memcpy(&length_crc, file.data() + at + 8, 4);
    EXPECT_EQ(length_crc, masked_crc32c(std::string_view(file.data() + at, 8)));
    const std::string payload = file.substr(at + 12, length);
    uint32_t payload_crc;
    std::memcpy(&payload_crc, file.data() + at + 12 + length, 4);
    EXPECT_EQ(payload_crc, masked_crc32c(payload));
    out.push_back(payload);
    at += 12 + length + 4;
  }
  EXPECT_EQ(at, file.size());
  return out;
}

TEST(TensorBoard, Crc32cCheckValues) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);  // the CRC-32C check value (RFC 3720)
  EXPECT_EQ(crc32c(""), 0u);
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);  // RFC 3720 B.4: 32 bytes of zeros
}

TEST(TensorBoard, EventFileHoldsFramedScalarEvents) {
  test::TempDir dir;
  std::filesystem::path path;
  {
    TensorBoardWriter writer(dir / "tb");
    writer.add_scalars(1, {{"train/loss", 4.5f}, {"train/lr", 1e-3f}});
    writer.add_scalars(2, {{"train/loss", 3.25f}});
    path = writer.path();
  }
  EXPECT_NE(path.filename().string().find("events.out.tfevents."), std::string::npos);
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const auto records = read_records(ss.str());
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(parse_event(records[0]).file_version, "brain.Event:2");
  const auto first = parse_event(records[1]);
  EXPECT_EQ(first.step, 1);
  EXPECT_GT(first.wall_time, 1.6e9);
  ASSERT_EQ(first.values.size(), 2u);
  EXPECT_EQ(first.values[0].first, "train/loss");
  EXPECT_FLOAT_EQ(first.values[0].second, 4.5f);
  EXPECT_EQ(first.values[1].first, "train/lr");
  EXPECT_FLOAT_EQ(first.values[1].second, 1e-3f);
  const auto second = parse_event(records[2]);
  EXPECT_EQ(second.step, 2);
  EXPECT_FLOAT_EQ(second.values.at(0).second, 3.25f);
}

}  // namespace
}  // namespace ssa::train
