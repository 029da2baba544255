// The process's std::filesystem functions must be libstdc++'s own. pip builds of LibTorch
// export unversioned copies of some of them (statically linked from an older GCC); a library
// that comes before libstdc++ in the lookup order serves every call to them, libstdc++'s own
// included, and code compiled by a newer GCC crashes in the older copies. lgd's executables
// link libstdc++ first (lgd_link_libstdcxx_first in CMakeLists.txt); this checks where the
// dynamic linker actually finds these symbols in the running test binary.
#include <dlfcn.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace {

// Mangled names as the dynamic linker looks them up (without a version, so the first
// definition in the global lookup order answers).
constexpr const char* kFilesystemSymbols[] = {
    "_ZNSt10filesystem7__cxx114path14_M_split_cmptsEv",
    "_ZNSt10filesystem7__cxx1128recursive_directory_iterator3popEv",
    "_ZNSt10filesystem7__cxx1128recursive_directory_iterator9incrementERSt10error_code",
    "_ZNSt10filesystem7__cxx1128recursive_directory_iteratorC1ERKNS0_4pathENS_17directory_optionsEPSt10error_code",
    "_ZNSt10filesystem10remove_allERKNS_7__cxx114pathE",
    "_ZNSt10filesystem10remove_allERKNS_7__cxx114pathERSt10error_code",
};

std::string library_of(const void* address) {
  Dl_info info{};
  if (address == nullptr || dladdr(address, &info) == 0 || info.dli_fname == nullptr) return "";
  return info.dli_fname;
}

}  // namespace

TEST(CxxRuntime, FilesystemFunctionsComeFromLibstdcxx) {
  // The library that serves this binary's own standard-library calls.
  const std::string libstdcxx = library_of(dlsym(RTLD_DEFAULT, "_ZNSt6chrono3_V212system_clock3nowEv"));
  ASSERT_NE(libstdcxx.find("libstdc++"), std::string::npos)
      << "std::chrono::system_clock::now comes from '" << libstdcxx << "'";
  int found = 0;
  for (const char* name : kFilesystemSymbols) {
    void* address = dlsym(RTLD_DEFAULT, name);
    if (address == nullptr) continue;  // not in this libstdc++ (older GCC)
    ++found;
    EXPECT_EQ(library_of(address), libstdcxx) << name;
  }
  EXPECT_GT(found, 0) << "none of the std::filesystem symbols is in this process";
  // And the calls work: path splitting and remove_all over a small tree.
  const auto root = std::filesystem::temp_directory_path() / ("lgd_cxx_runtime_" + std::to_string(::getpid()));
  const auto leaf = root / "a" / "b";
  std::filesystem::create_directories(leaf);
  EXPECT_EQ(std::distance(leaf.begin(), leaf.end()), std::distance(root.begin(), root.end()) + 2);
  EXPECT_EQ(std::filesystem::remove_all(root), 3u);
  EXPECT_FALSE(std::filesystem::exists(root));
}
