#include "lgd/export/safetensors.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>

#include "lgd/core/errors.h"

namespace lgd::exporting {
namespace {

models::NamedTensors sample() {
  torch::manual_seed(0);
  return {{"b.weight", torch::randn({3, 4})},
          {"a.bias", torch::arange(5, torch::kInt64)},
          {"c.half", torch::randn({2, 2}).to(torch::kFloat16)},
          {"d.scalar", torch::tensor(7, torch::kInt64).reshape({})}};
}

TEST(Safetensors, RoundTripKeepsOrderValuesAndMetadata) {
  const auto bytes = safetensors_bytes(sample(), {{"arch", "resnet18"}});
  // Header length is little-endian and the data starts 8-byte aligned.
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ((8 + n) % 8, 0u);
  const auto file = parse_safetensors(bytes, "mem");
  EXPECT_EQ(file.metadata.at("arch"), "resnet18");
  const auto original = sample();
  ASSERT_EQ(file.tensors.size(), original.size());
  for (std::size_t i = 0; i < original.size(); ++i) {
    EXPECT_EQ(file.tensors[i].first, original[i].first);
    EXPECT_TRUE(torch::equal(file.tensors[i].second, original[i].second)) << original[i].first;
    EXPECT_EQ(file.tensors[i].second.scalar_type(), original[i].second.scalar_type());
  }
}

TEST(Safetensors, CorruptFilesAreRejectedWithTheSource) {
  auto bytes = safetensors_bytes(sample(), {});
  auto truncated = bytes;
  truncated.resize(bytes.size() - 4);
  try {
    parse_safetensors(truncated, "w.safetensors");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("w.safetensors: d.scalar: data_offsets"),
              std::string::npos)
        << e.what();
  }
  std::vector<char> garbage(64, 'x');
  EXPECT_THROW(parse_safetensors(garbage, "g"), IoError);
  auto bad_json = bytes;
  bad_json[9] = '[';
  EXPECT_THROW(parse_safetensors(bad_json, "j"), IoError);
}

// A safetensors file from a header written by hand and `data_bytes` zero bytes of data.
std::vector<char> hand_written(std::string header, std::size_t data_bytes) {
  while ((8 + header.size()) % 8) header += ' ';
  std::vector<char> out(8 + header.size() + data_bytes, 0);
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  std::copy(header.begin(), header.end(), out.begin() + 8);
  return out;
}

void expect_refused(const std::string& header, std::size_t data_bytes, const std::string& what) {
  try {
    const auto file = parse_safetensors(hand_written(header, data_bytes), "h.safetensors");
    ADD_FAILURE() << header << ": read " << file.tensors.size() << " tensor(s), expected: " << what;
  } catch (const IoError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("h.safetensors: ", 0), 0u) << message;
    EXPECT_NE(message.find(what), std::string::npos) << message;
  }
}

TEST(Safetensors, FilesTheFormatForbidsAreRefused) {
  const std::string a = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  // The builder itself, on a file the format allows.
  const auto good = parse_safetensors(
      hand_written("{" + a + R"(,"b":{"dtype":"U8","shape":[2],"data_offsets":[8,10]}})", 10), "h");
  ASSERT_EQ(good.tensors.size(), 2u);
  expect_refused("{" + a + "}", 9, "1 byte(s) after the last tensor's data");
  expect_refused("{" + a + R"(,"b":{"dtype":"U8","shape":[2],"data_offsets":[6,8]}})", 8,
                 "inside the previous tensor's bytes");
  expect_refused(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12,
                 "after a gap at byte 0");
  expect_refused(R"({"__metadata__":{"n":3},)" + a + "}", 8, "__metadata__ value of n is not a string");
  expect_refused(R"({"__metadata__":{"n":null},)" + a + "}", 8, "is not a string");
  expect_refused(R"({"__metadata__":["x"],)" + a + "}", 8, "__metadata__ is not a JSON object");
  expect_refused(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8,
                 "a: negative dimension -2");
  // A shape whose byte count overflows is refused before anything is allocated for it.
  expect_refused(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}})", 8,
                 "do not fit its shape and dtype");
  expect_refused(R"({"a":{"dtype":"F32","shape":[1000000000000],"data_offsets":[0,8]}})", 8,
                 "do not fit its shape and dtype");
  expect_refused(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8, "data_offsets");
  expect_refused(R"({"a":3})", 8, "a: expected a JSON object");
  expect_refused(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8, "a: a shape entry is a number");
  expect_refused(R"({"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})", 8, "a: a shape entry is a string");
  expect_refused(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", 8, "a: expected \"dtype\"");
  expect_refused(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-1,8]}})", 8, "data_offsets");
  expect_refused(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 8, "corrupt safetensors header");
}

}  // namespace
}  // namespace lgd::exporting
