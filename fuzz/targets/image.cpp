// Encoded image bytes -> encoded_source (header), then a decode, at full size or reduced.
#include "../fuzz_target.h"
#include "lgd/data/decode.h"

LGD_FUZZ_TARGET(image) {
  // A lower pixel limit than the default keeps each input fast; the guard is the same code.
  static const bool limited = (lgd::data::set_max_image_pixels(1 << 22), true);
  (void)limited;
  auto source = lgd::data::encoded_source(std::vector<std::uint8_t>(data, data + size), "input");
  lgd::data::Image image;
  source->decode_into(static_cast<int>(size % 3), image);  // full size, or reduced 2x or 4x (JPEG)
}
