// lgd_fuzz_replay <target> <file or folder>...: runs every file (folders: every file in
// them, sorted) through the named fuzz target once, without libFuzzer, so that the normal
// GCC build replays the seed corpus and past findings (tests/fuzz/corpus/<target>/). A
// finding aborts, naming the target and what escaped; the file is printed before it runs.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "fuzz_target.h"

namespace fs = std::filesystem;

namespace lgd::fuzz {
namespace {
std::map<std::string, Body>& registry() {
  static std::map<std::string, Body> targets;
  return targets;
}
}  // namespace

Registration::Registration(const char* name, Body body) { registry()[name] = body; }

}  // namespace lgd::fuzz

int main(int argc, char** argv) {
  auto& targets = lgd::fuzz::registry();
  if (argc < 3 || targets.count(argv[1]) == 0) {
    std::fprintf(stderr, "usage: lgd_fuzz_replay <target> <file or folder>...\ntargets:");
    for (const auto& [name, body] : targets) std::fprintf(stderr, " %s", name.c_str());
    std::fprintf(stderr, "\n");
    return 2;
  }
  const auto body = targets.at(argv[1]);
  std::vector<fs::path> files;
  for (int i = 2; i < argc; ++i) {
    if (fs::is_directory(argv[i])) {
      std::vector<fs::path> in_dir;
      for (const auto& entry : fs::directory_iterator(argv[i]))
        if (entry.is_regular_file()) in_dir.push_back(entry.path());
      std::sort(in_dir.begin(), in_dir.end());
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else if (fs::is_regular_file(argv[i])) {
      files.emplace_back(argv[i]);
    } else {
      std::fprintf(stderr, "lgd_fuzz_replay: %s: no such file or folder\n", argv[i]);
      return 2;
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "lgd_fuzz_replay: no input files\n");
    return 2;
  }
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::printf("%s %s (%zu bytes)\n", argv[1], file.string().c_str(), bytes.size());
    std::fflush(stdout);
    lgd::fuzz::run_one(argv[1], body, reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  }
  std::printf("%s: %zu input(s), no finding\n", argv[1], files.size());
  return 0;
}
