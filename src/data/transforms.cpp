#include "lgd/data/transforms.h"

#include <algorithm>
#include <cmath>

#include "lgd/core/errors.h"
#include "lgd/data/ops.h"

namespace lgd::data {
namespace {

std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

inline std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// Python's round(): half to even (the default floating-point rounding mode).
inline int round_half_even(double v) { return static_cast<int>(std::nearbyint(v)); }

}  // namespace

SampleRng::SampleRng(std::uint64_t seed, std::int64_t epoch, std::int64_t index,
                     std::int64_t attempt) {
  std::uint64_t x = seed;
  std::uint64_t h = splitmix64(x);
  x = h ^ static_cast<std::uint64_t>(epoch);
  h = splitmix64(x);
  x = h ^ static_cast<std::uint64_t>(index);
  h = splitmix64(x);
  x = h ^ static_cast<std::uint64_t>(attempt);
  for (auto& s : s_) s = splitmix64(x);
}

std::uint64_t SampleRng::next() {
  const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double SampleRng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

double SampleRng::uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

std::int64_t SampleRng::integer(std::int64_t lo, std::int64_t hi) {
  if (hi <= lo) return lo;
  const auto span = static_cast<std::uint64_t>(hi - lo);
  // Rejection sampling keeps the draw exactly uniform.
  const std::uint64_t limit = UINT64_MAX - UINT64_MAX % span;
  std::uint64_t v;
  do {
    v = next();
  } while (v >= limit);
  return lo + static_cast<std::int64_t>(v % span);
}

ViewOptions view_defaults(const std::string& name, int size) {
  ViewOptions o;
  o.size = size;
  if (name == "mocov2") {
    o.view = View::kMocoV2;
  } else if (name == "linear") {
    o.view = View::kLinear;
    o.scale_min = 0.08;
  } else if (name == "eval") {
    o.view = View::kEval;
  } else if (name == "none") {
    o.view = View::kNone;
  } else {
    throw UsageError("unknown view '" + name + "' (expected mocov2, linear, eval or none)");
  }
  return o;
}

CropParams random_resized_crop_params(int width, int height, double scale_min, double scale_max,
                                      double ratio_min, double ratio_max, SampleRng& rng) {
  const double area = static_cast<double>(width) * height;
  const double log_lo = std::log(ratio_min), log_hi = std::log(ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * rng.uniform(scale_min, scale_max);
    const double aspect = std::exp(rng.uniform(log_lo, log_hi));
    const int w = round_half_even(std::sqrt(target_area * aspect));
    const int h = round_half_even(std::sqrt(target_area / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      CropParams c;
      c.height = h;
      c.width = w;
      c.top = static_cast<int>(rng.integer(0, height - h + 1));
      c.left = static_cast<int>(rng.integer(0, width - w + 1));
      return c;
    }
  }
  CropParams c;
  const double in_ratio = static_cast<double>(width) / height;
  if (in_ratio < ratio_min) {
    c.width = width;
    c.height = round_half_even(c.width / ratio_min);
  } else if (in_ratio > ratio_max) {
    c.height = height;
    c.width = round_half_even(c.height * ratio_max);
  } else {
    c.width = width;
    c.height = height;
  }
  c.top = (height - c.height) / 2;
  c.left = (width - c.width) / 2;
  return c;
}

Transform::Transform(ViewOptions options) : options_(options) {
  if (options_.size < 1) throw UsageError("view size must be positive");
}

namespace {

Box whole(const Image& image) {
  return Box{0, 0, static_cast<double>(image.width), static_cast<double>(image.height)};
}

// Largest k <= 3 such that a region of region_w x region_h source pixels, decoded at
// 1/2^k, still spans at least need_w x need_h pixels.
int reduction_for(bool enabled, double region_w, double region_h, double need_w, double need_h) {
  if (!enabled) return 0;
  int k = 0;
  while (k < 3 && region_w / (1 << (k + 1)) >= need_w && region_h / (1 << (k + 1)) >= need_h) ++k;
  return k;
}

}  // namespace

void draw_photometric(const ViewOptions& o, SampleRng& rng, ViewDraw& d) {
  // RandomApply(ColorJitter, p): the factors and order are drawn only when it applies.
  d.jitter = rng.bernoulli(o.jitter_p);
  if (d.jitter) {
    for (int i = 3; i > 0; --i) {
      const int j = static_cast<int>(rng.integer(0, i + 1));
      std::swap(d.order[i], d.order[j]);
    }
    d.brightness = rng.uniform(std::max(0.0, 1 - o.brightness), 1 + o.brightness);
    d.contrast = rng.uniform(std::max(0.0, 1 - o.contrast), 1 + o.contrast);
    d.saturation = rng.uniform(std::max(0.0, 1 - o.saturation), 1 + o.saturation);
    d.hue = rng.uniform(-o.hue, o.hue);
  }
  d.grayscale = rng.bernoulli(o.grayscale_p);
  d.blur = rng.bernoulli(o.blur_p);
  if (d.blur) d.sigma = rng.uniform(o.blur_sigma_min, o.blur_sigma_max);
}

ViewDraw Transform::apply(ImageSource& source, SampleRng& rng, std::uint8_t* out) const {
  const ViewOptions& o = options_;
  const int W = source.width(), H = source.height();
  const int S = o.size;
  ViewDraw d;
  thread_local Image pixels;  // reused: no page faults per sample
  thread_local Image view;
  view.reshape(S, S);

  if (o.view == View::kMocoV2 || o.view == View::kLinear) {
    d.crop = random_resized_crop_params(W, H, o.scale_min, o.scale_max, o.ratio_min, o.ratio_max,
                                        rng);
    d.reduce_log2 = reduction_for(o.jpeg_reduce, d.crop.width, d.crop.height, S, S);
    source.decode_into(d.reduce_log2, pixels);
    const double fx = static_cast<double>(pixels.width) / W;
    const double fy = static_cast<double>(pixels.height) / H;
    const Box box{d.crop.left * fx, d.crop.top * fy, (d.crop.left + d.crop.width) * fx,
                  (d.crop.top + d.crop.height) * fy};
    resize_region(pixels, box, S, S, 0, 0, view);
  } else if (o.view == View::kEval) {
    // torchvision's Resize(int): shorter side to R, longer side int(R * long / short).
    const int R = round_half_even(S * o.eval_resize_ratio);
    int rw, rh;
    if (W <= H) {
      rw = R;
      rh = static_cast<int>(static_cast<double>(R) * H / W);
    } else {
      rh = R;
      rw = static_cast<int>(static_cast<double>(R) * W / H);
    }
    d.reduce_log2 = reduction_for(o.jpeg_reduce, W, H, rw, rh);
    source.decode_into(d.reduce_log2, pixels);
    if (rw < S || rh < S) {
      // Smaller than the crop (eval_resize_ratio < 1): resize to S x S instead of padding.
      resize_region(pixels, whole(pixels), S, S, 0, 0,
                    view);
    } else {
      // CenterCrop: offsets int(round((dim - S) / 2.0)).
      const int top = round_half_even((rh - S) / 2.0);
      const int left = round_half_even((rw - S) / 2.0);
      d.crop = CropParams{top, left, S, S};
      resize_region(pixels, whole(pixels), rw, rh,
                    left, top, view);
    }
  } else {
    d.reduce_log2 = reduction_for(o.jpeg_reduce, W, H, S, S);
    source.decode_into(d.reduce_log2, pixels);
    resize_region(pixels, whole(pixels), S, S, 0, 0,
                  view);
  }

  if (o.view == View::kMocoV2) {
    draw_photometric(o, rng, d);
    if (!o.photometric_on_device) {
      if (d.jitter) {
        for (int op : d.order) {
          if (op == 0 && o.brightness > 0) adjust_brightness(view, d.brightness);
          if (op == 1 && o.contrast > 0) adjust_contrast(view, d.contrast);
          if (op == 2 && o.saturation > 0) adjust_saturation(view, d.saturation);
          if (op == 3 && o.hue > 0) adjust_hue(view, d.hue);
        }
      }
      if (d.grayscale) to_grayscale(view);
      if (d.blur) gaussian_blur(view, blur_kernel_size(d.sigma), d.sigma);
    }
  }
  if (o.view == View::kMocoV2 || o.view == View::kLinear) {
    d.flip = rng.bernoulli(o.flip_p);
    if (d.flip) horizontal_flip(view);
  }
  std::copy(view.pixels.begin(), view.pixels.end(), out);
  return d;
}

Image Transform::apply(ImageSource& source, SampleRng& rng) const {
  Image out(options_.size, options_.size);
  apply(source, rng, out.pixels.data());
  return out;
}

}  // namespace lgd::data
