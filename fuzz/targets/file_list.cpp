// A file_list dataset (CSV or TSV of path,label) -> open_dataset, and every sample's label
// and description.
#include "../fuzz_target.h"
#include "lgd/data/dataset.h"

LGD_FUZZ_TARGET(file_list) {
  lgd::data::DatasetOptions options;
  options.format = "file_list";
  options.root = lgd::fuzz::write_scratch("list.csv", data, size);
  const auto dataset = lgd::data::open_dataset(options);
  for (std::int64_t i = 0; i < dataset->size(); ++i) {
    (void)dataset->label(i);
    (void)dataset->describe(i);
  }
}
