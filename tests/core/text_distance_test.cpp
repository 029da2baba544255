#include "lgd/core/text_distance.h"

#include <gtest/gtest.h>

namespace lgd {
namespace {

TEST(TextDistance, HandWorkedDistances) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("lr", "lr"), 0u);
  EXPECT_EQ(edit_distance("optim.lrr", "optim.lr"), 1u);
}

TEST(TextDistance, NearestOnlyWhenPlausible) {
  const std::vector<std::string> names = {"resnet18", "resnet34", "mobilenet_v2"};
  EXPECT_EQ(nearest("resnet19", names).value(), "resnet18");
  EXPECT_EQ(nearest("mobilenetv2", names).value(), "mobilenet_v2");
  EXPECT_FALSE(nearest("vit_b_16", names).has_value());
  EXPECT_EQ(join({"a", "b", "c"}), "a, b, c");
}

}  // namespace
}  // namespace lgd
