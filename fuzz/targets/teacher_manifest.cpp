// A teacher bundle's lgd_teacher.yaml -> read_manifest. The folder also holds empty files
// under the names the seeds use, so that inputs get past the check that named files exist.
#include "../fuzz_target.h"
#include "lgd/distill/teacher.h"

LGD_FUZZ_TARGET(teacher_manifest) {
  static const bool files = [] {
    for (const char* name : {"image.pt", "text.pt", "bpe_simple_vocab_16e6.txt.gz", "classnames.txt", "templates.txt"})
      lgd::fuzz::write_scratch(name, nullptr, 0);
    return true;
  }();
  (void)files;
  lgd::fuzz::write_scratch("lgd_teacher.yaml", data, size);
  (void)lgd::distill::read_manifest(lgd::fuzz::scratch_dir());
}
