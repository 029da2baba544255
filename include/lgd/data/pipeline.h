#pragma once
// From a run's config to the data pipeline's parts, and from a uint8 batch to the model's
// input on the training device.
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "lgd/config/run_config.h"
#include "lgd/data/dataset.h"
#include "lgd/data/loader.h"
#include "lgd/data/transforms.h"

namespace lgd::data {

DatasetOptions dataset_options(const config::DataSection& data);

// The view `view` ("mocov2", "linear", "eval", "none"; empty: data.augment) at
// data.image_size with the config's augmentation parameters.
ViewOptions view_options(const config::DataSection& data, const std::string& view = "");

// Training loader options: batch, workers, seed, drop_last, bad-sample threshold.
LoaderOptions loader_options(const config::RunConfig& cfg, bool training);

// Whether data.photometric puts the mocov2 view's colour work on `device`.
bool photometric_on_device(const config::DataSection& data, const c10::Device& device);

// uint8 [B, H, W, 3] -> float [B, 3, H, W] on `device`: (x / 255 - mean) / std, computed
// on the device after the uint8 copy (non-blocking from pinned memory). With `photometric`
// (Batch::photometric) the view's colour jitter, grayscale and blur are applied on the
// device first (data/photometric.h, `view` saying which jitter ops are on). The result's
// memory is channels_last when asked (which the NHWC batch already is), contiguous NCHW
// otherwise.
at::Tensor to_model_input(const at::Tensor& images, const std::vector<double>& mean,
                          const std::vector<double>& std, const c10::Device& device,
                          bool channels_last, const at::Tensor& photometric = {},
                          const ViewOptions& view = {});

}  // namespace lgd::data
