#pragma once
// The photometric half of the MoCo v2 view -- colour jitter (brightness, contrast, saturation,
// hue in the sample's random order), grayscale and Gaussian blur -- run on a whole batch on
// the training device, after the loader has made the crop and flip (both commute with these
// ops: they act per pixel, or through a symmetric kernel with reflect padding).
//
// Each sample's parameters are drawn by the loader thread exactly as for the host view
// (Transform::apply with ViewOptions::photometric_on_device), so a sample sees the same
// jitter factors, order, grayscale and blur either way; only the arithmetic differs: float on
// the device as torchvision's tensor ops compute it, 8-bit per op on the host as on a PIL
// image. No host synchronisation: the grouping of samples by op is decided from the host-side
// parameters and reaches the device in one pinned, non-blocking copy.
#include <ATen/core/Tensor.h>

#include "lgd/data/transforms.h"

namespace lgd::data {

// One row of Batch::photometric: jitter (0/1), the op at each of the 4 positions (0
// brightness, 1 contrast, 2 saturation, 3 hue), brightness, contrast and saturation factors,
// hue shift, grayscale (0/1), blur (0/1), blur sigma.
constexpr int kPhotometricParams = 12;
void photometric_params(const ViewDraw& draw, float* row);

// images: float [B, 3, H, W] with values in [0, 1] on any device; params: float
// [B, kPhotometricParams] on the host. Returns the batch after each sample's ops, as
// torchvision.transforms.functional computes them on float tensors: adjust_brightness /
// contrast / saturation / hue in the sample's order, rgb_to_grayscale(num_output_channels=3),
// gaussian_blur(kernel 2 ceil(3 sigma) + 1, sigma). `options` says which jitter ops are on
// (a strength of 0 turns one off, as on the host).
at::Tensor apply_photometric(const at::Tensor& images, const at::Tensor& params,
                             const ViewOptions& options);

}  // namespace lgd::data
