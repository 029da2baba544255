#pragma once
// The harness of lgd's fuzz targets (fuzz/targets/<name>.cpp). A target feeds bytes to one
// of lgd's readers. lgd's own errors (lgd::Error, and data::BadSample for images: the
// one-line messages a user sees) are the expected answer to bad input; anything else is a
// finding: another exception type escaping (a raw library error), a crash, a sanitizer
// report, an allocation over libFuzzer's limit.
//
// Each target is built two ways:
//  - with clang's libFuzzer (cmake -DLGD_FUZZ=ON, scripts/fuzz.sh): one executable per
//    target, lgd_fuzz_<name>, whose LLVMFuzzerTestOneInput calls the target;
//  - in the normal build with tests: all targets in one program, lgd_fuzz_replay
//    <name> <file or folder>..., which ctest runs over tests/fuzz/corpus/<name>/ so that
//    the seeds and every input a fuzz run found are regression cases in both LibTorch legs.
#include <cstddef>
#include <cstdint>
#include <string>

namespace lgd::fuzz {

using Body = void (*)(const std::uint8_t* data, std::size_t size);

// Runs one input through a target; aborts, naming the exception, when anything but an
// expected lgd error escapes.
void run_one(const char* target, Body body, const std::uint8_t* data, std::size_t size);

// Registers a target with the replay program (unused under libFuzzer).
struct Registration {
  Registration(const char* name, Body body);
};

// A scratch folder of this process (created once, removed at exit) and a file in it holding
// `data`: the readers under test take paths.
const std::string& scratch_dir();
std::string write_scratch(const std::string& name, const std::uint8_t* data, std::size_t size);

}  // namespace lgd::fuzz

#ifdef LGD_FUZZ_LIBFUZZER
#define LGD_FUZZ_REGISTER_(name, body)                                              \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { \
    ::lgd::fuzz::run_one(#name, body, data, size);                                  \
    return 0;                                                                       \
  }
#else
#define LGD_FUZZ_REGISTER_(name, body) \
  static const ::lgd::fuzz::Registration lgd_fuzz_registration_##name(#name, body);
#endif

// LGD_FUZZ_TARGET(name) { ... uses data, size ... }
#define LGD_FUZZ_TARGET(name)                                                      \
  static void lgd_fuzz_body_##name(const std::uint8_t* data, std::size_t size);     \
  LGD_FUZZ_REGISTER_(name, lgd_fuzz_body_##name)                                    \
  static void lgd_fuzz_body_##name(const std::uint8_t* data, std::size_t size)
