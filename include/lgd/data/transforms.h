#pragma once
// The views the data pipeline produces, each a fixed-size 8-bit RGB crop:
//   mocov2  RandomResizedCrop(size, scale 0.2-1, ratio 3/4-4/3) -> ColorJitter(0.4, 0.4, 0.4,
//           0.1) with p 0.8 in random order -> RandomGrayscale p 0.2 -> GaussianBlur sigma
//           0.1-2 with p 0.5 -> horizontal flip p 0.5 (MoCo v2, the reference recipe)
//   linear  RandomResizedCrop(size, scale 0.08-1) -> horizontal flip (linear-probe training)
//   eval    resize the shorter side to size * 256 / 224 -> center crop size
//   none    the whole image resized to size x size
// Every random draw of a sample comes from a SampleRng seeded by (seed, epoch, index), so a
// sample's view does not depend on which thread made it or when.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "lgd/data/image.h"

namespace lgd::data {

// xoshiro256** seeded through SplitMix64 from (seed, epoch, index, attempt).
class SampleRng {
 public:
  SampleRng(std::uint64_t seed, std::int64_t epoch, std::int64_t index, std::int64_t attempt = 0);
  std::uint64_t next();
  double uniform();                      // [0, 1)
  double uniform(double lo, double hi);  // [lo, hi)
  std::int64_t integer(std::int64_t lo, std::int64_t hi);  // [lo, hi)
  bool bernoulli(double p) { return uniform() < p; }

 private:
  std::array<std::uint64_t, 4> s_{};
};

enum class View { kMocoV2, kLinear, kEval, kNone };

struct ViewOptions {
  View view = View::kMocoV2;
  int size = 224;
  double scale_min = 0.2, scale_max = 1.0;              // RandomResizedCrop area fraction
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;  // and aspect ratio
  double brightness = 0.4, contrast = 0.4, saturation = 0.4, hue = 0.1;
  double jitter_p = 0.8;
  double grayscale_p = 0.2;
  double blur_p = 0.5, blur_sigma_min = 0.1, blur_sigma_max = 2.0;
  double flip_p = 0.5;
  double eval_resize_ratio = 256.0 / 224.0;  // eval: shorter side = round(size * ratio)
  bool jpeg_reduce = true;  // decode JPEGs at 1/2, 1/4 or 1/8 scale when that still covers
                            // the output at full resolution
  // mocov2: draw the colour jitter, grayscale and blur as usual but leave their pixel work to
  // the training device (data/photometric.h); the view is then the crop and flip only.
  bool photometric_on_device = false;
};

// The defaults of a view by name ("mocov2", "linear", "eval", "none"); UsageError otherwise.
ViewOptions view_defaults(const std::string& name, int size);

struct CropParams {
  int top = 0, left = 0, height = 0, width = 0;
};

// torchvision's RandomResizedCrop.get_params: ten tries of (area, log-uniform ratio), then
// the whole image clamped to the ratio range, centred.
CropParams random_resized_crop_params(int width, int height, double scale_min, double scale_max,
                                      double ratio_min, double ratio_max, SampleRng& rng);

// What a view drew for one sample (for tests and debugging, and the parameters of the
// photometric ops when they run on the device).
struct ViewDraw {
  CropParams crop;
  bool jitter = false;
  std::array<int, 4> order{0, 1, 2, 3};  // 0 brightness, 1 contrast, 2 saturation, 3 hue
  double brightness = 1, contrast = 1, saturation = 1, hue = 0;
  bool grayscale = false;
  bool blur = false;
  double sigma = 0;
  bool flip = false;
  int reduce_log2 = 0;
};

// The colour jitter (applied or not, order, factors), grayscale and blur draws of a MoCo v2
// view, made after the crop's and in the same order as Transform::apply makes them.
void draw_photometric(const ViewOptions& options, SampleRng& rng, ViewDraw& draw);

class Transform {
 public:
  explicit Transform(ViewOptions options);
  const ViewOptions& options() const { return options_; }
  int size() const { return options_.size; }
  // Writes the size x size x 3 view of `source` to `out`. Throws BadSample when decoding fails.
  ViewDraw apply(ImageSource& source, SampleRng& rng, std::uint8_t* out) const;
  Image apply(ImageSource& source, SampleRng& rng) const;

 private:
  ViewOptions options_;
};

}  // namespace lgd::data
