#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <map>

#include "data_test_util.h"
#include "lgd/core/errors.h"
#include "lgd/data/dataset.h"
#include "lgd/data/decode.h"

namespace lgd::data {
namespace {

using lgd::testing::TempDir;
using lgd::testing::write_bytes;
using lgd::testing::write_solid;
using lgd::testing::write_text;

Image full(const Dataset& ds, std::int64_t i) { return ds.open(i)->decode(0); }

void expect_solid(const Image& img, int w, int h, int r, int g, int b, int tol) {
  ASSERT_EQ(img.width, w);
  ASSERT_EQ(img.height, h);
  for (std::size_t i = 0; i < img.pixels.size(); i += 3) {
    ASSERT_NEAR(img.pixels[i], r, tol);
    ASSERT_NEAR(img.pixels[i + 1], g, tol);
    ASSERT_NEAR(img.pixels[i + 2], b, tol);
  }
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

template <typename F>
std::string bad_sample_of(F&& f) {
  try {
    f();
  } catch (const lgd::data::BadSample& e) {
    return e.what();
  }
  return "(no BadSample)";
}

TEST(ImageFolder, SortsClassesAndFilesLikeTorchvisionAndReadsEachFormat) {
  if (!lgd::data::decodes_other_formats()) GTEST_SKIP() << "built without OpenCV: BMP and WebP are not read";
  TempDir dir("folder");
  write_solid(dir / "zebra/b.png", 7, 5, 10, 20, 30);
  write_solid(dir / "zebra/a.jpg", 16, 16, 200, 100, 50);
  write_solid(dir / "zebra/sub/c.bmp", 3, 4, 1, 2, 3);
  write_text(dir / "zebra/notes.txt", "not an image");
  write_solid(dir / "apple/x.webp", 9, 9, 90, 180, 45);
  write_solid(dir / "mango/M.PNG", 2, 2, 255, 0, 128);
  DatasetOptions o;
  o.root = dir.str();
  const auto ds = open_dataset(o);
  EXPECT_EQ(ds->class_names(), (std::vector<std::string>{"apple", "mango", "zebra"}));
  ASSERT_EQ(ds->size(), 5);
  const std::vector<std::string> files = {"apple/x.webp", "mango/M.PNG", "zebra/a.jpg",
                                          "zebra/b.png", "zebra/sub/c.bmp"};
  const std::vector<std::int64_t> labels = {0, 1, 2, 2, 2};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(ds->describe(i), dir / files[i]);
    EXPECT_EQ(ds->label(i), labels[i]);
  }
  expect_solid(full(*ds, 0), 9, 9, 90, 180, 45, 1);  // WebP (lossy at default quality)
  expect_solid(full(*ds, 1), 2, 2, 255, 0, 128, 0);
  expect_solid(full(*ds, 2), 16, 16, 200, 100, 50, 3);  // JPEG
  expect_solid(full(*ds, 3), 7, 5, 10, 20, 30, 0);
  expect_solid(full(*ds, 4), 3, 4, 1, 2, 3, 0);
}

// PNG through libpng: colour types converted to RGB by hand-worked values; alpha dropped as
// PIL's convert("RGB") does; a truncated file is a BadSample naming it.
// Rewrites the size in a JPEG's SOF marker or a PNG's IHDR chunk (with its CRC): the header
// then claims what a decompression bomb claims, while the file stays a few hundred bytes.
std::vector<std::uint8_t> claim_size(std::vector<std::uint8_t> bytes, std::uint32_t w, std::uint32_t h) {
  if (bytes[0] == 0xFF) {  // JPEG: FFC0..FFC2 -> length(2) precision(1) height(2) width(2)
    for (std::size_t i = 2; i + 8 < bytes.size(); ++i)
      if (bytes[i] == 0xFF && bytes[i + 1] >= 0xC0 && bytes[i + 1] <= 0xC2) {
        bytes[i + 5] = static_cast<std::uint8_t>(h >> 8), bytes[i + 6] = static_cast<std::uint8_t>(h);
        bytes[i + 7] = static_cast<std::uint8_t>(w >> 8), bytes[i + 8] = static_cast<std::uint8_t>(w);
        return bytes;
      }
    throw std::runtime_error("no SOF marker");
  }
  // PNG: signature(8) length(4) "IHDR"(4) width(4) height(4) ... CRC over type + data (13)
  for (int k = 0; k < 4; ++k) {
    bytes[16 + k] = static_cast<std::uint8_t>(w >> (24 - 8 * k));
    bytes[20 + k] = static_cast<std::uint8_t>(h >> (24 - 8 * k));
  }
  const auto crc = static_cast<std::uint32_t>(crc32(0, bytes.data() + 12, 17));
  for (int k = 0; k < 4; ++k) bytes[29 + k] = static_cast<std::uint8_t>(crc >> (24 - 8 * k));
  return bytes;
}

TEST(Decode, DecompressionBombsAreRefusedBeforeDecoding) {
  TempDir dir("bomb");
  write_solid(dir / "small.jpg", 16, 16, 10, 20, 30);
  write_solid(dir / "small.png", 16, 16, 10, 20, 30);
  write_bytes(dir / "bomb.jpg", claim_size(lgd::testing::read_bytes(dir / "small.jpg"), 60000, 60000));
  write_bytes(dir / "bomb.png", claim_size(lgd::testing::read_bytes(dir / "small.png"), 32000, 32000));
  ASSERT_EQ(lgd::data::max_image_pixels(), lgd::data::kDefaultMaxImagePixels);
  // The header is read when the source is made: no pixel buffer exists yet.
  auto e = bad_sample_of([&] { lgd::data::file_source(dir / "bomb.jpg"); });
  EXPECT_EQ(e, dir / "bomb.jpg" + ": JPEG of 60000x60000 = 3600000000 pixels exceeds the limit of "
                                  "89478485 (data.max_pixels; a possible decompression bomb)");
  e = bad_sample_of([&] { lgd::data::file_source(dir / "bomb.png"); });
  EXPECT_NE(e.find(dir / "bomb.png" + ": PNG of 32000x32000 = 1024000000 pixels exceeds the limit"),
            std::string::npos) << e;
  // The limit is a setting: 16 x 16 = 256 pixels pass a limit of 256 and not one of 255.
  lgd::data::set_max_image_pixels(256);
  EXPECT_EQ(lgd::data::decode_file(dir / "small.png").width, 16);
  lgd::data::set_max_image_pixels(255);
  e = bad_sample_of([&] { lgd::data::decode_file(dir / "small.jpg"); });
  EXPECT_NE(e.find("JPEG of 16x16 = 256 pixels exceeds the limit of 255"), std::string::npos) << e;
  lgd::data::set_max_image_pixels(lgd::data::kDefaultMaxImagePixels);
}

TEST(Decode, AFolderIsABadSample) {
  TempDir dir("folder_sample");
  std::filesystem::create_directories(dir / "sub.jpg");
  EXPECT_EQ(bad_sample_of([&] { lgd::data::decode_file(dir / "sub.jpg"); }),
            dir / "sub.jpg" + ": is a directory, not an image file");
}

TEST(Decode, PngColourTypesAlphaAndTruncation) {
  TempDir dir("png");
  lgd::testing::write_png(dir / "rgba.png", 3, 1, PNG_FORMAT_RGBA, {10, 20, 30, 0, 40, 50, 60, 128, 70, 80, 90, 255});
  lgd::testing::write_png(dir / "grey.png", 2, 2, PNG_FORMAT_GRAY, {0, 77, 200, 255});
  auto rgba = lgd::data::decode_file(dir / "rgba.png");
  ASSERT_EQ(rgba.width, 3);
  EXPECT_EQ(rgba.pixels, (std::vector<std::uint8_t>{10, 20, 30, 40, 50, 60, 70, 80, 90}));
  auto grey = lgd::data::decode_file(dir / "grey.png");
  ASSERT_EQ(grey.height, 2);
  EXPECT_EQ(grey.pixels, (std::vector<std::uint8_t>{0, 0, 0, 77, 77, 77, 200, 200, 200, 255, 255, 255}));

  auto bytes = lgd::testing::read_bytes(dir / "grey.png");
  bytes.resize(bytes.size() - 20);  // cuts into the image data
  write_bytes(dir / "cut.png", bytes);
  const auto e = bad_sample_of([&] { lgd::data::decode_file(dir / "cut.png"); });
  EXPECT_NE(e.find(dir / "cut.png"), std::string::npos) << e;
  EXPECT_NE(e.find("PNG"), std::string::npos) << e;
}

// A 2 x 2 24-bit BMP written byte by byte: read with OpenCV when lgd has it, else one error
// naming the file and the build option.
TEST(Decode, OtherFormatsFollowTheBuild) {
  TempDir dir("bmp");
  std::vector<std::uint8_t> bmp = {'B', 'M', 70, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0,  // file header
                                   40, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 24, 0, 0, 0, 0, 0,
                                   16, 0, 0, 0, 0x13, 0x0B, 0, 0, 0x13, 0x0B, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  // Rows bottom-up, BGR, padded to 4 bytes: bottom row blue, white; top row red, green.
  for (std::uint8_t b : {255, 0, 0, 255, 255, 255, 0, 0, 0, 0, 255, 0, 255, 0, 0, 0}) bmp.push_back(b);
  write_bytes(dir / "a.bmp", bmp);
  if (lgd::data::decodes_other_formats()) {
    const auto img = lgd::data::decode_file(dir / "a.bmp");
    ASSERT_EQ(img.width, 2);
    EXPECT_EQ(img.pixels, (std::vector<std::uint8_t>{255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255}));
  } else {
    const auto e = bad_sample_of([&] { lgd::data::decode_file(dir / "a.bmp"); });
    EXPECT_NE(e.find(dir / "a.bmp" + ": not a JPEG or PNG file"), std::string::npos) << e;
    EXPECT_NE(e.find("LGD_WITH_OPENCV"), std::string::npos) << e;
  }
}

TEST(ImageFolder, ClassNamesFromAFilePositionallyOrByWnid) {
  TempDir dir("names");
  write_solid(dir / "data/n02/a.png", 2, 2, 0, 0, 0);
  write_solid(dir / "data/n01/a.png", 2, 2, 0, 0, 0);
  write_text(dir / "plain.txt", "goldfish\n\ntench\n");
  write_text(dir / "wnids.txt", "n01\ttench, Tinca tinca\nn02\tgoldfish\nn03\tunused\n");
  DatasetOptions o;
  o.root = dir / "data";
  o.classnames = dir / "plain.txt";
  EXPECT_EQ(open_dataset(o)->class_names(), (std::vector<std::string>{"goldfish", "tench"}));
  o.classnames = dir / "wnids.txt";
  EXPECT_EQ(open_dataset(o)->class_names(),
            (std::vector<std::string>{"tench, Tinca tinca", "goldfish"}));
  write_text(dir / "short.txt", "one\n");
  o.classnames = dir / "short.txt";
  EXPECT_NE(error_of([&] { open_dataset(o); }).find("1 class names for 2 classes"), std::string::npos);
  o.classnames = dir / "data";
  EXPECT_EQ(error_of([&] { open_dataset(o); }), dir / "data" + ": is a directory, expected a class-name file");
  write_bytes(dir / "binary.txt", {'t', 'e', 'n', 'c', 'h', '\n', 'g', 0, 'x', '\n'});
  o.classnames = dir / "binary.txt";
  EXPECT_EQ(error_of([&] { open_dataset(o); }),
            dir / "binary.txt" + ":2: binary data (expected one class name per line, UTF-8 text)");
}

TEST(ImageFolder, EmptyClassFolderAndMissingRootAreErrorsNamingThePath) {
  TempDir dir("empty");
  write_solid(dir / "a/x.png", 2, 2, 0, 0, 0);
  std::filesystem::create_directories(dir / "b");
  write_text(dir / "b/readme.txt", "no images here");
  DatasetOptions o;
  o.root = dir.str();
  const std::string e = error_of([&] { open_dataset(o); });
  EXPECT_NE(e.find(dir / "b"), std::string::npos) << e;
  EXPECT_NE(e.find("without images"), std::string::npos) << e;
  o.root = dir / "missing";
  EXPECT_NE(error_of([&] { open_dataset(o); }).find(dir / "missing"), std::string::npos);
  TempDir none("none");
  o.root = none.str();
  EXPECT_NE(error_of([&] { open_dataset(o); }).find("no class folders"), std::string::npos);
}

TEST(FileList, CsvWithHeaderRelativePathsAndIntegerLabels) {
  TempDir dir("list");
  write_solid(dir / "img/a.png", 3, 3, 1, 1, 1);
  write_solid(dir / "img/b.png", 3, 3, 2, 2, 2);
  write_text(dir / "list.csv", "path,label\nimg/a.png,2\n\"img/b.png\",0\n");
  DatasetOptions o;
  o.format = "file_list";
  o.root = dir / "list.csv";
  auto ds = open_dataset(o);
  ASSERT_EQ(ds->size(), 2);
  EXPECT_EQ(ds->num_classes(), 3);
  EXPECT_EQ(ds->label(0), 2);
  EXPECT_EQ(ds->label(1), 0);
  EXPECT_EQ(ds->describe(1), dir / "img/b.png");
  expect_solid(full(*ds, 1), 3, 3, 2, 2, 2, 0);

  write_text(dir / "names.txt", "x\ny\n");
  o.classnames = dir / "names.txt";
  const std::string e = error_of([&] { open_dataset(o); });
  EXPECT_NE(e.find(dir / "list.csv" + ":2: label 2 is outside [0, 2)"), std::string::npos) << e;
}

TEST(FileList, TsvWithClassNamesSortedIntoLabels) {
  TempDir dir("tsv");
  write_solid(dir / "a.png", 3, 3, 1, 1, 1);
  write_text(dir / "list.tsv", dir / "a.png" + "\tzebra\n" + "a.png\tant\na.png\tzebra\n");
  DatasetOptions o;
  o.format = "file_list";
  o.root = dir / "list.tsv";
  auto ds = open_dataset(o);
  EXPECT_EQ(ds->class_names(), (std::vector<std::string>{"ant", "zebra"}));
  EXPECT_EQ(ds->label(0), 1);
  EXPECT_EQ(ds->label(1), 0);
  write_text(dir / "bad.csv", "a.png,1\na.png\n");
  o.root = dir / "bad.csv";
  EXPECT_NE(error_of([&] { open_dataset(o); }).find("bad.csv:2: expected 'path,label'"),
            std::string::npos);
  write_text(dir / "empty.csv", "path,label\n");
  o.root = dir / "empty.csv";
  EXPECT_NE(error_of([&] { open_dataset(o); }).find("empty file list"), std::string::npos);
  // An integer label is a class index: one of 80 billion would allocate that many names (found
  // by fuzz/targets/file_list.cpp); above 1,000,000 classes it is refused naming the line.
  write_text(dir / "huge.csv", "a.png,0\na.png,80000000001\n");
  o.root = dir / "huge.csv";
  EXPECT_EQ(error_of([&] { open_dataset(o); }),
            dir / "huge.csv" + ":2: label 80000000001 is too large (integer labels are class indices; "
                               "at most 1000000 classes)");
}

std::vector<std::uint8_t> be32(std::uint32_t v) {
  return {std::uint8_t(v >> 24), std::uint8_t(v >> 16), std::uint8_t(v >> 8), std::uint8_t(v)};
}

void write_gz(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

TEST(Idx, ReadsImagesAndLabelsPlainAndGzippedAsRgb) {
  TempDir dir("idx");
  const int n = 5, rows = 4, cols = 3;
  std::vector<std::uint8_t> images = be32(0x803), labels = be32(0x801);
  for (auto v : {be32(n), be32(rows), be32(cols)}) images.insert(images.end(), v.begin(), v.end());
  auto nv = be32(n);
  labels.insert(labels.end(), nv.begin(), nv.end());
  for (int i = 0; i < n; ++i) {
    labels.push_back(static_cast<std::uint8_t>((i * 3) % 4));
    for (int p = 0; p < rows * cols; ++p) images.push_back(static_cast<std::uint8_t>(i * 40 + p));
  }
  write_gz(dir / "train-images-idx3-ubyte.gz", images);
  write_bytes(dir / "train-labels-idx1-ubyte", labels);
  DatasetOptions o;
  o.format = "idx";
  o.root = dir.str();
  auto ds = open_dataset(o);
  ASSERT_EQ(ds->size(), n);
  EXPECT_EQ(ds->num_classes(), 4);
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(ds->label(i), (i * 3) % 4);
    const Image img = full(*ds, i);
    ASSERT_EQ(img.width, cols);
    ASSERT_EQ(img.height, rows);
    for (int y = 0; y < rows; ++y)
      for (int x = 0; x < cols; ++x)
        for (int c = 0; c < 3; ++c) ASSERT_EQ(img.row(y)[x * 3 + c], i * 40 + y * cols + x);
  }
  o.split = "test";
  EXPECT_NE(error_of([&] { open_dataset(o); }).find("t10k-images-idx3-ubyte"), std::string::npos);
  labels.pop_back();
  write_bytes(dir / "train-labels-idx1-ubyte", labels);
  o.split = "train";
  EXPECT_NE(error_of([&] { open_dataset(o); }).find("labels for 5 images"), std::string::npos);
}

TEST(Idx, FashionMnistFromTheDebianPackage) {
  const char* env = std::getenv("LGD_FASHION_MNIST");  // as scripts/demo.sh
  const std::string root = env ? env : "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(root + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist is not installed (nor LGD_FASHION_MNIST set)";
  DatasetOptions o;
  o.format = "idx";
  o.root = root;
  for (const auto& [split, count] : std::map<std::string, int>{{"train", 60000}, {"test", 10000}}) {
    o.split = split;
    auto ds = open_dataset(o);
    ASSERT_EQ(ds->size(), count);
    EXPECT_EQ(ds->num_classes(), 10);
    std::vector<int> per_class(10);
    for (std::int64_t i = 0; i < ds->size(); ++i) ++per_class[ds->label(i)];
    for (int c = 0; c < 10; ++c) EXPECT_EQ(per_class[c], count / 10);  // balanced by design
    const Image img = full(*ds, 0);
    EXPECT_EQ(img.width, 28);
    EXPECT_EQ(img.height, 28);
  }
}

TEST(Cifar, Cifar10BatchesAndCifar100Files) {
  TempDir dir("cifar10");
  auto record = [](int label_bytes, int coarse, int fine, int seed) {
    std::vector<std::uint8_t> r;
    if (label_bytes == 2) r.push_back(static_cast<std::uint8_t>(coarse));
    r.push_back(static_cast<std::uint8_t>(fine));
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 1024; ++p) r.push_back(static_cast<std::uint8_t>(seed + c * 50 + p % 7));
    return r;
  };
  for (int b = 1; b <= 5; ++b) {
    std::vector<std::uint8_t> bytes;
    for (int k = 0; k < 2; ++k) {
      auto r = record(1, 0, (b + k) % 10, b * 2 + k);
      bytes.insert(bytes.end(), r.begin(), r.end());
    }
    write_bytes(dir / ("data_batch_" + std::to_string(b) + ".bin"), bytes);
  }
  write_bytes(dir / "test_batch.bin", record(1, 0, 9, 99));
  std::string names;
  for (const char* n : {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                        "ship", "truck"})
    names += std::string(n) + "\n";
  write_text(dir / "batches.meta.txt", names);
  DatasetOptions o;
  o.format = "cifar";
  o.root = dir.str();
  auto ds = open_dataset(o);
  ASSERT_EQ(ds->size(), 10);
  EXPECT_EQ(ds->class_names()[9], "truck");
  EXPECT_EQ(ds->label(3), 3);  // batch 2, second record: (2 + 1) % 10
  const Image img = full(*ds, 3);
  ASSERT_EQ(img.width, 32);
  // Planar R, G, B planes become interleaved pixels.
  for (int p : {0, 1, 33, 1023}) {
    for (int c = 0; c < 3; ++c) EXPECT_EQ(img.pixels[p * 3 + c], 5 + c * 50 + p % 7);
  }
  o.split = "test";
  EXPECT_EQ(open_dataset(o)->size(), 1);

  TempDir dir100("cifar100");
  std::vector<std::uint8_t> bytes;
  for (int k = 0; k < 3; ++k) {
    auto r = record(2, 19, 40 + k, k);
    bytes.insert(bytes.end(), r.begin(), r.end());
  }
  write_bytes(dir100 / "train.bin", bytes);
  o.root = dir100.str();
  o.split = "train";
  auto ds100 = open_dataset(o);
  ASSERT_EQ(ds100->size(), 3);
  EXPECT_EQ(ds100->label(2), 42);  // the fine label
  EXPECT_EQ(ds100->num_classes(), 43);
  bytes.pop_back();
  write_bytes(dir100 / "train.bin", bytes);
  EXPECT_NE(error_of([&] { open_dataset(o); }).find("not a whole number of 3074-byte"),
            std::string::npos);
}

}  // namespace
}  // namespace lgd::data
