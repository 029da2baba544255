// Class-name and prompt-template files -> read_class_names, read_templates, fill_template,
// and the dataset's class-name file reader (one name per line or "wnid<TAB>name").
#include "../fuzz_target.h"
#include "lgd/core/errors.h"
#include "lgd/data/dataset.h"
#include "lgd/text/text_bank.h"

LGD_FUZZ_TARGET(text_files) {
  const std::string path = lgd::fuzz::write_scratch("names.txt", data, size);
  std::vector<std::string> names;
  try {
    names = lgd::text::read_class_names(path, (size & 1) != 0);
  } catch (const lgd::Error&) {
  }
  try {
    (void)lgd::data::read_class_name_file(path);
  } catch (const lgd::Error&) {
  }
  const auto templates = lgd::text::read_templates(path);
  for (const auto& t : templates) (void)lgd::text::fill_template(t, names.empty() ? "cat" : names.front());
}
