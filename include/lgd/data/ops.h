#pragma once
// Pixel operations of the data pipeline on 8-bit RGB images, each reproducing what
// torchvision's functional op computes on a PIL image (Pillow's fixed-point antialiased
// bilinear resampling, ImageEnhance blends, HSV round trip, "L" conversion), so that lgd's
// views are torchvision's views; tests hold each op within 2 intensity levels of it.
#include "lgd/data/image.h"

namespace lgd::data {

// A rectangle of source pixels, in (possibly fractional) source coordinates.
struct Box {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};

// The region `box` of `src` resized to out_width x out_height with Pillow's bilinear filter
// (support widened by the scale when shrinking, i.e. antialiased), as
// F.resize(F.crop(img, ...), ..., BILINEAR) does on a PIL image. Only the output window
// starting at (window_x, window_y) of the size of `dst` is computed, which gives a resize
// followed by a crop in one pass. `dst` must be allocated by the caller.
void resize_region(const Image& src, Box box, int out_width, int out_height, int window_x,
                   int window_y, Image& dst);

// Convenience: the whole of src resized.
Image resize(const Image& src, int out_width, int out_height);

// F.adjust_brightness / contrast / saturation / hue (factor as torchvision takes it).
void adjust_brightness(Image& image, double factor);
void adjust_contrast(Image& image, double factor);
void adjust_saturation(Image& image, double factor);
void adjust_hue(Image& image, double hue_factor);  // hue_factor in [-0.5, 0.5]

// F.rgb_to_grayscale(img, num_output_channels=3).
void to_grayscale(Image& image);

// F.gaussian_blur(img, [k, k], [sigma, sigma]): a k x k Gaussian (k odd), reflect padding.
void gaussian_blur(Image& image, int kernel_size, double sigma);

// The kernel size lgd uses for a sigma: 2 * ceil(3 sigma) + 1.
int blur_kernel_size(double sigma);

// F.hflip.
void horizontal_flip(Image& image);

}  // namespace lgd::data
