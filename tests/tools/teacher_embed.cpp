// Test helper: loads a teacher bundle with lgd's loader and writes the image embeddings of
// raw float32 input [N, 3, S, S] as raw float32 [N, D]. Prints "frozen=1" when no parameter
// of either encoder requires grad and the embeddings carry no autograd history, and
// "frozen_graph=1" when the image encoder ran as a frozen graph. OPTIONS, comma-separated:
// freeze (Teacher::optimize_image_encoder's freeze), channels_last (weights and input).
//   teacher_embed BUNDLE INPUT.bin N OUTPUT.bin [float32|float64|bfloat16 [OPTIONS]]
#include <torch/torch.h>

#include <cstdio>

#include "lgd/core/file_io.h"
#include "lgd/distill/teacher.h"

int main(int argc, char** argv) {
  if (argc < 5 || argc > 7) {
    std::fprintf(stderr, "usage: teacher_embed BUNDLE INPUT.bin N OUTPUT.bin [DTYPE [OPTIONS]]\n");
    return 2;
  }
  try {
    auto teacher = lgd::distill::Teacher::load(argv[1]);
    const std::string dtype = argc >= 6 ? argv[5] : "float32";
    const std::string options = argc == 7 ? argv[6] : "";
    const bool freeze = options.find("freeze") != std::string::npos;
    const bool channels_last = options.find("channels_last") != std::string::npos;
    if (dtype != "float32")
      teacher->to(torch::kCPU, dtype == "float64" ? torch::kFloat64 : torch::kBFloat16);
    if (freeze || channels_last) teacher->optimize_image_encoder(channels_last, freeze);
    const std::int64_t n = std::stoll(argv[3]), s = teacher->manifest().image.size;
    std::vector<char> raw = lgd::read_file(argv[2]);
    if (raw.size() != static_cast<std::size_t>(n * 3 * s * s * 4)) {
      std::fprintf(stderr, "input size mismatch\n");
      return 1;
    }
    auto input = torch::from_blob(raw.data(), {n, 3, s, s}, torch::kFloat32).clone();
    if (channels_last) input = input.contiguous(torch::MemoryFormat::ChannelsLast);
    auto out = teacher->encode_images(input).contiguous();
    bool frozen = !out.requires_grad();
    for (const auto& t : teacher->state()) frozen = frozen && !t.requires_grad();
    lgd::write_file_atomic(argv[4], static_cast<const char*>(out.data_ptr()),
                           out.numel() * sizeof(float));
    std::printf("frozen=%d frozen_graph=%d dim=%lld\n", frozen ? 1 : 0,
                teacher->image_encoder_frozen() ? 1 : 0, static_cast<long long>(out.size(1)));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "teacher_embed: %s\n", e.what());
    return 1;
  }
}
