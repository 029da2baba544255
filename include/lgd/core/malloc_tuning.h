#pragma once
// glibc's malloc serves every block above its mmap threshold (at most 32 MiB) with a fresh
// mmap and unmaps it on free, so each large tensor a CPU step allocates (activations of a
// batch) is page-faulted in again, step after step. On the 2-core build machine that was
// about half of a ResNet-18 step at batch 16, 224 px (docs/PERFORMANCE.md).

namespace lgd {

struct MallocTuning {
  bool applied = false;  // false: not glibc, LGD_MALLOC=system, or glibc settings of the user's
  const char* reason = "";  // what was done, or why not
};

// Keeps freed memory in the process for reuse, as caching allocators do: no mmap for
// large blocks (M_MMAP_MAX 0) and no trimming of the heap (M_TRIM_THRESHOLD at its
// maximum). Left alone with LGD_MALLOC=system (glibc's defaults, which adjust the mmap
// threshold as blocks are freed), and when MALLOC_MMAP_MAX_, MALLOC_TRIM_THRESHOLD_,
// MALLOC_MMAP_THRESHOLD_ or a glibc.malloc tunable in GLIBC_TUNABLES is set: the user's
// settings win. Call once, at the start of main.
MallocTuning keep_freed_memory();

}  // namespace lgd
