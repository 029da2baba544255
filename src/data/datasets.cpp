#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "lgd/core/errors.h"
#include "lgd/data/dataset.h"
#include "lgd/data/decode.h"

namespace fs = std::filesystem;

namespace lgd::data {
namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

bool parse_int(const std::string& s, std::int64_t& out) {
  if (s.empty()) return false;
  std::size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (i == s.size()) return false;
  for (std::size_t j = i; j < s.size(); ++j)
    if (!std::isdigit(static_cast<unsigned char>(s[j]))) return false;
  try {
    out = std::stoll(s);
  } catch (...) {
    return false;
  }
  return true;
}

struct NameLine {
  int line = 0;
  std::string key;   // wnid, or empty
  std::string name;
};

std::vector<NameLine> read_name_lines(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw IoError(path + ": is a directory, expected a class-name file");
  std::ifstream in(path);
  if (!in) throw IoError(path + ": cannot open class-name file");
  std::vector<NameLine> lines;
  std::string text;
  int number = 0;
  while (std::getline(in, text)) {
    ++number;
    if (text.find('\0') != std::string::npos)
      throw IoError(path + ":" + std::to_string(number) +
                    ": binary data (expected one class name per line, UTF-8 text)");
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (trim(text).empty()) continue;
    NameLine l;
    l.line = number;
    const auto tab = text.find('\t');
    if (tab != std::string::npos) {
      l.key = trim(text.substr(0, tab));
      l.name = trim(text.substr(tab + 1));
    } else {
      l.name = trim(text);
    }
    if (l.name.empty()) throw IoError(path + ":" + std::to_string(number) + ": empty class name");
    lines.push_back(l);
  }
  if (lines.empty()) throw IoError(path + ": no class names");
  return lines;
}

// Names for classes known by key (folder names), from an optional names file: positional
// when the file has plain lines, by key when it has wnid<TAB>name lines.
std::vector<std::string> names_for(const std::vector<std::string>& keys,
                                   const std::string& names_file) {
  if (names_file.empty()) return keys;
  const auto lines = read_name_lines(names_file);
  const bool keyed = std::all_of(lines.begin(), lines.end(),
                                 [](const NameLine& l) { return !l.key.empty(); });
  std::vector<std::string> names;
  if (keyed) {
    std::map<std::string, std::string> by_key;
    for (const auto& l : lines) by_key[l.key] = l.name;
    for (const auto& k : keys) {
      const auto it = by_key.find(k);
      if (it == by_key.end())
        throw IoError(names_file + ": no name for class '" + k + "' (expected a line '" + k +
                      "<TAB>name')");
      names.push_back(it->second);
    }
    return names;
  }
  if (lines.size() != keys.size())
    throw IoError(names_file + ": " + std::to_string(lines.size()) + " class names for " +
                  std::to_string(keys.size()) + " classes in the dataset");
  for (const auto& l : lines) names.push_back(l.name);
  return names;
}

// Names for integer labels 0..n-1: the file's names (positionally) or the numbers.
std::vector<std::string> names_for_count(std::int64_t count, const std::string& names_file) {
  std::vector<std::string> keys;
  for (std::int64_t i = 0; i < count; ++i) keys.push_back(std::to_string(i));
  if (names_file.empty()) return keys;
  return read_class_name_file(names_file);
}

void check_labels(const std::vector<std::int64_t>& labels, std::int64_t num_classes,
                  const std::string& where) {
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || labels[i] >= num_classes)
      throw IoError(where + ": label " + std::to_string(labels[i]) + " of sample " +
                    std::to_string(i) + " is outside [0, " + std::to_string(num_classes) +
                    ") (the class names give " + std::to_string(num_classes) + " classes)");
  }
}

// ---------------------------------------------------------------------------------------
// Files on disk: image_folder and file_list.

class FileDataset final : public Dataset {
 public:
  FileDataset(std::vector<std::string> paths, std::vector<std::int64_t> labels,
              std::vector<std::string> names)
      : paths_(std::move(paths)), labels_(std::move(labels)) {
    class_names_ = std::move(names);
  }
  std::int64_t size() const override { return static_cast<std::int64_t>(paths_.size()); }
  std::int64_t label(std::int64_t i) const override { return labels_.at(i); }
  std::string describe(std::int64_t i) const override { return paths_.at(i); }
  std::unique_ptr<ImageSource> open(std::int64_t i) const override {
    return file_source(paths_.at(i));
  }

 private:
  std::vector<std::string> paths_;
  std::vector<std::int64_t> labels_;
};

const std::set<std::string>& image_extensions() {
  static const std::set<std::string> ext{".jpg", ".jpeg", ".png", ".ppm", ".bmp",
                                         ".pgm", ".tif",  ".tiff", ".webp"};
  return ext;
}

std::unique_ptr<Dataset> open_image_folder(const DatasetOptions& o) {
  std::error_code ec;
  if (!fs::is_directory(o.root, ec))
    throw IoError(o.root + ": not a directory (data.root of an image_folder dataset)");
  std::vector<std::string> classes;
  for (const auto& entry : fs::directory_iterator(o.root, ec)) {
    if (entry.is_directory()) classes.push_back(entry.path().filename().string());
  }
  if (ec) throw IoError(o.root + ": cannot list (" + ec.message() + ")");
  std::sort(classes.begin(), classes.end());
  if (classes.empty())
    throw IoError(o.root + ": no class folders (expected root/<class>/<image>)");
  std::vector<std::string> paths;
  std::vector<std::int64_t> labels;
  for (std::size_t c = 0; c < classes.size(); ++c) {
    const fs::path dir = fs::path(o.root) / classes[c];
    std::vector<std::pair<std::string, std::string>> files;  // (parent, name), as os.walk
    for (auto it = fs::recursive_directory_iterator(
             dir, fs::directory_options::follow_directory_symlink, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      if (!it->is_regular_file(ec)) continue;
      const fs::path& p = it->path();
      if (image_extensions().count(lower(p.extension().string())) == 0) continue;
      files.emplace_back(p.parent_path().string(), p.filename().string());
    }
    if (ec) throw IoError(dir.string() + ": cannot list (" + ec.message() + ")");
    if (files.empty())
      throw IoError(dir.string() + ": class folder without images (extensions .jpg .jpeg .png "
                    ".ppm .bmp .pgm .tif .tiff .webp)");
    std::sort(files.begin(), files.end());
    for (const auto& [parent, name] : files) {
      paths.push_back((fs::path(parent) / name).string());
      labels.push_back(static_cast<std::int64_t>(c));
    }
  }
  return std::make_unique<FileDataset>(std::move(paths), std::move(labels),
                                       names_for(classes, o.classnames));
}

std::vector<std::string> split_fields(const std::string& line, char delimiter) {
  std::vector<std::string> fields;
  std::string cur;
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char ch = line[i];
    if (quoted) {
      if (ch == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur += '"';
        ++i;
      } else if (ch == '"') {
        quoted = false;
      } else {
        cur += ch;
      }
    } else if (ch == '"' && trim(cur).empty()) {
      cur.clear();
      quoted = true;
    } else if (ch == delimiter) {
      fields.push_back(trim(cur));
      cur.clear();
    } else {
      cur += ch;
    }
  }
  fields.push_back(trim(cur));
  return fields;
}

std::unique_ptr<Dataset> open_file_list(const DatasetOptions& o) {
  std::ifstream in(o.root);
  std::error_code ec;
  if (!in || fs::is_directory(o.root, ec))
    throw IoError(o.root + ": cannot open file list (data.root of a file_list dataset)");
  const fs::path base = fs::path(o.root).parent_path();
  std::vector<std::string> paths;
  std::vector<std::string> label_text;
  std::vector<int> line_of;
  std::string line;
  int number = 0;
  char delimiter = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (trim(line).empty() || trim(line)[0] == '#') continue;
    if (delimiter == 0) delimiter = line.find('\t') != std::string::npos ? '\t' : ',';
    const auto f = split_fields(line, delimiter);
    if (paths.empty() && label_text.empty() && f.size() == 2 && lower(f[0]) == "path" &&
        lower(f[1]) == "label")
      continue;  // header
    if (f.size() != 2 || f[0].empty() || f[1].empty())
      throw IoError(o.root + ":" + std::to_string(number) + ": expected 'path" +
                    (delimiter == '\t' ? std::string("<TAB>") : std::string(",")) +
                    "label', got '" + line + "'");
    const fs::path p(f[0]);
    paths.push_back((p.is_absolute() ? p : base / p).string());
    label_text.push_back(f[1]);
    line_of.push_back(number);
  }
  if (paths.empty()) throw IoError(o.root + ": empty file list");
  std::vector<std::int64_t> labels(paths.size());
  bool numeric = true;
  for (std::size_t i = 0; i < paths.size() && numeric; ++i) numeric = parse_int(label_text[i], labels[i]);
  std::vector<std::string> names;
  if (numeric) {
    std::int64_t max_label = 0;
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (labels[i] < 0)
        throw IoError(o.root + ":" + std::to_string(line_of[i]) + ": negative label " +
                      std::to_string(labels[i]));
      if (labels[i] >= kMaxClasses)  // names for 0..label would be allocated next
        throw IoError(o.root + ":" + std::to_string(line_of[i]) + ": label " + std::to_string(labels[i]) +
                      " is too large (integer labels are class indices; at most " +
                      std::to_string(kMaxClasses) + " classes)");
      max_label = std::max(max_label, labels[i]);
    }
    names = names_for_count(max_label + 1, o.classnames);
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (labels[i] >= static_cast<std::int64_t>(names.size()))
        throw IoError(o.root + ":" + std::to_string(line_of[i]) + ": label " +
                      std::to_string(labels[i]) + " is outside [0, " +
                      std::to_string(names.size()) + ") (" + o.classnames + " names " +
                      std::to_string(names.size()) + " classes)");
    }
  } else {
    std::vector<std::string> keys(label_text.begin(), label_text.end());
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    std::map<std::string, std::int64_t> index;
    for (std::size_t c = 0; c < keys.size(); ++c) index[keys[c]] = static_cast<std::int64_t>(c);
    for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = index[label_text[i]];
    names = names_for(keys, o.classnames);
  }
  return std::make_unique<FileDataset>(std::move(paths), std::move(labels), std::move(names));
}

// ---------------------------------------------------------------------------------------
// Pixels in memory: idx and cifar.

class ArrayDataset final : public Dataset {
 public:
  ArrayDataset(std::string source, int width, int height, int channels, bool planar,
               std::vector<std::uint8_t> pixels, std::vector<std::int64_t> labels,
               std::vector<std::string> names)
      : source_(std::move(source)), width_(width), height_(height), channels_(channels),
        planar_(planar), pixels_(std::move(pixels)), labels_(std::move(labels)) {
    class_names_ = std::move(names);
  }
  std::int64_t size() const override { return static_cast<std::int64_t>(labels_.size()); }
  std::int64_t label(std::int64_t i) const override { return labels_.at(i); }
  std::string describe(std::int64_t i) const override {
    return source_ + "[" + std::to_string(i) + "]";
  }
  std::unique_ptr<ImageSource> open(std::int64_t i) const override {
    const std::size_t plane = static_cast<std::size_t>(width_) * height_;
    const std::uint8_t* p = pixels_.data() + static_cast<std::size_t>(i) * plane * channels_;
    Image img(width_, height_);
    for (std::size_t k = 0; k < plane; ++k) {
      for (int c = 0; c < 3; ++c) {
        const int src_c = channels_ == 1 ? 0 : c;
        img.pixels[k * 3 + c] = planar_ ? p[src_c * plane + k] : p[k * channels_ + src_c];
      }
    }
    return memory_source(std::move(img));
  }

 private:
  std::string source_;
  int width_, height_, channels_;
  bool planar_;
  std::vector<std::uint8_t> pixels_;
  std::vector<std::int64_t> labels_;
};

// Whole file, gunzipped when compressed (zlib reads plain files transparently).
std::vector<std::uint8_t> read_maybe_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) throw IoError(path + ": cannot open");
  std::vector<std::uint8_t> out;
  std::uint8_t buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + n);
  int err = 0;
  const char* msg = gzerror(f, &err);
  const std::string message = msg ? msg : "";
  gzclose(f);
  if (n < 0 || (err != Z_OK && err != Z_STREAM_END))
    throw IoError(path + ": read error (" + message + ")");
  return out;
}

std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
         std::uint32_t(p[3]);
}

std::string find_existing(const fs::path& dir, const std::string& stem) {
  for (const std::string& candidate : {stem, stem + ".gz"}) {
    if (fs::exists(dir / candidate)) return (dir / candidate).string();
  }
  throw IoError((dir / stem).string() + "(.gz): not found (data.root of an idx dataset)");
}

std::unique_ptr<Dataset> open_idx(const DatasetOptions& o) {
  std::error_code ec;
  if (!fs::is_directory(o.root, ec))
    throw IoError(o.root + ": not a directory (data.root of an idx dataset)");
  const std::string prefix = o.split == "train" ? "train" : "t10k";
  const std::string images_path = find_existing(o.root, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_existing(o.root, prefix + "-labels-idx1-ubyte");
  auto images = read_maybe_gz(images_path);
  const auto label_bytes = read_maybe_gz(labels_path);
  if (images.size() < 16 || be32(images.data()) != 0x00000803)
    throw IoError(images_path + ": not an IDX image file (expected magic 0x00000803)");
  if (label_bytes.size() < 8 || be32(label_bytes.data()) != 0x00000801)
    throw IoError(labels_path + ": not an IDX label file (expected magic 0x00000801)");
  const std::uint32_t count = be32(images.data() + 4);
  const std::uint32_t rows = be32(images.data() + 8);
  const std::uint32_t cols = be32(images.data() + 12);
  if (count == 0) throw IoError(images_path + ": empty dataset");
  if (images.size() != 16 + std::size_t(count) * rows * cols)
    throw IoError(images_path + ": " + std::to_string(images.size() - 16) + " pixel bytes for " +
                  std::to_string(count) + " images of " + std::to_string(rows) + "x" +
                  std::to_string(cols));
  const std::uint32_t label_count = be32(label_bytes.data() + 4);
  if (label_count != count || label_bytes.size() != 8 + std::size_t(count))
    throw IoError(labels_path + ": " + std::to_string(label_count) + " labels for " +
                  std::to_string(count) + " images in " + images_path);
  std::vector<std::int64_t> labels(label_bytes.begin() + 8, label_bytes.end());
  images.erase(images.begin(), images.begin() + 16);
  const std::int64_t max_label = *std::max_element(labels.begin(), labels.end());
  auto names = names_for_count(max_label + 1, o.classnames);
  check_labels(labels, static_cast<std::int64_t>(names.size()), labels_path);
  return std::make_unique<ArrayDataset>(images_path, static_cast<int>(cols),
                                        static_cast<int>(rows), 1, false, std::move(images),
                                        std::move(labels), std::move(names));
}

std::unique_ptr<Dataset> open_cifar(const DatasetOptions& o) {
  std::error_code ec;
  if (!fs::is_directory(o.root, ec))
    throw IoError(o.root + ": not a directory (data.root of a cifar dataset)");
  const fs::path root(o.root);
  std::vector<std::string> files;
  int label_bytes = 1;
  std::string names_file;
  if (fs::exists(root / "data_batch_1.bin") || fs::exists(root / "test_batch.bin")) {
    if (o.split == "train") {
      for (int i = 1; i <= 5; ++i) files.push_back((root / ("data_batch_" + std::to_string(i) + ".bin")).string());
    } else {
      files.push_back((root / "test_batch.bin").string());
    }
    names_file = (root / "batches.meta.txt").string();
  } else if (fs::exists(root / "train.bin") || fs::exists(root / "test.bin")) {
    files.push_back((root / (o.split == "train" ? "train.bin" : "test.bin")).string());
    label_bytes = 2;  // coarse, fine
    names_file = (root / "fine_label_names.txt").string();
  } else {
    throw IoError(o.root + ": no CIFAR binary batches (expected data_batch_1.bin ... "
                  "test_batch.bin for CIFAR-10, or train.bin / test.bin for CIFAR-100)");
  }
  const std::size_t record = label_bytes + 3072;
  std::vector<std::uint8_t> pixels;
  std::vector<std::int64_t> labels;
  for (const auto& file : files) {
    const auto bytes = read_maybe_gz(file);
    if (bytes.empty() || bytes.size() % record != 0)
      throw IoError(file + ": " + std::to_string(bytes.size()) + " bytes is not a whole number of " +
                    std::to_string(record) + "-byte CIFAR records");
    for (std::size_t off = 0; off < bytes.size(); off += record) {
      labels.push_back(bytes[off + label_bytes - 1]);
      pixels.insert(pixels.end(), bytes.begin() + off + label_bytes, bytes.begin() + off + record);
    }
  }
  std::vector<std::string> names;
  if (!o.classnames.empty()) {
    names = read_class_name_file(o.classnames);
  } else if (fs::exists(names_file)) {
    names = read_class_name_file(names_file);
  } else {
    const std::int64_t max_label = *std::max_element(labels.begin(), labels.end());
    names = names_for_count(max_label + 1, "");
  }
  check_labels(labels, static_cast<std::int64_t>(names.size()), files.front());
  return std::make_unique<ArrayDataset>(files.size() == 1 ? files.front() : o.root, 32, 32, 3, true,
                                        std::move(pixels), std::move(labels), std::move(names));
}

}  // namespace

std::vector<std::string> read_class_name_file(const std::string& path) {
  std::vector<std::string> names;
  for (const auto& l : read_name_lines(path)) names.push_back(l.name);
  return names;
}

std::unique_ptr<Dataset> open_dataset(const DatasetOptions& options) {
  if (options.split != "train" && options.split != "test")
    throw ConfigError("data split '" + options.split + "': expected train or test");
  if (options.root.empty())
    throw ConfigError("data.root: empty (expected the dataset's folder or list file)");
  std::unique_ptr<Dataset> ds;
  if (options.format == "image_folder") {
    ds = open_image_folder(options);
  } else if (options.format == "file_list") {
    ds = open_file_list(options);
  } else if (options.format == "idx") {
    ds = open_idx(options);
  } else if (options.format == "cifar") {
    ds = open_cifar(options);
  } else {
    throw ConfigError("data.dataset: unknown format '" + options.format +
                      "' (expected image_folder, file_list, idx or cifar)");
  }
  return ds;
}

namespace {

class SubsetDataset final : public Dataset {
 public:
  SubsetDataset(std::shared_ptr<const Dataset> base, std::vector<std::int64_t> indices)
      : base_(std::move(base)), indices_(std::move(indices)) {
    class_names_ = base_->class_names();
  }
  std::int64_t size() const override { return static_cast<std::int64_t>(indices_.size()); }
  std::int64_t label(std::int64_t i) const override { return base_->label(at(i)); }
  std::string describe(std::int64_t i) const override { return base_->describe(at(i)); }
  std::unique_ptr<ImageSource> open(std::int64_t i) const override { return base_->open(at(i)); }

 private:
  std::int64_t at(std::int64_t i) const { return indices_[static_cast<std::size_t>(i)]; }
  std::shared_ptr<const Dataset> base_;
  std::vector<std::int64_t> indices_;
};

}  // namespace

std::shared_ptr<const Dataset> subset(std::shared_ptr<const Dataset> base, std::vector<std::int64_t> indices) {
  return std::make_shared<SubsetDataset>(std::move(base), std::move(indices));
}

}  // namespace lgd::data
