#include "lgd/data/photometric.h"

#include <torch/torch.h>

#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "lgd/core/errors.h"
#include "lgd/data/ops.h"

namespace lgd::data {
namespace {

// Columns of a parameter row.
enum Column : int {
  kJitter = 0,
  kOrder = 1,  // 4 columns
  kBrightness = 5,
  kContrast = 6,
  kSaturation = 7,
  kHue = 8,
  kGray = 9,
  kBlur = 10,
  kSigma = 11,
};

// ITU-R 601-2 luma as torchvision's rgb_to_grayscale: [n, 3, H, W] -> [n, 1, H, W].
torch::Tensor luma(const torch::Tensor& x) {
  return (0.2989 * x.select(1, 0) + 0.587 * x.select(1, 1) + 0.114 * x.select(1, 2)).unsqueeze(1);
}

// f x + (1 - f) y, clamped to [0, 1]; f per sample [n, 1, 1, 1].
torch::Tensor blend(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& f) {
  return (f * x + (1 - f) * y).clamp(0, 1);
}

torch::Tensor shift_hue(const torch::Tensor& x, const torch::Tensor& shift) {
  // RGB -> HSV (h, s in [0, 1], v = max channel).
  const auto r = x.select(1, 0), g = x.select(1, 1), b = x.select(1, 2);
  const auto maxc = std::get<0>(x.max(1)), minc = std::get<0>(x.min(1));
  const auto range = maxc - minc;
  const auto flat = range == 0;
  const auto one = torch::ones_like(maxc);
  const auto s = range / torch::where(flat, one, maxc);
  const auto div = torch::where(flat, one, range);
  const auto rc = (maxc - r) / div, gc = (maxc - g) / div, bc = (maxc - b) / div;
  auto h = torch::where(maxc == r, bc - gc, torch::where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc));
  h = torch::fmod(h / 6.0 + 1.0, 1.0);
  h = torch::remainder(h + shift.view({-1, 1, 1}), 1.0);
  // HSV -> RGB by the sector of the hue circle.
  const auto v = maxc;
  const auto h6 = h * 6.0;
  const auto sector_f = torch::floor(h6);
  const auto f = h6 - sector_f;
  const auto sector = torch::remainder(sector_f, 6.0);
  const auto p = (v * (1.0 - s)).clamp(0, 1);
  const auto q = (v * (1.0 - s * f)).clamp(0, 1);
  const auto t = (v * (1.0 - s * (1.0 - f))).clamp(0, 1);
  auto pick = [&](const std::array<torch::Tensor, 6>& by_sector) {
    auto out = by_sector[5];
    for (int k = 4; k >= 0; --k) out = torch::where(sector == k, by_sector[k], out);
    return out;
  };
  return torch::stack({pick({v, q, p, p, t, v}), pick({t, v, v, q, p, p}), pick({p, p, t, v, v, q})}, 1);
}

// Separable Gaussian blur of [n, 3, H, W] with per-sample 1-D kernels [n, K] (K odd; taps
// beyond a sample's own radius are zero), reflect padding of K / 2.
torch::Tensor blur(const torch::Tensor& x, const torch::Tensor& kernels) {
  const auto n = x.size(0), H = x.size(2), W = x.size(3), K = kernels.size(1);
  const auto half = K / 2;
  const auto w = kernels.repeat_interleave(3, 0);  // [3n, K]: one per channel
  auto y = torch::nn::functional::pad(
      x.reshape({1, n * 3, H, W}),
      torch::nn::functional::PadFuncOptions({half, half, half, half}).mode(torch::kReflect));
  const std::vector<std::int64_t> one{1, 1}, zero{0, 0};
  y = torch::conv2d(y, w.view({n * 3, 1, K, 1}), torch::Tensor(), one, zero, one, n * 3);
  y = torch::conv2d(y, w.view({n * 3, 1, 1, K}), torch::Tensor(), one, zero, one, n * 3);
  return y.view({n, 3, H, W});
}

}  // namespace

void photometric_params(const ViewDraw& d, float* row) {
  row[kJitter] = d.jitter ? 1.f : 0.f;
  for (int i = 0; i < 4; ++i) row[kOrder + i] = static_cast<float>(d.order[i]);
  row[kBrightness] = static_cast<float>(d.brightness);
  row[kContrast] = static_cast<float>(d.contrast);
  row[kSaturation] = static_cast<float>(d.saturation);
  row[kHue] = static_cast<float>(d.hue);
  row[kGray] = d.grayscale ? 1.f : 0.f;
  row[kBlur] = d.blur ? 1.f : 0.f;
  row[kSigma] = static_cast<float>(d.sigma);
}

at::Tensor apply_photometric(const at::Tensor& images, const at::Tensor& params,
                             const ViewOptions& o) {
  torch::NoGradGuard no_grad;
  if (images.dim() != 4 || images.size(1) != 3 || images.scalar_type() != torch::kFloat32)
    throw UsageError("apply_photometric: expected float [B, 3, H, W] images");
  const std::int64_t B = images.size(0);
  if (params.dim() != 2 || params.size(0) != B || params.size(1) != kPhotometricParams ||
      params.scalar_type() != torch::kFloat32 || !params.device().is_cpu())
    throw UsageError("apply_photometric: expected float [" + std::to_string(B) + ", " +
                     std::to_string(kPhotometricParams) + "] parameters on the host");
  const auto P = params.contiguous();
  const float* row0 = P.data_ptr<float>();
  auto at = [&](std::int64_t i, int c) { return row0[i * kPhotometricParams + c]; };

  // The groups: (position, op) for the jitter, then grayscale, then blur; each a run of
  // sample indices (and a factor per sample, or a kernel per sample for the blur).
  struct Group {
    int op;  // 0-3 jitter ops, 4 grayscale, 5 blur
    std::int64_t first, count;
  };
  std::vector<Group> groups;
  std::vector<std::int64_t> index;
  std::vector<float> values;  // factors of the jitter groups, then the blur kernels
  const bool on[4] = {o.brightness > 0, o.contrast > 0, o.saturation > 0, o.hue > 0};
  const int factor_col[4] = {kBrightness, kContrast, kSaturation, kHue};
  for (int pos = 0; pos < 4; ++pos) {
    for (int op = 0; op < 4; ++op) {
      if (!on[op]) continue;
      const auto first = static_cast<std::int64_t>(index.size());
      for (std::int64_t i = 0; i < B; ++i) {
        if (at(i, kJitter) != 0 && static_cast<int>(at(i, kOrder + pos)) == op) {
          index.push_back(i);
          values.push_back(at(i, factor_col[op]));
        }
      }
      if (static_cast<std::int64_t>(index.size()) > first)
        groups.push_back({op, first, static_cast<std::int64_t>(index.size()) - first});
    }
  }
  auto add_group = [&](int op, int column) {
    const auto first = static_cast<std::int64_t>(index.size());
    for (std::int64_t i = 0; i < B; ++i)
      if (at(i, column) != 0) index.push_back(i);
    if (static_cast<std::int64_t>(index.size()) > first)
      groups.push_back({op, first, static_cast<std::int64_t>(index.size()) - first});
  };
  add_group(4, kGray);
  const auto factors_end = static_cast<std::int64_t>(values.size());
  const auto blur_first = static_cast<std::int64_t>(index.size());
  add_group(5, kBlur);
  // torchvision's kernel: exp(-x^2 / (2 sigma^2)) over x = -r..r, normalised; r = K / 2 with
  // K = 2 ceil(3 sigma) + 1. All kernels share the widest radius, zero beyond their own.
  int radius = 0;
  for (auto j = blur_first; j < static_cast<std::int64_t>(index.size()); ++j)
    radius = std::max(radius, blur_kernel_size(at(index[j], kSigma)) / 2);
  for (auto j = blur_first; j < static_cast<std::int64_t>(index.size()); ++j) {
    const float sigma = at(index[j], kSigma);
    const int own = blur_kernel_size(sigma) / 2;
    std::vector<float> k(static_cast<std::size_t>(2 * radius + 1), 0.f);
    float sum = 0;
    for (int x = -own; x <= own; ++x) {
      const float z = static_cast<float>(x) / sigma;
      k[static_cast<std::size_t>(x + radius)] = std::exp(-0.5f * z * z);
      sum += k[static_cast<std::size_t>(x + radius)];
    }
    for (auto& v : k) values.push_back(v / sum);
  }

  auto x = images.clone(at::MemoryFormat::Contiguous);  // the result; `images` stays as it is
  if (groups.empty()) return x;
  // One transfer each for the indices and the values, from pinned memory when the batch is on
  // a GPU, so that the host never waits for the device.
  const bool pin = !images.device().is_cpu();
  auto host = [&](auto& v, torch::Dtype dtype) {
    auto t = torch::empty({static_cast<std::int64_t>(v.size())},
                          torch::TensorOptions().dtype(dtype).pinned_memory(pin));
    std::memcpy(t.data_ptr(), v.data(), v.size() * sizeof(v[0]));
    return pin ? t.to(images.device(), /*non_blocking=*/true) : t;
  };
  const auto index_dev = host(index, torch::kInt64);
  const auto values_dev = values.empty() ? torch::Tensor() : host(values, torch::kFloat32);

  for (const auto& g : groups) {
    const auto idx = index_dev.narrow(0, g.first, g.count);
    auto sub = x.index_select(0, idx);
    if (g.op < 4) {
      const auto f = values_dev.narrow(0, g.first, g.count).view({-1, 1, 1, 1});
      if (g.op == 0) sub = (f * sub).clamp(0, 1);
      if (g.op == 1) sub = blend(sub, luma(sub).mean({1, 2, 3}, /*keepdim=*/true), f);
      if (g.op == 2) sub = blend(sub, luma(sub), f);
      if (g.op == 3) sub = shift_hue(sub, f);
    } else if (g.op == 4) {
      sub = luma(sub).expand({-1, 3, -1, -1});
    } else {
      const auto K = 2 * radius + 1;
      const auto kernels = values_dev.narrow(0, factors_end, g.count * K).view({g.count, K});
      sub = blur(sub.contiguous(), kernels);
    }
    x.index_copy_(0, idx, sub.contiguous());
  }
  return x;
}

}  // namespace lgd::data
