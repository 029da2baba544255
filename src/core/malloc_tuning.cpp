#include "lgd/core/malloc_tuning.h"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace lgd {

MallocTuning keep_freed_memory() {
  MallocTuning t;
#if defined(__GLIBC__)
  const char* choice = std::getenv("LGD_MALLOC");
  if (choice && std::strcmp(choice, "system") == 0) {
    t.reason = "LGD_MALLOC=system: glibc's defaults";
    return t;
  }
  for (const char* name : {"MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"})
    if (std::getenv(name)) {
      t.reason = "glibc malloc variables set in the environment";
      return t;
    }
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables && std::strstr(tunables, "glibc.malloc.")) {
    t.reason = "glibc.malloc tunables set in GLIBC_TUNABLES";
    return t;
  }
  // M_TRIM_THRESHOLD takes an int; its largest value keeps the top of the heap.
  if (mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, 0x7fffffff) == 1) {
    t.applied = true;
    t.reason = "large blocks from the heap, freed memory kept for reuse";
  } else {
    t.reason = "mallopt refused the settings";
  }
#else
  t.reason = "not glibc";
#endif
  return t;
}

}  // namespace lgd
