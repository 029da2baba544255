// A run config (YAML) -> load_run_config, with defaults and the cross-field checks.
#include "../fuzz_target.h"
#include "lgd/config/run_config.h"

LGD_FUZZ_TARGET(run_config) {
  const std::string path = lgd::fuzz::write_scratch("run.yaml", data, size);
  (void)lgd::config::load_run_config(path, {});
}
