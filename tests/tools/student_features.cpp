// Test helper: loads student weights with lgd's loader, runs the pooled-feature forward in
// eval mode on raw float32 input, and writes the features as raw float32.
//   student_features ARCH WEIGHTS INPUT.bin N H W OUTPUT.bin
// Prints "params=<count> classes=<num_classes>" for the model it built.
#include <torch/torch.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "lgd/core/errors.h"
#include "lgd/core/file_io.h"
#include "lgd/export/weights_io.h"
#include "lgd/models/student.h"

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: student_features ARCH WEIGHTS INPUT.bin N H W OUTPUT.bin\n");
    return 2;
  }
  try {
    const std::int64_t n = std::stoll(argv[4]), h = std::stoll(argv[5]), w = std::stoll(argv[6]);
    auto weights = lgd::exporting::load_student_weights(argv[1], argv[2], std::nullopt);
    auto& student = *weights.student;
    student.eval();
    std::vector<char> raw = lgd::read_file(argv[3]);
    if (raw.size() != static_cast<std::size_t>(n * 3 * h * w * 4)) {
      std::fprintf(stderr, "input size mismatch\n");
      return 1;
    }
    auto input = torch::from_blob(raw.data(), {n, 3, h, w}, torch::kFloat32).clone();
    torch::NoGradGuard no_grad;
    auto features = student.features(input).contiguous();
    lgd::write_file_atomic(argv[7], static_cast<const char*>(features.data_ptr()),
                           features.numel() * sizeof(float));
    std::printf("params=%lld classes=%lld features=%lld\n",
                static_cast<long long>(lgd::models::parameter_count(student)),
                static_cast<long long>(student.num_classes()),
                static_cast<long long>(features.size(1)));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "student_features: %s\n", e.what());
    return 1;
  }
}
