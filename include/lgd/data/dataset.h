#pragma once
// Labelled image datasets in the formats users have:
//   image_folder  root/<class>/<image> (torchvision's ImageFolder: classes sorted, files
//                 sorted, extensions .jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp)
//   file_list     a CSV or TSV of "path,label" (paths relative to the list; labels integers
//                 or class names)
//   idx           MNIST / Fashion-MNIST: root/<split>-images-idx3-ubyte(.gz) and labels
//                 (split "train" or "t10k"/"test"), grey expanded to RGB
//   cifar         CIFAR-10 (data_batch_*.bin / test_batch.bin) or CIFAR-100 (train.bin /
//                 test.bin) binary batches
// Construction reads the index (and, for idx and cifar, the pixels); samples are opened on
// demand from any thread.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lgd/data/image.h"

namespace lgd::data {

// The most classes a dataset may have (a file_list's integer labels are class indices).
inline constexpr std::int64_t kMaxClasses = 1000000;

struct DatasetOptions {
  std::string format = "image_folder";  // image_folder | file_list | idx | cifar
  std::string root;                     // folder, list file, or the folder of the files
  std::string split = "train";          // idx and cifar: train | test
  std::string classnames;               // optional class-name file (one per line, or wnid<TAB>name)
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual std::int64_t size() const = 0;
  virtual std::int64_t label(std::int64_t index) const = 0;
  // Where the sample comes from, for messages ("path" or "file[index]").
  virtual std::string describe(std::int64_t index) const = 0;
  // The encoded or in-memory image; BadSample when it cannot be read.
  virtual std::unique_ptr<ImageSource> open(std::int64_t index) const = 0;

  const std::vector<std::string>& class_names() const { return class_names_; }
  std::int64_t num_classes() const { return static_cast<std::int64_t>(class_names_.size()); }

 protected:
  std::vector<std::string> class_names_;
};

// Opens a dataset. IoError naming the path for a missing root, an empty dataset, an empty
// class folder, a malformed list line or a label out of range; ConfigError for an unknown
// format or split.
std::unique_ptr<Dataset> open_dataset(const DatasetOptions& options);

// A view of `base` restricted to `indices` (in that order), with base's class names.
std::shared_ptr<const Dataset> subset(std::shared_ptr<const Dataset> base, std::vector<std::int64_t> indices);

// Class names from a file: one per line, or "wnid<TAB>name" (the name is taken). Blank
// lines are skipped.
std::vector<std::string> read_class_name_file(const std::string& path);

}  // namespace lgd::data
