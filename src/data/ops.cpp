#include "lgd/data/ops.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace lgd::data {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's fixed point for 8-bit resampling

inline std::uint8_t clip_fixed(std::int32_t acc) {
  const std::int32_t v = acc >> kPrecisionBits;
  return static_cast<std::uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

inline std::uint8_t clip_trunc(float v) {
  if (v <= 0.0f) return 0;
  if (v >= 255.0f) return 255;
  return static_cast<std::uint8_t>(v);
}

// Taps of one output coordinate: first input index and fixed-point weights.
struct Taps {
  std::vector<int> first;
  std::vector<int> count;
  std::vector<std::int32_t> weights;  // out_count x ksize
  int ksize = 0;
};

// Pillow's precompute_coeffs for the bilinear filter, in coordinates relative to the
// clipped region [0, in_size), the region starting at `offset` (the box's x0 - clip start).
Taps bilinear_taps(double offset, double box_size, int in_size, int out_size, int out_first,
                   int out_count) {
  const double scale = box_size / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;
  Taps t;
  t.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(out_count);
  t.count.resize(out_count);
  t.weights.assign(static_cast<std::size_t>(out_count) * t.ksize, 0);
  std::vector<double> k(t.ksize);
  for (int i = 0; i < out_count; ++i) {
    const int xx = out_first + i;
    const double center = offset + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    xmax = std::min(xmax, t.ksize);
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      double arg = (x + xmin - center + 0.5) * ss;
      if (arg < 0) arg = -arg;
      const double w = arg < 1.0 ? 1.0 - arg : 0.0;
      k[x] = w;
      ww += w;
    }
    std::int32_t* kk = &t.weights[static_cast<std::size_t>(i) * t.ksize];
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? k[x] / ww : k[x];
      kk[x] = static_cast<std::int32_t>(v < 0 ? -0.5 + v * (1 << kPrecisionBits)
                                              : 0.5 + v * (1 << kPrecisionBits));
    }
    t.first[i] = xmin;
    t.count[i] = std::max(xmax, 0);
  }
  return t;
}

}  // namespace

void resize_region(const Image& src, Box box, int out_width, int out_height, int window_x,
                   int window_y, Image& dst) {
  if (src.empty() || out_width <= 0 || out_height <= 0 || dst.empty()) {
    throw std::invalid_argument("resize_region: empty image");
  }
  // The region acts as the whole image, as PIL's crop followed by resize sees it.
  const int cx0 = std::max(0, static_cast<int>(std::floor(box.x0)));
  const int cy0 = std::max(0, static_cast<int>(std::floor(box.y0)));
  const int cx1 = std::min(src.width, static_cast<int>(std::ceil(box.x1)));
  const int cy1 = std::min(src.height, static_cast<int>(std::ceil(box.y1)));
  const int in_w = cx1 - cx0;
  const int in_h = cy1 - cy0;
  if (in_w <= 0 || in_h <= 0) throw std::invalid_argument("resize_region: empty box");

  const Taps tx = bilinear_taps(box.x0 - cx0, box.x1 - box.x0, in_w, out_width, window_x,
                                dst.width);
  const Taps ty = bilinear_taps(box.y0 - cy0, box.y1 - box.y0, in_h, out_height, window_y,
                                dst.height);
  // Rows of the region the vertical pass reads.
  int row_lo = in_h;
  int row_hi = 0;
  for (int i = 0; i < dst.height; ++i) {
    row_lo = std::min(row_lo, ty.first[i]);
    row_hi = std::max(row_hi, ty.first[i] + ty.count[i]);
  }
  row_hi = std::max(row_hi, row_lo + 1);

  // Horizontal pass (Pillow's order), rounded to 8 bits like Pillow's intermediate image.
  const int tmp_w = dst.width;
  thread_local std::vector<std::uint8_t> tmp;
  tmp.resize(static_cast<std::size_t>(row_hi - row_lo) * tmp_w * 3);
  for (int y = row_lo; y < row_hi; ++y) {
    const std::uint8_t* in = src.row(cy0 + y) + static_cast<std::size_t>(cx0) * 3;
    std::uint8_t* out = &tmp[static_cast<std::size_t>(y - row_lo) * tmp_w * 3];
    for (int x = 0; x < tmp_w; ++x) {
      const std::int32_t* k = &tx.weights[static_cast<std::size_t>(x) * tx.ksize];
      const std::uint8_t* p = in + static_cast<std::size_t>(tx.first[x]) * 3;
      std::int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
      for (int j = 0; j < tx.count[x]; ++j) {
        s0 += p[j * 3 + 0] * k[j];
        s1 += p[j * 3 + 1] * k[j];
        s2 += p[j * 3 + 2] * k[j];
      }
      out[x * 3 + 0] = clip_fixed(s0);
      out[x * 3 + 1] = clip_fixed(s1);
      out[x * 3 + 2] = clip_fixed(s2);
    }
  }
  // Vertical pass.
  const std::size_t stride = static_cast<std::size_t>(tmp_w) * 3;
  thread_local std::vector<std::int32_t> acc;
  acc.resize(stride);
  for (int y = 0; y < dst.height; ++y) {
    const std::int32_t* k = &ty.weights[static_cast<std::size_t>(y) * ty.ksize];
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    for (int j = 0; j < ty.count[y]; ++j) {
      const std::uint8_t* in = &tmp[static_cast<std::size_t>(ty.first[y] + j - row_lo) * stride];
      const std::int32_t w = k[j];
      for (std::size_t x = 0; x < stride; ++x) acc[x] += in[x] * w;
    }
    std::uint8_t* out = dst.row(y);
    for (std::size_t x = 0; x < stride; ++x) out[x] = clip_fixed(acc[x]);
  }
}

Image resize(const Image& src, int out_width, int out_height) {
  Image dst(out_width, out_height);
  resize_region(src, Box{0, 0, static_cast<double>(src.width), static_cast<double>(src.height)},
                out_width, out_height, 0, 0, dst);
  return dst;
}

namespace {

// Pillow's "L" conversion (ITU-R 601-2 luma in 16-bit fixed point).
inline std::uint8_t luma(const std::uint8_t* p) {
  return static_cast<std::uint8_t>((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
}

// Image.blend(degenerate, image, alpha) for one value: truncation toward zero, clipped.
inline std::uint8_t blend(float degenerate, float value, float alpha) {
  return clip_trunc(degenerate + alpha * (value - degenerate));
}

}  // namespace

void adjust_brightness(Image& image, double factor) {
  const float alpha = static_cast<float>(factor);
  std::uint8_t lut[256];
  for (int v = 0; v < 256; ++v) lut[v] = blend(0.0f, static_cast<float>(v), alpha);
  for (auto& p : image.pixels) p = lut[p];
}

void adjust_contrast(Image& image, double factor) {
  const std::size_t n = static_cast<std::size_t>(image.width) * image.height;
  if (n == 0) return;
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < n; ++i) sum += luma(&image.pixels[i * 3]);
  const int mean = static_cast<int>(static_cast<double>(sum) / static_cast<double>(n) + 0.5);
  const float alpha = static_cast<float>(factor);
  std::uint8_t lut[256];
  for (int v = 0; v < 256; ++v) {
    lut[v] = blend(static_cast<float>(mean), static_cast<float>(v), alpha);
  }
  for (auto& p : image.pixels) p = lut[p];
}

void adjust_saturation(Image& image, double factor) {
  const std::size_t n = static_cast<std::size_t>(image.width) * image.height;
  const float alpha = static_cast<float>(factor);
  for (std::size_t i = 0; i < n; ++i) {
    std::uint8_t* p = &image.pixels[i * 3];
    const float grey = luma(p);
    p[0] = blend(grey, p[0], alpha);
    p[1] = blend(grey, p[1], alpha);
    p[2] = blend(grey, p[2], alpha);
  }
}

namespace {

// Quotients Pillow's RGB -> HSV computes in float, tabulated once (bit-identical, no
// divisions per pixel): ratio[cr][a] = (float)a / (float)cr, and the 8-bit saturation
// sat[maxc][cr] = (int)((float)cr / (float)maxc * 255.0).
struct HsvTables {
  std::vector<float> ratio = std::vector<float>(256 * 256, 0.0f);
  std::vector<std::uint8_t> sat = std::vector<std::uint8_t>(256 * 256, 0);
  HsvTables() {
    for (int cr = 1; cr < 256; ++cr)
      for (int a = 0; a <= cr; ++a) ratio[cr * 256 + a] = static_cast<float>(a) / static_cast<float>(cr);
    for (int maxc = 1; maxc < 256; ++maxc)
      for (int cr = 1; cr <= maxc; ++cr) {
        const float sf = static_cast<float>(cr) / static_cast<float>(maxc);
        sat[maxc * 256 + cr] = static_cast<std::uint8_t>(std::clamp(static_cast<int>(sf * 255.0), 0, 255));
      }
  }
};

const HsvTables& hsv_tables() {
  static const HsvTables tables;
  return tables;
}

// C's round() (half away from zero) for the non-negative values it sees here.
inline std::uint8_t round_u8(double v) {
  const double r = std::floor(v + 0.5);
  return static_cast<std::uint8_t>(r < 0 ? 0 : (r > 255 ? 255 : r));
}

}  // namespace

void adjust_hue(Image& image, double hue_factor) {
  if (hue_factor < -0.5 || hue_factor > 0.5) {
    throw std::invalid_argument("adjust_hue: hue_factor outside [-0.5, 0.5]");
  }
  // numpy's uint8(hue_factor * 255): truncation toward zero, wrapped modulo 256.
  const auto shift = static_cast<std::uint8_t>(static_cast<int>(hue_factor * 255.0) & 0xFF);
  const HsvTables& t = hsv_tables();
  // Per 8-bit hue: Pillow's sector i = floor(h * 6 / 255) and remainder f (as float).
  int sector_of[256];
  float frac_of[256];
  for (int h = 0; h < 256; ++h) {
    const double x = static_cast<float>(h) * 6.0 / 255.0;
    sector_of[h] = static_cast<int>(std::floor(x));
    frac_of[h] = static_cast<float>(x - sector_of[h]);
  }
  const std::size_t n = static_cast<std::size_t>(image.width) * image.height;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint8_t* p = &image.pixels[i * 3];
    const int r = p[0], g = p[1], b = p[2];
    const int maxc = std::max(r, std::max(g, b));
    const int minc = std::min(r, std::min(g, b));
    if (maxc == minc) continue;  // saturation 0: Pillow returns (v, v, v), the pixel itself
    // Pillow's RGB -> HSV, with its float / double promotions.
    const int cr = maxc - minc;
    const float* q = &t.ratio[cr * 256];
    const float rc = q[maxc - r], gc = q[maxc - g], bc = q[maxc - b];
    float h;
    if (r == maxc) {
      h = bc - gc;
    } else if (g == maxc) {
      h = static_cast<float>(2.0 + rc - bc);
    } else {
      h = static_cast<float>(4.0 + gc - rc);
    }
    // fmod(h / 6 + 1, 1) stored as float (the argument lies in (0, 2), so x - floor(x) is
    // exact); as float, 1/3 rounds up and gives hue 85, not 84, as in Pillow.
    const double x = h / 6.0 + 1.0;
    const float hn = static_cast<float>(x >= 1.0 ? x - 1.0 : x);
    const int hi = static_cast<int>(hn * 255.0);
    const std::uint8_t us = t.sat[maxc * 256 + cr];
    const auto uh = static_cast<std::uint8_t>(std::clamp(hi, 0, 255) + shift);
    const auto uv = static_cast<std::uint8_t>(maxc);
    // Pillow's HSV -> RGB.
    if (us == 0) {
      p[0] = p[1] = p[2] = uv;
      continue;
    }
    const int sector = sector_of[uh];
    const float f = frac_of[uh];
    const float fs = static_cast<float>(us / 255.0);
    const std::uint8_t pp = round_u8(uv * (1.0 - fs));
    const std::uint8_t qq = round_u8(uv * (1.0 - fs * f));
    const std::uint8_t tt = round_u8(uv * (1.0 - fs * (1.0 - f)));
    switch (sector % 6) {
      case 0: p[0] = uv; p[1] = tt; p[2] = pp; break;
      case 1: p[0] = qq; p[1] = uv; p[2] = pp; break;
      case 2: p[0] = pp; p[1] = uv; p[2] = tt; break;
      case 3: p[0] = pp; p[1] = qq; p[2] = uv; break;
      case 4: p[0] = tt; p[1] = pp; p[2] = uv; break;
      default: p[0] = uv; p[1] = pp; p[2] = qq; break;
    }
  }
}

void to_grayscale(Image& image) {
  const std::size_t n = static_cast<std::size_t>(image.width) * image.height;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint8_t* p = &image.pixels[i * 3];
    p[0] = p[1] = p[2] = luma(p);
  }
}

int blur_kernel_size(double sigma) { return 2 * static_cast<int>(std::ceil(3.0 * sigma)) + 1; }

void gaussian_blur(Image& image, int kernel_size, double sigma) {
  if (kernel_size < 1 || kernel_size % 2 == 0 || sigma <= 0) {
    throw std::invalid_argument("gaussian_blur: kernel size must be odd and sigma positive");
  }
  const int w = image.width, h = image.height;
  if (w == 0 || h == 0) return;
  // torchvision's kernel: linspace(-(k-1)/2, (k-1)/2, k), exp(-x^2 / 2 sigma^2), normalised.
  const int half = kernel_size / 2;
  std::vector<float> k(kernel_size);
  float sum = 0;
  for (int i = 0; i < kernel_size; ++i) {
    const float x = static_cast<float>(i - half);
    k[i] = std::exp(-0.5f * (x / static_cast<float>(sigma)) * (x / static_cast<float>(sigma)));
    sum += k[i];
  }
  for (auto& v : k) v /= sum;
  // Reflect padding (the edge pixel not repeated), as torch's "reflect" mode.
  const auto reflect = [](int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
  };
  const std::size_t stride = static_cast<std::size_t>(w) * 3;
  // Vertical then horizontal, in float; one rounding at the end as torchvision does.
  thread_local std::vector<float> vert;
  vert.resize(static_cast<std::size_t>(h) * stride);
  for (int y = 0; y < h; ++y) {
    float* out = &vert[static_cast<std::size_t>(y) * stride];
    std::fill(out, out + stride, 0.0f);
    for (int j = 0; j < kernel_size; ++j) {
      const std::uint8_t* in = image.row(reflect(y + j - half, h));
      const float kj = k[j];
      for (std::size_t x = 0; x < stride; ++x) out[x] += kj * in[x];
    }
  }
  thread_local std::vector<float> padded;
  padded.resize(static_cast<std::size_t>(w + 2 * half) * 3);
  for (int y = 0; y < h; ++y) {
    const float* row = &vert[static_cast<std::size_t>(y) * stride];
    for (int x = -half; x < w + half; ++x) {
      const int sx = reflect(x, w);
      for (int c = 0; c < 3; ++c) padded[static_cast<std::size_t>(x + half) * 3 + c] = row[sx * 3 + c];
    }
    std::uint8_t* out = image.row(y);
    for (int x = 0; x < w; ++x) {
      float s0 = 0, s1 = 0, s2 = 0;
      const float* p = &padded[static_cast<std::size_t>(x) * 3];
      for (int j = 0; j < kernel_size; ++j) {
        s0 += k[j] * p[j * 3 + 0];
        s1 += k[j] * p[j * 3 + 1];
        s2 += k[j] * p[j * 3 + 2];
      }
      const auto q = [](float v) {
        const float r = std::nearbyint(v);
        return static_cast<std::uint8_t>(r < 0 ? 0 : (r > 255 ? 255 : r));
      };
      out[x * 3 + 0] = q(s0);
      out[x * 3 + 1] = q(s1);
      out[x * 3 + 2] = q(s2);
    }
  }
}

void horizontal_flip(Image& image) {
  for (int y = 0; y < image.height; ++y) {
    std::uint8_t* r = image.row(y);
    for (int a = 0, b = image.width - 1; a < b; ++a, --b) {
      std::swap(r[a * 3 + 0], r[b * 3 + 0]);
      std::swap(r[a * 3 + 1], r[b * 3 + 1]);
      std::swap(r[a * 3 + 2], r[b * 3 + 2]);
    }
  }
}

}  // namespace lgd::data
