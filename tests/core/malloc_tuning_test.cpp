// keep_freed_memory() against glibc's own accounting (mallinfo2): after it, a block far
// above glibc's largest mmap threshold comes from the heap, not from a fresh mapping, and
// the heap keeps it when it is freed, so the next one is not page-faulted in again.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#include "lgd/core/malloc_tuning.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace {

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
constexpr std::size_t kBlock = std::size_t{96} << 20;  // above the 32 MiB threshold cap

// Allocates, touches and frees one block; returns glibc's mapped bytes while it was held,
// and its heap bytes while it was held and after it was freed.
struct Accounting {
  std::size_t mapped_held, heap_held, heap_freed;
};

Accounting allocate_and_free() {
  void* volatile p = std::malloc(kBlock);
  EXPECT_NE(p, nullptr);
  std::memset(p, 1, kBlock);
  const auto held = mallinfo2();
  std::free(p);
  const auto freed = mallinfo2();
  return {held.hblkhd, held.arena, freed.arena};
}

TEST(MallocTuning, LargeBlocksComeFromTheHeapAndStayThereWhenFreed) {
  // The user's settings win; with any of them set in this environment, nothing to check.
  const auto t = lgd::keep_freed_memory();
  if (!t.applied) GTEST_SKIP() << t.reason;
  const auto before = mallinfo2();
  const auto a = allocate_and_free();
  EXPECT_LT(a.mapped_held, before.hblkhd + kBlock) << "the block was mapped on its own";
  EXPECT_GE(a.heap_held + before.fordblks, before.arena + kBlock) << "the heap cannot hold the block";
  EXPECT_EQ(a.heap_freed, a.heap_held) << "the heap was trimmed when the block was freed";
  // A second block of the same size reuses it: the heap does not grow again.
  const auto b = allocate_and_free();
  EXPECT_LT(b.heap_held, a.heap_freed + kBlock / 2) << "the heap grew for the second block";
}

TEST(MallocTuning, TheUsersSettingsWin) {
  ASSERT_EQ(::setenv("MALLOC_MMAP_MAX_", "65536", 1), 0);
  const auto t = lgd::keep_freed_memory();
  ::unsetenv("MALLOC_MMAP_MAX_");
  EXPECT_FALSE(t.applied);
  EXPECT_NE(std::strstr(t.reason, "environment"), nullptr) << t.reason;
  ASSERT_EQ(::setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_max=0", 1), 0);
  const auto u = lgd::keep_freed_memory();
  ::unsetenv("GLIBC_TUNABLES");
  EXPECT_FALSE(u.applied);
  ASSERT_EQ(::setenv("LGD_MALLOC", "system", 1), 0);
  const auto v = lgd::keep_freed_memory();
  ::unsetenv("LGD_MALLOC");
  EXPECT_FALSE(v.applied);
  EXPECT_NE(std::strstr(v.reason, "LGD_MALLOC=system"), nullptr) << v.reason;
}
#endif

}  // namespace
