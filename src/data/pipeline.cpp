#include "lgd/data/pipeline.h"

#include "lgd/data/decode.h"

#include <torch/torch.h>

#include "lgd/core/errors.h"
#include "lgd/data/photometric.h"

namespace lgd::data {

DatasetOptions dataset_options(const config::DataSection& data) {
  DatasetOptions o;
  o.format = data.dataset;
  o.root = data.root;
  o.split = data.split;
  o.classnames = data.classnames;
  return o;
}

ViewOptions view_options(const config::DataSection& data, const std::string& view) {
  ViewOptions o = view_defaults(view.empty() ? data.augment : view, static_cast<int>(data.image_size));
  if (o.view == View::kMocoV2) {
    o.scale_min = data.crop_scale.at(0);
    o.scale_max = data.crop_scale.at(1);
    o.brightness = data.jitter.at(0);
    o.contrast = data.jitter.at(1);
    o.saturation = data.jitter.at(2);
    o.hue = data.jitter.at(3);
    o.jitter_p = data.jitter_p;
    o.grayscale_p = data.grayscale_p;
    o.blur_p = data.blur_p;
    o.blur_sigma_min = data.blur_sigma.at(0);
    o.blur_sigma_max = data.blur_sigma.at(1);
  }
  o.ratio_min = data.crop_ratio.at(0);
  o.ratio_max = data.crop_ratio.at(1);
  o.flip_p = data.flip_p;
  o.jpeg_reduce = data.jpeg_reduce;
  return o;
}

bool photometric_on_device(const config::DataSection& data, const c10::Device& device) {
  return data.photometric == "device" || (data.photometric == "auto" && device.is_cuda());
}

LoaderOptions loader_options(const config::RunConfig& cfg, bool training) {
  LoaderOptions o;
  o.batch_size = cfg.data.batch_size;
  o.workers = static_cast<int>(cfg.data.workers);
  o.seed = static_cast<std::uint64_t>(config::data_seed(cfg));
  o.shuffle = training;
  o.drop_last = training;
  o.max_bad_fraction = cfg.data.max_bad_fraction;
  set_max_image_pixels(cfg.data.max_pixels);  // process-wide: every decode of this run
  o.pin_memory = cfg.run.device != "cpu";
  return o;
}

at::Tensor to_model_input(const at::Tensor& images, const std::vector<double>& mean,
                          const std::vector<double>& std, const c10::Device& device,
                          bool channels_last, const at::Tensor& photometric,
                          const ViewOptions& view) {
  if (images.dim() != 4 || images.size(3) != 3 || images.scalar_type() != torch::kUInt8)
    throw UsageError("to_model_input: expected uint8 [B, H, W, 3]");
  if (mean.size() != 3 || std.size() != 3)
    throw UsageError("to_model_input: expected 3 means and 3 standard deviations");
  torch::NoGradGuard no_grad;
  const bool non_blocking = images.is_pinned();
  auto x = images.to(device, /*non_blocking=*/non_blocking).permute({0, 3, 1, 2});
  // (x / 255 - m) / s = x * (1 / (255 s)) - m / s. The per-channel constants reach the device
  // from pinned memory without blocking (a pageable copy would wait for the device).
  const bool photo = photometric.defined();
  const double unit = photo ? 1.0 : 255.0;  // the photometric ops work on [0, 1]
  auto host = torch::empty({2, 3}, torch::TensorOptions().dtype(torch::kFloat32)
                                       .pinned_memory(!device.is_cpu()));
  auto* h = host.data_ptr<float>();
  for (int c = 0; c < 3; ++c) {
    h[c] = static_cast<float>(1.0 / (unit * std[c]));
    h[3 + c] = static_cast<float>(mean[c] / std[c]);
  }
  const auto constants = host.to(device, /*non_blocking=*/true);
  const auto scale = constants[0].view({1, 3, 1, 1}), shift = constants[1].view({1, 3, 1, 1});
  if (photo) {
    if (photometric.size(0) != images.size(0))
      throw UsageError("to_model_input: photometric parameters for " + std::to_string(photometric.size(0)) +
                       " samples, images for " + std::to_string(images.size(0)));
    x = apply_photometric(x.to(torch::kFloat32).div(255.0), photometric, view);
  }
  auto out = x.to(torch::kFloat32) * scale - shift;
  return channels_last ? out.contiguous(torch::MemoryFormat::ChannelsLast) : out.contiguous();
}

}  // namespace lgd::data
