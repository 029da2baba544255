// lgd info: the student zoo and the LibTorch build.
#include <torch/torch.h>

#include <cstdio>
#include <string>
#include <thread>

#include "commands.h"
#include "lgd/core/torch_compat.h"
#include "lgd/core/version.h"
#include "lgd/data/decode.h"
#include "lgd/dist/process_group.h"
#include "lgd/models/architectures.h"
#include "lgd/models/student.h"

namespace lgd::cli {

void add_info_command(CLI::App& app, Commands& commands) {
  auto* cmd = app.add_subcommand(
      "info", "List the student architectures (parameters, feature width) and the LibTorch build");
  commands.push_back(
      {cmd, [] {
         std::printf("lgd %s, LibTorch %s\n", version(), torch_version().c_str());
         const std::string cuda_built = compat::cuda_build_version();
         if (cuda_built.empty())
           std::printf("CUDA: not in this LibTorch (a CPU-only build)\n");
         else if (compat::cuda_available())
           std::printf("CUDA: built with CUDA %s, %d device(s) visible\n", cuda_built.c_str(),
                       compat::cuda_device_count());
         else
           std::printf("CUDA: built with CUDA %s, no device visible\n", cuda_built.c_str());
         std::printf("CPU threads: %d intra-op (of %u hardware threads)\n",
                     torch::get_num_threads(), std::thread::hardware_concurrency());
         std::printf("Process groups:%s%s\n", dist::gloo_available() ? " gloo" : "",
                     dist::nccl_available() ? " nccl" : (dist::gloo_available() ? "" : " none"));
         std::string why;
         if (models::cpu_channels_last_agrees(&why))
           std::printf("CPU convolutions in channels_last: agree with a float64 reference\n");
         else
           std::printf("CPU convolutions in channels_last: WRONG in this LibTorch on this CPU (%s); train and eval "
                       "on the CPU use the contiguous layout\n",
                       why.c_str());
         std::printf("Image formats: JPEG, PNG%s\n\n",
                     data::decodes_other_formats() ? ", and through OpenCV BMP, WebP, TIFF, PNM"
                                                   : " (built without OpenCV)");
         std::printf("%-20s %14s %16s %9s\n", "student", "backbone params", "with fc (1000)",
                     "feature F");
         for (const auto& a : models::architectures()) {
           const auto backbone = models::create_student(a.name, {0});
           const auto full = models::create_student(a.name, {1000});
           std::printf("%-20s %15lld %16lld %9lld\n", a.name.c_str(),
                       static_cast<long long>(models::parameter_count(*backbone)),
                       static_cast<long long>(models::parameter_count(*full)),
                       static_cast<long long>(a.feature_dim));
         }
         std::printf(
             "\nEvery student's parameter names equal torchvision's; the projection head\n"
             "Linear(F,F)-ReLU-Linear(F,D) is kept apart under 'head.'.\n");
         return 0;
       }});
}

}  // namespace lgd::cli
