#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "ssa/io/atomic_file.h"
#include "ssa/io/safetensors.h"
#include "ssa/util/error.h"
#include "support/temp_dir.h"

namespace ssa::io {
namespace {
namespace fs = std::filesystem;

constexpr DType kAllDTypes[] = {DType::kBool, DType::kU8,   DType::kI8,  DType::kF8E5M2, DType::kF8E4M3,
                                DType::kI16,  DType::kU16,  DType::kF16, DType::kBF16,   DType::kI32,
                                DType::kU32,  DType::kF32,  DType::kF64, DType::kI64,    DType::kU64};

std::vector<std::byte> random_bytes(std::size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::byte> out(n);
  for (auto& b : out) b = static_cast<std::byte>(rng() & 0xff);
  return out;
}

std::string bytes_of(const TensorView& view) { return std::string(reinterpret_cast<const char*>(view.data), view.nbytes); }
std::string bytes_of(const std::vector<std::byte>& v) { return std::string(reinterpret_cast<const char*>(v.data()), v.size()); }

std::string le_u64(uint64_t value) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  return out;
}

// A file's three parts, to build corrupt variants of a valid file.
struct Parts {
  std::string header;  // without the length prefix
  std::string data;
};

Parts split(const std::string& file) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(file[i]);
  return {file.substr(8, n), file.substr(8 + n)};
}

std::string join(const std::string& header, const std::string& data) { return le_u64(header.size()) + header + data; }

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "'" << from << "' not in " << text;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

// Writes `bytes` as `name` and expects SafetensorsFile::open to throw a FormatError that names the
// file and contains `fragment`.
void expect_format_error(const test::TempDir& dir, const std::string& name, const std::string& bytes,
                         const std::string& fragment) {
  SCOPED_TRACE(name);
  const fs::path path = dir / name;
  write_file_atomic(path, bytes);
  try {
    SafetensorsFile::open(path);
    ADD_FAILURE() << "expected a FormatError for " << name;
  } catch (const FormatError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path.string()), std::string::npos) << message;
    EXPECT_NE(message.find(fragment), std::string::npos) << "'" << fragment << "' not in: " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

// Two F32 tensors "a" = [0, 8) and "b" = [8, 16), no metadata; header `{"a":...,"b":...}`.
std::string two_tensor_file() {
  const float a[2] = {1.0f, 2.0f};
  const float b[2] = {3.0f, 4.0f};
  SafetensorsWriter writer;
  writer.clear_metadata();
  writer.add("a", DType::kF32, {2}, a, sizeof a);
  writer.add("b", DType::kF32, {2}, b, sizeof b);
  return writer.header() + std::string(reinterpret_cast<const char*>(a), 8) + std::string(reinterpret_cast<const char*>(b), 8);
}

const std::string kEntryA = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
const std::string kEntryB = R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]})";

TEST(SafetensorsDType, NamesSizesAndOrder) {
  EXPECT_EQ(dtype_name(DType::kBF16), "BF16");
  EXPECT_EQ(dtype_name(DType::kF8E4M3), "F8_E4M3");
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);
  EXPECT_EQ(dtype_size(DType::kF64), 8u);
  EXPECT_EQ(dtype_size(DType::kBool), 1u);
  for (DType d : kAllDTypes) EXPECT_EQ(dtype_from_name(dtype_name(d)), d);
  EXPECT_FALSE(dtype_from_name("bf16").has_value());
  EXPECT_FALSE(dtype_from_name("F128").has_value());
  EXPECT_EQ(element_count({}), 1u);
  EXPECT_EQ(element_count({2, 0, 5}), 0u);
  EXPECT_EQ(element_count({3, 4}), 12u);
  EXPECT_FALSE(element_count({-1}).has_value());
  EXPECT_FALSE(element_count({int64_t{1} << 40, int64_t{1} << 40}).has_value());
}

TEST(Safetensors, RoundTripsEveryDTypeByteExact) {
  test::TempDir dir;
  SafetensorsWriter writer;
  std::vector<std::vector<std::byte>> buffers;
  std::vector<std::string> names;
  uint64_t seed = 1;
  for (DType d : kAllDTypes) {
    // An odd element count per dtype, so alignment depends on the writer's ordering.
    for (const std::vector<int64_t>& shape : {std::vector<int64_t>{3, 5}, std::vector<int64_t>{}, std::vector<int64_t>{7}}) {
      const std::string name = fmt::format("{}.{}d", dtype_name(d), shape.size());
      buffers.push_back(random_bytes(*element_count(shape) * dtype_size(d), seed++));
      writer.add(name, d, shape, buffers.back().data(), buffers.back().size());
      names.push_back(name);
    }
  }
  writer.add("empty", DType::kF32, {0, 4}, nullptr, 0);
  writer.write(dir / "all.safetensors");

  const auto file = SafetensorsFile::open(dir / "all.safetensors");
  EXPECT_EQ(file.tensors().size(), names.size() + 1);
  for (std::size_t i = 0; i < names.size(); ++i) {
    SCOPED_TRACE(names[i]);
    const TensorInfo* info = file.find(names[i]);
    ASSERT_NE(info, nullptr);
    const TensorView view = file.tensor(names[i]);
    EXPECT_EQ(view.dtype, writer.entries()[i].dtype);
    EXPECT_EQ(view.shape, writer.entries()[i].shape);
    EXPECT_EQ(view.nbytes, buffers[i].size());
    EXPECT_EQ(bytes_of(view), bytes_of(buffers[i]));
    // Larger dtypes first keeps every tensor aligned to its element size in the mapping.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(view.data) % dtype_size(view.dtype), 0u);
  }
  const TensorView empty = file.tensor("empty");
  EXPECT_EQ(empty.nbytes, 0u);
  EXPECT_EQ(empty.shape, (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  EXPECT_EQ(file.find("absent"), nullptr);
  EXPECT_THROW(file.tensor("absent"), FormatError);
}

TEST(Safetensors, StoresTensorsByDTypeDescendingThenName) {
  test::TempDir dir;
  const std::vector<std::byte> bytes(64);
  SafetensorsWriter writer;
  writer.add("z.small", DType::kU8, {3}, bytes.data(), 3);
  writer.add("b.half", DType::kBF16, {1}, bytes.data(), 2);
  writer.add("a.half", DType::kBF16, {1}, bytes.data(), 2);
  writer.add("m.double", DType::kF64, {1}, bytes.data(), 8);
  writer.add("f.float", DType::kF32, {2}, bytes.data(), 8);
  writer.add("A.float", DType::kF32, {1}, bytes.data(), 4);  // 'A' < 'f' bytewise
  writer.write(dir / "order.safetensors");
  const auto file = SafetensorsFile::open(dir / "order.safetensors");
  std::vector<std::string> stored;
  for (const auto& t : file.tensors()) stored.push_back(t.name);
  EXPECT_EQ(stored, (std::vector<std::string>{"m.double", "A.float", "f.float", "a.half", "b.half", "z.small"}));
  EXPECT_EQ(file.names(), (std::vector<std::string>{"A.float", "a.half", "b.half", "f.float", "m.double", "z.small"}));
  EXPECT_EQ(file.find("A.float")->begin, 8u);
  EXPECT_EQ(file.find("z.small")->end, 27u);
}

TEST(Safetensors, MetadataRoundTrips) {
  test::TempDir dir;
  const int32_t value = 42;
  SafetensorsWriter writer;
  writer.set_metadata("step", "1200");
  writer.set_metadata("note", "ünïcödé \"quoted\" \\ and\nnewline");
  writer.add("x", DType::kI32, {1}, &value, 4);
  writer.write(dir / "meta.safetensors");
  const auto file = SafetensorsFile::open(dir / "meta.safetensors");
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{
                                 {"format", "pt"}, {"note", "ünïcödé \"quoted\" \\ and\nnewline"}, {"step", "1200"}}));

  writer.clear_metadata();
  writer.write(dir / "bare.safetensors");
  const auto bare = SafetensorsFile::open(dir / "bare.safetensors");
  EXPECT_TRUE(bare.metadata().empty());
  EXPECT_EQ(split(read_file(dir / "bare.safetensors")).header.find("__metadata__"), std::string::npos);
}

TEST(Safetensors, HeaderIsPaddedWithSpacesToMultipleOfEight) {
  test::TempDir dir;
  const uint8_t byte = 7;
  std::set<std::size_t> paddings;
  for (int length = 1; length <= 12; ++length) {
    SafetensorsWriter writer;
    writer.add(std::string(length, 'n'), DType::kU8, {1}, &byte, 1);
    const fs::path path = dir / fmt::format("pad{}.safetensors", length);
    writer.write(path);
    const std::string raw = read_file(path);
    const Parts parts = split(raw);
    EXPECT_EQ(parts.header.size() % 8, 0u);
    const std::size_t json_end = parts.header.find_last_of('}') + 1;
    EXPECT_EQ(parts.header.find_first_not_of(' ', json_end), std::string::npos);
    EXPECT_LT(parts.header.size() - json_end, 8u);
    paddings.insert(parts.header.size() - json_end);
    EXPECT_EQ(parts.data, std::string(1, '\x07'));
    EXPECT_EQ(raw.size(), 8 + parts.header.size() + 1);
    EXPECT_EQ(SafetensorsFile::open(path).tensor(std::string(length, 'n')).nbytes, 1u);
  }
  EXPECT_EQ(paddings.size(), 8u);  // every amount of padding 0..7 occurred
}

// The exact bytes the Python library writes, computed by hand: metadata first, then tensors by
// dtype descending (I64 > F32 > BF16) then name, compact JSON with fields dtype, shape,
// data_offsets, spaces to a multiple of 8.
TEST(Safetensors, WritesPythonCompatibleBytes) {
  test::TempDir dir;
  const float b[2] = {1.0f, 2.0f};
  const uint16_t a[2] = {0x3f80, 0x4000};  // bfloat16 1.0, 2.0
  const int64_t c[1] = {7};
  SafetensorsWriter writer;
  writer.add("b", DType::kF32, {2}, b, sizeof b);
  writer.add("a", DType::kBF16, {1, 2}, a, sizeof a);
  writer.add("c", DType::kI64, {1}, c, sizeof c);
  writer.write(dir / "tiny.safetensors");

  const std::string json =
      R"({"__metadata__":{"format":"pt"},)"
      R"("c":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},)"
      R"("a":{"dtype":"BF16","shape":[1,2],"data_offsets":[16,20]}})";
  ASSERT_EQ(json.size(), 197u);
  const std::string expected = std::string("\xc8\0\0\0\0\0\0\0", 8) + json + "   " +
                               std::string("\x07\0\0\0\0\0\0\0", 8) +          // c = 7
                               std::string("\0\0\x80\x3f\0\0\0\x40", 8) +      // b = 1.0f, 2.0f
                               std::string("\x80\x3f\0\x40", 4);               // a = bf16 1.0, 2.0
  EXPECT_EQ(read_file(dir / "tiny.safetensors"), expected);
}

// The byte vectors of the reference implementation's own serialization tests.
TEST(Safetensors, MatchesReferenceSerializationVectors) {
  const float values[6] = {0, 1, 2, 3, 4, 5};
  std::string data(reinterpret_cast<const char*>(values), sizeof values);
  {
    SafetensorsWriter writer;
    writer.clear_metadata();
    writer.add("attn.0", DType::kF32, {1, 2, 3}, values, sizeof values);
    EXPECT_EQ(writer.header(), le_u64(64) + R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})");
  }
  {
    SafetensorsWriter writer;
    writer.clear_metadata();
    writer.add("attn0", DType::kF32, {1, 1, 2, 3}, values, sizeof values);
    EXPECT_EQ(writer.header(),
              le_u64(72) + R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})" + "       ");
  }
  {
    SafetensorsWriter writer;
    writer.clear_metadata();
    EXPECT_EQ(writer.header(), le_u64(8) + "{}      ");
    writer.set_metadata("framework", "pt");
    EXPECT_EQ(writer.header(), le_u64(40) + R"({"__metadata__":{"framework":"pt"}})" + "     ");
  }
}

// Files written by the Python library (tests/fixtures/hf_llama, see its README): read them and
// write the same tensors and metadata again; the bytes must be identical.
TEST(Safetensors, RewritesPythonWrittenFilesByteIdentically) {
  test::TempDir dir;
  for (const char* name : {"expected.safetensors", "model.safetensors"}) {
    SCOPED_TRACE(name);
    const fs::path original = fs::path(SSA_SOURCE_DIR) / "tests/fixtures/hf_llama/default" / name;
    const auto file = SafetensorsFile::open(original);
    ASSERT_FALSE(file.tensors().empty());
    SafetensorsWriter writer;
    writer.clear_metadata();
    for (const auto& [key, value] : file.metadata()) writer.set_metadata(key, value);
    for (const auto& info : file.tensors()) {
      const TensorView view = file.tensor(info.name);
      writer.add(info.name, view.dtype, view.shape, view.data, view.nbytes);
    }
    writer.write(dir / name);
    EXPECT_EQ(read_file(dir / name), read_file(original));
  }
}

TEST(Safetensors, WriterReferencesCallerBuffersUntilWrite) {
  test::TempDir dir;
  std::vector<int32_t> values = {1, 2, 3};
  SafetensorsWriter writer;
  writer.add("v", DType::kI32, {3}, values.data(), values.size() * 4);
  values[1] = 20;  // not copied by add(): the change is what gets written
  writer.write(dir / "ref.safetensors");
  const auto view = SafetensorsFile::open(dir / "ref.safetensors").tensor("v");
  int32_t stored[3];
  std::memcpy(stored, view.data, sizeof stored);
  EXPECT_EQ(stored[1], 20);
}

TEST(Safetensors, ViewsKeepTheMappingAlive) {
  test::TempDir dir;
  write_file_atomic(dir / "t.safetensors", two_tensor_file());
  const TensorView view = SafetensorsFile::open(dir / "t.safetensors").tensor("b");  // file object gone
  fs::remove(dir / "t.safetensors");
  float b[2];
  std::memcpy(b, view.data, sizeof b);
  EXPECT_EQ(b[0], 3.0f);
  EXPECT_EQ(b[1], 4.0f);
}

TEST(Safetensors, WriterRejectsBadInput) {
  const float x[4] = {};
  SafetensorsWriter writer;
  writer.add("x", DType::kF32, {2, 2}, x, sizeof x);
  EXPECT_THROW(writer.add("x", DType::kF32, {2, 2}, x, sizeof x), UsageError);            // duplicate
  EXPECT_THROW(writer.add("__metadata__", DType::kF32, {4}, x, sizeof x), UsageError);    // reserved
  EXPECT_THROW(writer.add("y", DType::kF32, {3}, x, sizeof x), UsageError);               // size mismatch
  EXPECT_THROW(writer.add("y", DType::kF64, {2, 2}, x, sizeof x), UsageError);            // dtype mismatch
  EXPECT_THROW(writer.add("y", DType::kF32, {-4}, x, sizeof x), UsageError);              // negative
  EXPECT_THROW(writer.add("y", DType::kF32, {4}, nullptr, sizeof x), UsageError);         // no data
  EXPECT_THROW(writer.add(std::string("bad\xff", 4), DType::kF32, {4}, x, sizeof x), UsageError);
  EXPECT_THROW(writer.set_metadata("k", std::string("\xc3", 1)), UsageError);
  EXPECT_EQ(writer.entries().size(), 1u);
}

TEST(Safetensors, MissingFileIsAUsageError) {
  test::TempDir dir;
  EXPECT_THROW(SafetensorsFile::open(dir / "absent.safetensors"), UsageError);
  EXPECT_THROW(SafetensorsFile::open(dir.path()), UsageError);
}

TEST(SafetensorsCorruption, ValidBaseFileOpens) {
  test::TempDir dir;
  const std::string valid = two_tensor_file();
  EXPECT_EQ(split(valid).header, "{" + kEntryA + "," + kEntryB + "}" + std::string(4, ' '));
  write_file_atomic(dir / "valid.safetensors", valid);
  EXPECT_EQ(SafetensorsFile::open(dir / "valid.safetensors").names(), (std::vector<std::string>{"a", "b"}));
  // Whitespace inside the JSON and extra fields in an entry are valid, as in the reference.
  const std::string spaced = "{ " + kEntryA + " ,\n" + replaced(kEntryB, "}", ",\"extra\":1}") + " }";
  write_file_atomic(dir / "spaced.safetensors", join(spaced, split(valid).data));
  EXPECT_EQ(SafetensorsFile::open(dir / "spaced.safetensors").find("b")->end, 16u);
}

TEST(SafetensorsCorruption, TruncatedFiles) {
  test::TempDir dir;
  const std::string valid = two_tensor_file();
  const std::size_t header_end = 8 + split(valid).header.size();
  expect_format_error(dir, "empty.safetensors", "", "fewer than the 8");
  expect_format_error(dir, "cut4.safetensors", valid.substr(0, 4), "fewer than the 8");
  expect_format_error(dir, "cut7.safetensors", valid.substr(0, 7), "fewer than the 8");
  expect_format_error(dir, "cut8.safetensors", valid.substr(0, 8), "reaches past the end");
  expect_format_error(dir, "cut_header.safetensors", valid.substr(0, header_end / 2), "reaches past the end");
  expect_format_error(dir, "cut_header_end.safetensors", valid.substr(0, header_end - 1), "reaches past the end");
  expect_format_error(dir, "no_data.safetensors", valid.substr(0, header_end), "past the 0-byte data buffer");
  expect_format_error(dir, "cut_data.safetensors", valid.substr(0, header_end + 12), "truncated file");
  expect_format_error(dir, "cut_last.safetensors", valid.substr(0, valid.size() - 1), "truncated file");
}

TEST(SafetensorsCorruption, TrailingBytesAfterTheLastTensor) {
  test::TempDir dir;
  expect_format_error(dir, "trailing.safetensors", two_tensor_file() + "xyz", "bytes [16, 19) of the data buffer belong to no tensor");
}

TEST(SafetensorsCorruption, HeaderLength) {
  test::TempDir dir;
  const std::string valid = two_tensor_file();
  expect_format_error(dir, "huge.safetensors", le_u64(100'000'001) + valid.substr(8), "exceeds the limit");
  expect_format_error(dir, "max.safetensors", le_u64(~uint64_t{0}) + valid.substr(8), "exceeds the limit");
  expect_format_error(dir, "past.safetensors", le_u64(valid.size()) + valid.substr(8), "reaches past the end");
}

TEST(SafetensorsCorruption, BadJson) {
  test::TempDir dir;
  const Parts p = split(two_tensor_file());
  expect_format_error(dir, "unclosed.safetensors", join(replaced(p.header, "]}}", "]}"), p.data), "not valid JSON");
  expect_format_error(dir, "garbage.safetensors", join(replaced(p.header, "}} ", "}}x"), p.data),
                      "not valid JSON");
  expect_format_error(dir, "comma.safetensors", join(replaced(p.header, ",\"b\"", ",,\"b\""), p.data), "not valid JSON");
  expect_format_error(dir, "utf8.safetensors", join(replaced(p.header, "\"a\"", "\"\xff\""), p.data), "not valid JSON");
  expect_format_error(dir, "start.safetensors", join(" " + p.header, p.data), "does not start with '{'");
  expect_format_error(dir, "array.safetensors", join("[" + p.header.substr(1), p.data), "does not start with '{'");
  expect_format_error(dir, "zero_header.safetensors", join("", p.data), "does not start with '{'");
}

TEST(SafetensorsCorruption, OverlapsAndHoles) {
  test::TempDir dir;
  const Parts p = split(two_tensor_file());
  expect_format_error(dir, "overlap.safetensors", join(replaced(p.header, "[8,16]", "[4,12]"), p.data),
                      "tensors \"a\" [0, 8] and \"b\" [4, 12] overlap");
  expect_format_error(dir, "same.safetensors", join(replaced(p.header, "[8,16]", "[0,8]"), p.data), "overlap");
  // Dropping an entry leaves its bytes to no tensor: at the start, and at the end.
  expect_format_error(dir, "hole_start.safetensors", join(replaced(p.header, kEntryA + ",", ""), p.data),
                      "bytes [0, 8) of the data buffer belong to no tensor");
  expect_format_error(dir, "hole_end.safetensors", join(replaced(p.header, "," + kEntryB, ""), p.data),
                      "bytes [8, 16) of the data buffer belong to no tensor");
  const std::string shrunk =
      replaced(p.header, "\"shape\":[2],\"data_offsets\":[0,8]", "\"shape\":[1],\"data_offsets\":[0,4]");
  expect_format_error(dir, "hole_middle.safetensors", join(shrunk, p.data), "bytes [4, 8) of the data buffer belong to no tensor");
  expect_format_error(dir, "reversed.safetensors", join(replaced(p.header, "[8,16]", "[16,8]"), p.data),
                      "end before they begin");
}

TEST(SafetensorsCorruption, ShapeDoesNotMatchOffsets) {
  test::TempDir dir;
  const Parts p = split(two_tensor_file());
  expect_format_error(dir, "shape.safetensors", join(replaced(p.header, "\"shape\":[2],\"data_offsets\":[8", "\"shape\":[3],\"data_offsets\":[8"), p.data),
                      "tensor \"b\": shape [3] of F32 needs 12 bytes but data_offsets [8,16] hold 8");
  expect_format_error(dir, "dtype_size.safetensors", join(replaced(p.header, "F32", "F64"), p.data), "needs 16 bytes");
  expect_format_error(dir, "overflow.safetensors",
                      join(replaced(p.header, "[2]", "[4294967296,4294967296,4294967296]"), p.data), "too large");
}

TEST(SafetensorsCorruption, UnknownDType) {
  test::TempDir dir;
  const Parts p = split(two_tensor_file());
  expect_format_error(dir, "dtype.safetensors", join(replaced(p.header, "F32", "F31"), p.data),
                      "tensor \"a\": unknown dtype \"F31\"");
  expect_format_error(dir, "dtype_lower.safetensors", join(replaced(p.header, "\"F32\"", "\"float32\""), p.data),
                      "unknown dtype");
  expect_format_error(dir, "dtype_type.safetensors", join(replaced(p.header, "\"F32\"", "32"), p.data),
                      "\"dtype\" is not a string");
}

TEST(SafetensorsCorruption, MalformedEntries) {
  test::TempDir dir;
  const Parts p = split(two_tensor_file());
  const std::string a_fields = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  auto with_a = [&](const std::string& fields) { return join(replaced(p.header, a_fields, fields), p.data); };
  expect_format_error(dir, "no_dtype.safetensors", with_a(R"({"shape":[2],"data_offsets":[0,8]})"), "missing \"dtype\"");
  expect_format_error(dir, "no_shape.safetensors", with_a(R"({"dtype":"F32","data_offsets":[0,8]})"), "missing \"shape\"");
  expect_format_error(dir, "no_offsets.safetensors", with_a(R"({"dtype":"F32","shape":[2]})"), "missing \"data_offsets\"");
  expect_format_error(dir, "not_object.safetensors", with_a("[1,2,3]"), "entry is not an object");
  expect_format_error(dir, "shape_string.safetensors", with_a(R"({"dtype":"F32","shape":"2","data_offsets":[0,8]})"),
                      "\"shape\" is not an array");
  expect_format_error(dir, "shape_negative.safetensors", with_a(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})"),
                      "non-negative integers");
  expect_format_error(dir, "shape_float.safetensors", with_a(R"({"dtype":"F32","shape":[2.0],"data_offsets":[0,8]})"),
                      "non-negative integers");
  expect_format_error(dir, "offsets_three.safetensors", with_a(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8,8]})"),
                      "is not [begin, end]");
  expect_format_error(dir, "offsets_negative.safetensors", with_a(R"({"dtype":"F32","shape":[2],"data_offsets":[-8,0]})"),
                      "is not [begin, end]");
  const std::string meta = "{\"__metadata__\":{\"format\":1},";
  expect_format_error(dir, "meta_value.safetensors", join(replaced(p.header, "{", meta), p.data),
                      "\"__metadata__\" value of \"format\" is not a string");
  expect_format_error(dir, "meta_array.safetensors", join(replaced(p.header, "{", "{\"__metadata__\":[],"), p.data),
                      "\"__metadata__\" is not an object");
}

TEST(SafetensorsCorruption, DuplicateKeys) {
  test::TempDir dir;
  const Parts p = split(two_tensor_file());
  // A second "a" entry naming b's bytes: any single-entry-wins parser would silently drop one.
  expect_format_error(dir, "dup_tensor.safetensors", join(replaced(p.header, kEntryB, replaced(kEntryB, "\"b\"", "\"a\"")), p.data),
                      "header has the key \"a\" twice");
  expect_format_error(dir, "dup_field.safetensors", join(replaced(p.header, "\"dtype\":\"F32\",", "\"dtype\":\"F32\",\"dtype\":\"F64\","), p.data),
                      "has the key \"dtype\" twice");
  expect_format_error(dir, "dup_meta.safetensors",
                      join(replaced(p.header, "{", R"({"__metadata__":{"k":"1","k":"2"},)"), p.data), "has the key \"k\" twice");
}

// ---------------------------------------------------------------------------------------------
struct ModelTensors {
  std::vector<std::vector<std::byte>> buffers;
  SafetensorsWriter writer;
};

// Five tensors of 400, 200, 200, 1000 and 120 bytes, in this insertion order.
void fill_model(ModelTensors& m) {
  const std::vector<std::pair<std::string, std::vector<int64_t>>> specs = {
      {"model.embed_tokens.weight", {10, 10}}, {"model.layers.0.w", {50}}, {"model.layers.1.w", {5, 10}},
      {"lm_head.weight", {250}}, {"model.norm.weight", {30}}};
  m.buffers.reserve(specs.size());
  for (std::size_t i = 0; i < specs.size(); ++i) {
    m.buffers.push_back(random_bytes(*element_count(specs[i].second) * 4, 100 + i));
    m.writer.add(specs[i].first, DType::kF32, specs[i].second, m.buffers.back().data(), m.buffers.back().size());
  }
}

std::vector<std::string> folder_entries(const fs::path& folder) {
  std::vector<std::string> names;
  for (const auto& item : fs::directory_iterator(folder)) names.push_back(item.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

void expect_same_tensors(const SafetensorsCollection& collection, const ModelTensors& m) {
  EXPECT_EQ(collection.names().size(), m.writer.entries().size());
  for (std::size_t i = 0; i < m.writer.entries().size(); ++i) {
    const auto& e = m.writer.entries()[i];
    SCOPED_TRACE(e.name);
    const TensorView view = collection.tensor(e.name);
    EXPECT_EQ(view.shape, e.shape);
    EXPECT_EQ(bytes_of(view), bytes_of(m.buffers[i]));
  }
}

TEST(SafetensorsSharded, SplitsLikeHfAndRoundTripsThroughIndex) {
  test::TempDir dir;
  ModelTensors m;
  fill_model(m);
  m.writer.set_metadata("step", "5");
  const auto written = write_model_weights(m.writer, dir.path(), 500);
  // 400 | 200+200 | 1000 (alone: larger than the limit) | 120
  ASSERT_EQ(written.size(), 4u);
  EXPECT_EQ(written[0].filename(), "model-00001-of-00004.safetensors");
  EXPECT_EQ(written[3].filename(), "model-00004-of-00004.safetensors");
  EXPECT_EQ(folder_entries(dir.path()),
            (std::vector<std::string>{"model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors",
                                      "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors",
                                      "model.safetensors.index.json"}));

  const auto index = nlohmann::json::parse(read_file(dir / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 1920);
  EXPECT_EQ(index["weight_map"].size(), 5u);
  EXPECT_EQ(index["weight_map"]["model.embed_tokens.weight"], "model-00001-of-00004.safetensors");
  EXPECT_EQ(index["weight_map"]["model.layers.0.w"], "model-00002-of-00004.safetensors");
  EXPECT_EQ(index["weight_map"]["model.layers.1.w"], "model-00002-of-00004.safetensors");
  EXPECT_EQ(index["weight_map"]["lm_head.weight"], "model-00003-of-00004.safetensors");
  EXPECT_EQ(index["weight_map"]["model.norm.weight"], "model-00004-of-00004.safetensors");

  const auto shard2 = SafetensorsFile::open(dir / "model-00002-of-00004.safetensors");
  EXPECT_EQ(shard2.names(), (std::vector<std::string>{"model.layers.0.w", "model.layers.1.w"}));
  EXPECT_EQ(shard2.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"step", "5"}}));

  const auto collection = SafetensorsCollection::open_folder(dir.path());
  EXPECT_EQ(collection.files().size(), 4u);
  expect_same_tensors(collection, m);
  EXPECT_EQ(collection.file_of("lm_head.weight").path().filename(), "model-00003-of-00004.safetensors");
  EXPECT_EQ(collection.find("model.norm.weight")->nbytes(), 120u);
  EXPECT_EQ(collection.find("absent"), nullptr);
  EXPECT_THROW(collection.tensor("absent"), FormatError);
}

TEST(SafetensorsSharded, SmallModelIsOneFileAndLayoutsReplaceEachOther) {
  test::TempDir dir;
  ModelTensors m;
  fill_model(m);
  const auto single = write_model_weights(m.writer, dir.path(), 1920);  // exactly fits
  ASSERT_EQ(single.size(), 1u);
  EXPECT_EQ(folder_entries(dir.path()), std::vector<std::string>{"model.safetensors"});
  expect_same_tensors(SafetensorsCollection::open_folder(dir.path()), m);

  write_model_weights(m.writer, dir.path(), 1000);  // 400+200+200 | 1000 | 120
  EXPECT_EQ(folder_entries(dir.path()),
            (std::vector<std::string>{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                      "model-00003-of-00003.safetensors", "model.safetensors.index.json"}));
  expect_same_tensors(SafetensorsCollection::open_folder(dir.path()), m);

  write_file_atomic(dir / "notes.txt", "kept");
  write_model_weights(m.writer, dir.path(), 400);  // 400 | 200+200 | 1000 | 120: stale 3-shard files go
  EXPECT_EQ(folder_entries(dir.path()).size(), 6u);
  EXPECT_FALSE(fs::exists(dir / "model-00001-of-00003.safetensors"));
  write_model_weights(m.writer, dir.path());
  EXPECT_EQ(folder_entries(dir.path()), (std::vector<std::string>{"model.safetensors", "notes.txt"}));
}

TEST(SafetensorsSharded, FolderErrors) {
  test::TempDir dir;
  EXPECT_THROW(SafetensorsCollection::open_folder(dir / "absent"), UsageError);
  EXPECT_THROW(SafetensorsCollection::open_folder(dir.path()), UsageError);  // neither file
  ModelTensors m;
  fill_model(m);
  EXPECT_THROW(write_model_weights(m.writer, dir.path(), 0), UsageError);
}

TEST(SafetensorsSharded, InconsistentIndexIsAFormatError) {
  test::TempDir dir;
  ModelTensors m;
  fill_model(m);
  write_model_weights(m.writer, dir.path(), 500);
  const fs::path index_path = dir / "model.safetensors.index.json";
  const auto index = nlohmann::json::parse(read_file(index_path));
  auto expect_index_error = [&](const nlohmann::json& edited, const std::string& fragment) {
    SCOPED_TRACE(fragment);
    write_file_atomic(index_path, edited.dump());
    try {
      SafetensorsCollection::open_folder(dir.path());
      ADD_FAILURE() << "expected a FormatError";
    } catch (const FormatError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("model.safetensors.index.json"), std::string::npos) << message;
      EXPECT_NE(message.find(fragment), std::string::npos) << message;
    }
  };
  auto edited = index;
  edited["weight_map"]["model.norm.weight"] = "model-00009-of-00009.safetensors";
  expect_index_error(edited, "model-00009-of-00009.safetensors, which does not exist");
  edited = index;
  edited["weight_map"]["model.norm.weight"] = "model-00001-of-00004.safetensors";
  expect_index_error(edited, "weight_map puts \"model.norm.weight\" in model-00001-of-00004.safetensors, which does not hold it");
  edited = index;
  edited["weight_map"]["model.norm.weight"] = "../model-00004-of-00004.safetensors";
  expect_index_error(edited, "not a file of the model folder");
  edited = index;
  edited["weight_map"]["model.norm.weight"] = 4;
  expect_index_error(edited, "is not a file name");
  expect_index_error(nlohmann::json::object({{"metadata", index["metadata"]}}), "no \"weight_map\" object");

  // A shard holding, besides its own tensor, one that another shard holds too.
  SafetensorsWriter extra;
  extra.add("extra.bias", DType::kF32, {30}, m.buffers[4].data(), 120);
  extra.add("lm_head.weight", DType::kF32, {250}, m.buffers[3].data(), 1000);
  extra.write(dir / "extra.safetensors");
  edited = index;
  edited["weight_map"]["extra.bias"] = "extra.safetensors";
  expect_index_error(edited, "tensor \"lm_head.weight\" is held by both extra.safetensors and model-00003-of-00004.safetensors");

  write_file_atomic(index_path, "{\"weight_map\":{}, \"weight_map\":{}}");
  EXPECT_THROW(SafetensorsCollection::open_folder(dir.path()), FormatError);
  write_file_atomic(index_path, "{\"weight_map\":");
  EXPECT_THROW(SafetensorsCollection::open_folder(dir.path()), FormatError);
}

TEST(SafetensorsSharded, ShardErrorsNameTheShard) {
  test::TempDir dir;
  ModelTensors m;
  fill_model(m);
  write_model_weights(m.writer, dir.path(), 500);
  const fs::path shard = dir / "model-00003-of-00004.safetensors";
  const std::string bytes = read_file(shard);
  write_file_atomic(shard, bytes.substr(0, bytes.size() - 100));
  try {
    SafetensorsCollection::open_folder(dir.path());
    FAIL() << "expected a FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("model-00003-of-00004.safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("truncated file"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ssa::io
