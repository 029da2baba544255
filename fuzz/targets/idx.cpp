// MNIST / Fashion-MNIST IDX files -> open_dataset. The input is split in two at a point its
// first two bytes choose: the images file, then the labels file.
#include <algorithm>

#include "../fuzz_target.h"
#include "lgd/data/dataset.h"

LGD_FUZZ_TARGET(idx) {
  if (size < 2) return;
  const std::size_t rest = size - 2;
  const std::size_t cut = std::min<std::size_t>(rest, (std::size_t(data[0]) << 8) | data[1]);
  lgd::fuzz::write_scratch("train-images-idx3-ubyte", data + 2, cut);
  lgd::fuzz::write_scratch("train-labels-idx1-ubyte", data + 2 + cut, rest - cut);
  lgd::data::DatasetOptions options;
  options.format = "idx";
  options.root = lgd::fuzz::scratch_dir();
  const auto dataset = lgd::data::open_dataset(options);
  for (std::int64_t i = 0; i < std::min<std::int64_t>(dataset->size(), 4); ++i) {
    (void)dataset->label(i);
    auto source = dataset->open(i);
    (void)source->decode(0);
  }
}
