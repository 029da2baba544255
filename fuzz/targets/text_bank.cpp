// A TSB file (lgd bank build) -> load_text_bank.
#include <torch/torch.h>

#include "../fuzz_target.h"
#include "lgd/text/text_bank.h"

LGD_FUZZ_TARGET(text_bank) {
  const std::string path = lgd::fuzz::write_scratch("bank.tsb", data, size);
  const auto bank = lgd::text::load_text_bank(path);
  (void)bank.weights.clone();
}
