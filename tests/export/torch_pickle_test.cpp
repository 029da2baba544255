#include "lgd/export/torch_pickle.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "lgd/core/errors.h"
#include "lgd/core/file_io.h"

namespace lgd::exporting {
namespace {

TEST(TorchPickle, WrittenArchivesReadBack) {
  torch::manual_seed(0);
  models::NamedTensors tensors = {
      {"z.weight", torch::randn({4, 3})},
      {"a.running_mean", torch::randn({4})},
      {"a.num_batches_tracked", torch::tensor(3, torch::kInt64).reshape({})},
      {"b.half", torch::randn({2, 5}).to(torch::kBFloat16)},
      {"c.mask", torch::rand({3}) > 0.5},
      {"d.empty", torch::zeros({0, 3})}};
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("lgd_pickle_" + std::to_string(::getpid()) + ".pth"))
                               .string();
  write_file_atomic(path, torch_save_bytes(tensors));
  const auto back = read_torch_state_dict(path);
  ASSERT_EQ(back.size(), tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(back[i].first, tensors[i].first);
    EXPECT_EQ(back[i].second.scalar_type(), tensors[i].second.scalar_type()) << tensors[i].first;
    EXPECT_EQ(back[i].second.sizes(), tensors[i].second.sizes()) << tensors[i].first;
    EXPECT_TRUE(torch::equal(back[i].second, tensors[i].second)) << tensors[i].first;
  }
  std::filesystem::remove(path);
}

TEST(TorchPickle, NonArchiveIsAnErrorNamingTheFile) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("lgd_not_zip_" + std::to_string(::getpid()) + ".pth"))
                               .string();
  write_file_atomic(path, std::string("definitely not a zip archive"));
  try {
    read_torch_state_dict(path);
    FAIL();
  } catch (const IoError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path + ": not a torch.save zip archive", 0), 0u)
        << e.what();
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace lgd::exporting
