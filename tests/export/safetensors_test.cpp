#include "lgd/export/safetensors.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

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

}  // namespace
}  // namespace lgd::exporting
