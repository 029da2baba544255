#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <typeinfo>

#include "fuzz_target.h"
#include "lgd/core/errors.h"
#include "lgd/data/image.h"

namespace fs = std::filesystem;

namespace lgd::fuzz {
namespace {

[[noreturn]] void finding(const char* target, const char* kind, const char* what) {
  std::fprintf(stderr, "lgd fuzz %s: %s escaped a reader: %s\n", target, kind, what);
  std::fflush(stderr);
  std::abort();
}

struct Scratch {
  std::string dir;
  Scratch() {
    const char* tmp = std::getenv("TMPDIR");
    dir = (fs::path(tmp && *tmp ? tmp : "/tmp") / ("lgd-fuzz-" + std::to_string(::getpid()))).string();
    fs::create_directories(dir);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

}  // namespace

void run_one(const char* target, Body body, const std::uint8_t* data, std::size_t size) {
  try {
    body(data, size);
  } catch (const lgd::Error&) {        // the expected one-line refusal
  } catch (const data::BadSample&) {   // an unreadable image: counted, not fatal
  } catch (const std::exception& e) {
    finding(target, typeid(e).name(), e.what());
  } catch (...) {
    finding(target, "an exception of unknown type", "");
  }
}

const std::string& scratch_dir() {
  static const Scratch scratch;
  return scratch.dir;
}

std::string write_scratch(const std::string& name, const std::uint8_t* data, std::size_t size) {
  const std::string path = (fs::path(scratch_dir()) / name).string();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) {
    std::fprintf(stderr, "lgd fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path;
}

}  // namespace lgd::fuzz
