// Test helper: runs lgd's decoders, pixel ops and views as a script asks, so that a Python
// test can hold them against PIL and torchvision. Reads commands from a file, one per line:
//   decode IN OUT [reduce_log2]          full decode (or DCT-reduced) of an image file
//   resized_crop IN OUT top left h w out_w out_h
//   resize_short IN OUT size crop        eval view with JPEG reduction off (resize + center crop)
//   brightness|contrast|saturation|hue IN OUT factor
//   grayscale|hflip IN OUT
//   blur IN OUT kernel_size sigma
//   view IN OUT name size seed epoch index [reduce]   a whole view (JPEG reduction when
//                                                      reduce is 1); prints its draw as JSON
//   rrc_params W H count seed scale_min scale_max OUT   one "top left h w" line per draw
//   formats OUT                          "1" when this build decodes formats other than JPEG
//                                        and PNG (OpenCV), else "0"
//   device_views IN PREFIX size seed epoch count   mocov2 views of samples 0..count-1 with the
//       colour work left to the device: PREFIX_<i>.ppm the crop and flip, PREFIX.f32 the batch
//       (float [count, 3, size, size], raw) after apply_photometric; prints each draw as JSON
// Images are written as binary PPM (P6).
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <torch/torch.h>

#include "lgd/data/decode.h"
#include "lgd/data/photometric.h"
#include "lgd/data/ops.h"
#include "lgd/data/transforms.h"

using namespace lgd::data;

namespace {

void print_draw(const ViewDraw& d) {
  std::printf(
      "{\"crop\": [%d, %d, %d, %d], \"jitter\": %s, \"order\": [%d, %d, %d, %d], "
      "\"brightness\": %.17g, \"contrast\": %.17g, \"saturation\": %.17g, \"hue\": %.17g, "
      "\"grayscale\": %s, \"blur\": %s, \"sigma\": %.17g, \"kernel\": %d, \"flip\": %s, "
      "\"reduce_log2\": %d}\n",
      d.crop.top, d.crop.left, d.crop.height, d.crop.width, d.jitter ? "true" : "false",
      d.order[0], d.order[1], d.order[2], d.order[3], d.brightness, d.contrast,
      d.saturation, d.hue, d.grayscale ? "true" : "false", d.blur ? "true" : "false",
      d.sigma, d.blur ? blur_kernel_size(d.sigma) : 0, d.flip ? "true" : "false", d.reduce_log2);
}

void write_ppm(const std::string& path, const Image& img) {
  std::ofstream out(path, std::ios::binary);
  out << "P6\n" << img.width << " " << img.height << "\n255\n";
  out.write(reinterpret_cast<const char*>(img.pixels.data()),
            static_cast<std::streamsize>(img.pixels.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: image_ops COMMANDS.txt\n");
    return 2;
  }
  std::ifstream script(argv[1]);
  std::string line;
  try {
    while (std::getline(script, line)) {
      std::istringstream in(line);
      std::string op;
      if (!(in >> op)) continue;
      if (op == "formats") {
        std::string out_path;
        in >> out_path;
        std::ofstream(out_path) << (decodes_other_formats() ? "1" : "0") << "\n";
        continue;
      }
      if (op == "rrc_params") {
        int w, h, count;
        std::uint64_t seed;
        double smin, smax;
        std::string out_path;
        in >> w >> h >> count >> seed >> smin >> smax >> out_path;
        std::ofstream out(out_path);
        for (int i = 0; i < count; ++i) {
          SampleRng rng(seed, 0, i);
          const auto c = random_resized_crop_params(w, h, smin, smax, 3.0 / 4, 4.0 / 3, rng);
          out << c.top << " " << c.left << " " << c.height << " " << c.width << "\n";
        }
        continue;
      }
      std::string in_path, out_path;
      in >> in_path >> out_path;
      if (op == "decode") {
        int reduce = 0;
        in >> reduce;
        write_ppm(out_path, file_source(in_path)->decode(reduce));
        continue;
      }
      if (op == "view") {
        std::string name;
        int size;
        std::uint64_t seed;
        std::int64_t epoch, index;
        int reduce = 0;
        in >> name >> size >> seed >> epoch >> index >> reduce;
        auto opts = view_defaults(name, size);
        opts.jpeg_reduce = reduce != 0;
        Transform t(opts);
        auto src = file_source(in_path);
        SampleRng rng(seed, epoch, index);
        Image out(size, size);
        print_draw(t.apply(*src, rng, out.pixels.data()));
        write_ppm(out_path, out);
        continue;
      }
      if (op == "device_views") {
        // out_path is the prefix
        int size, count;
        std::uint64_t seed;
        std::int64_t epoch;
        in >> size >> seed >> epoch >> count;
        auto opts = view_defaults("mocov2", size);
        opts.photometric_on_device = true;
        opts.jpeg_reduce = false;  // as `view` without reduce
        Transform t(opts);
        auto images = torch::empty({count, size, size, 3}, torch::kUInt8);
        auto params = torch::empty({count, kPhotometricParams}, torch::kFloat32);
        for (int i = 0; i < count; ++i) {
          auto src = file_source(in_path);
          SampleRng rng(seed, epoch, i);
          Image out(size, size);
          const ViewDraw d = t.apply(*src, rng, out.pixels.data());
          print_draw(d);
          write_ppm(out_path + "_" + std::to_string(i) + ".ppm", out);
          std::memcpy(images[i].data_ptr(), out.pixels.data(), out.pixels.size());
          photometric_params(d, params[i].data_ptr<float>());
        }
        const auto x = apply_photometric(images.permute({0, 3, 1, 2}).to(torch::kFloat32).div(255.0),
                                         params, opts).contiguous();
        std::ofstream f(out_path + ".f32", std::ios::binary);
        f.write(reinterpret_cast<const char*>(x.data_ptr<float>()),
                static_cast<std::streamsize>(x.numel() * sizeof(float)));
        if (!f) throw std::runtime_error("cannot write " + out_path + ".f32");
        continue;
      }
      Image img = decode_file(in_path);
      if (op == "resized_crop") {
        int top, left, h, w, ow, oh;
        in >> top >> left >> h >> w >> ow >> oh;
        Image out(ow, oh);
        resize_region(img, Box{double(left), double(top), double(left + w), double(top + h)}, ow,
                      oh, 0, 0, out);
        img = std::move(out);
      } else if (op == "resize_short") {
        int size, crop;
        in >> size >> crop;
        auto opts = view_defaults("eval", crop);
        opts.eval_resize_ratio = static_cast<double>(size) / crop;
        opts.jpeg_reduce = false;
        SampleRng rng(0, 0, 0);
        auto src = memory_source(std::move(img));
        img = Transform(opts).apply(*src, rng);
      } else if (op == "brightness" || op == "contrast" || op == "saturation" || op == "hue") {
        double f;
        in >> f;
        if (op == "brightness") adjust_brightness(img, f);
        if (op == "contrast") adjust_contrast(img, f);
        if (op == "saturation") adjust_saturation(img, f);
        if (op == "hue") adjust_hue(img, f);
      } else if (op == "grayscale") {
        to_grayscale(img);
      } else if (op == "hflip") {
        horizontal_flip(img);
      } else if (op == "blur") {
        int k;
        double sigma;
        in >> k >> sigma;
        gaussian_blur(img, k, sigma);
      } else {
        std::fprintf(stderr, "image_ops: unknown op '%s'\n", op.c_str());
        return 2;
      }
      write_ppm(out_path, img);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "image_ops: %s: %s\n", line.c_str(), e.what());
    return 1;
  }
  return 0;
}
