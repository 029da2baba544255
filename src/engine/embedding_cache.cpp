// The teacher-embedding cache: what it depends on (cache_fields) and reading it
// (EmbeddingCache). The raw [K, N, D] file is mapped with mmap(2) rather than a library:
// LibTorch has no memory-mapped tensor file in 1.13, and the layout is one numpy.memmap
// line for other readers.
#include "lgd/engine/embedding_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <system_error>

#include "lgd/config/run_config.h"
#include "lgd/core/digest.h"
#include "lgd/core/errors.h"
#include "lgd/core/file_io.h"
#include "lgd/core/logging.h"
#include "lgd/data/dataset.h"
#include "lgd/distill/teacher.h"

namespace lgd::engine {
namespace fs = std::filesystem;

namespace {

std::string list(const std::vector<double>& v) {
  std::string out;
  for (double x : v) out += (out.empty() ? "" : ",") + fmt::format("{}", x);
  return "[" + out + "]";
}

// The file list, labels and file sizes (where a sample is a file) of a dataset.
std::string dataset_digest(const data::Dataset& dataset) {
  Digest d;
  for (std::int64_t i = 0; i < dataset.size(); ++i) {
    const std::string where = dataset.describe(i);
    d.text(where).value(dataset.label(i));
    std::error_code ec;
    const auto size = fs::file_size(where, ec);
    if (!ec) d.value(static_cast<std::uint64_t>(size));
  }
  return d.hex();
}

}  // namespace

CacheFields cache_fields(const config::RunConfig& cfg, const distill::Teacher& teacher, const data::Dataset& dataset,
                         bool photometric_on_device) {
  const auto& tm = teacher.manifest();
  const auto& d = cfg.data;
  const std::string teacher_digest = Digest()
                                         .file((fs::path(teacher.dir()) / "lgd_teacher.yaml").string())
                                         .file((fs::path(teacher.dir()) / tm.image.file).string())
                                         .hex();
  return {{"format", "lgd-teacher-embeddings/1"},
          {"teacher.name", tm.name},
          {"teacher.digest", teacher_digest},
          {"embed_dim", std::to_string(tm.embed_dim)},
          {"dataset.format", d.dataset},
          {"dataset.root", fs::absolute(d.root).lexically_normal().string()},
          {"dataset.split", d.split},
          {"dataset.size", std::to_string(dataset.size())},
          {"dataset.digest", dataset_digest(dataset)},
          {"image_size", std::to_string(d.image_size)},
          {"view.augment", d.augment},
          {"view.crop_scale", list(d.crop_scale)},
          {"view.crop_ratio", list(d.crop_ratio)},
          {"view.jitter", list(d.jitter)},
          {"view.jitter_p", fmt::format("{}", d.jitter_p)},
          {"view.grayscale_p", fmt::format("{}", d.grayscale_p)},
          {"view.blur_p", fmt::format("{}", d.blur_p)},
          {"view.blur_sigma", list(d.blur_sigma)},
          {"view.flip_p", fmt::format("{}", d.flip_p)},
          {"view.jpeg_reduce", d.jpeg_reduce ? "true" : "false"},
          {"view.max_pixels", std::to_string(d.max_pixels)},
          {"view.colour_work", photometric_on_device ? "device" : "host"},
          {"data.seed", std::to_string(config::data_seed(cfg))}};
}

std::int64_t cache_dtype_bytes(const std::string& dtype, const std::string& option) {
  if (dtype == "float16" || dtype == "bfloat16") return 2;
  if (dtype == "float32") return 4;
  throw ConfigError(option + ": '" + dtype + "' is not a cache dtype (expected float16, bfloat16 or float32)");
}

std::string first_difference(const CacheFields& actual, const CacheFields& expected) {
  for (const auto& [key, want] : expected) {
    std::string have = "(missing)";
    for (const auto& [k, v] : actual)
      if (k == key) have = v;
    if (have != want) return key + ": " + have + " in the cache, " + want + " in this run";
  }
  return {};
}

std::unique_ptr<EmbeddingCache> EmbeddingCache::open(const std::string& dir) {
  const auto manifest = fs::path(dir) / "manifest.json";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw IoError(dir + ": no such cache folder (expected one written by lgd reinforce)");
  if (!fs::is_regular_file(manifest, ec)) {
    if (fs::exists(fs::path(dir) / "plan.json", ec))
      throw IoError(dir + ": an unfinished cache (lgd reinforce was interrupted; run the same command again to finish it)");
    throw IoError(dir + ": no manifest.json (expected a folder written by lgd reinforce)");
  }
  std::unique_ptr<EmbeddingCache> c(new EmbeddingCache());
  c->dir_ = dir;
  try {
    const auto bytes = read_file(manifest.string());
    const auto j = nlohmann::json::parse(bytes.begin(), bytes.end());
    for (const auto& [k, v] : j.at("fields").items()) c->fields_.emplace_back(k, v.get<std::string>());
    c->views_ = j.at("views").get<std::int64_t>();
    c->size_ = j.at("size").get<std::int64_t>();
    c->dim_ = j.at("embed_dim").get<std::int64_t>();
    c->dtype_ = j.at("dtype").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw IoError(manifest.string() + ": not a cache manifest (" + e.what() + ")");
  }
  try {
    c->bytes_ = cache_dtype_bytes(c->dtype_, manifest.string() + ": dtype");
  } catch (const ConfigError& e) {
    throw IoError(e.what());
  }
  if (c->views_ < 1 || c->size_ < 1 || c->dim_ < 1)
    throw IoError(manifest.string() + ": views, size and embed_dim must be positive");
  const auto file = (fs::path(dir) / "embeddings.bin").string();
  std::int64_t total = 0;
  if (__builtin_mul_overflow(c->views_, c->size_, &total) || __builtin_mul_overflow(total, c->dim_, &total) ||
      __builtin_mul_overflow(total, c->bytes_, &total))
    throw IoError(manifest.string() + ": views x size x embed_dim is beyond any file");
  const std::size_t want = static_cast<std::size_t>(total);
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(file + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || static_cast<std::size_t>(st.st_size) != want) {
    ::close(fd);
    throw IoError(file + ": " + std::to_string(st.st_size) + " bytes, the manifest needs " + std::to_string(want) +
                  " (" + std::to_string(c->views_) + " views x " + std::to_string(c->size_) + " images x " +
                  std::to_string(c->dim_) + " x " + c->dtype_ + ")");
  }
  void* p = ::mmap(nullptr, want, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw IoError(file + ": cannot map (" + std::strerror(errno) + ")");
  ::madvise(p, want, MADV_RANDOM);
  c->map_ = p;
  c->map_size_ = want;
  return c;
}

EmbeddingCache::~EmbeddingCache() {
  if (map_) ::munmap(map_, map_size_);
}

at::Tensor EmbeddingCache::rows(std::int64_t view, const at::Tensor& indices) const {
  if (view < 0 || view >= views_) throw UsageError(dir_ + ": no view " + std::to_string(view));
  const auto idx = indices.to(torch::kCPU, torch::kInt64).contiguous();
  const auto type = dtype_ == "float32" ? torch::kFloat32 : dtype_ == "bfloat16" ? torch::kBFloat16 : torch::kHalf;
  const std::int64_t B = idx.numel();
  auto out = torch::empty({B, dim_}, torch::TensorOptions().dtype(type));
  const auto* base = static_cast<const char*>(map_);
  auto* dst = static_cast<char*>(out.data_ptr());
  const std::size_t row = static_cast<std::size_t>(dim_ * bytes_);
  const auto* ix = idx.data_ptr<std::int64_t>();
  for (std::int64_t b = 0; b < B; ++b) {
    if (ix[b] < 0 || ix[b] >= size_)
      throw IoError(dir_ + ": image index " + std::to_string(ix[b]) + " outside the cache's " +
                    std::to_string(size_) + " images");
    std::memcpy(dst + b * row, base + static_cast<std::size_t>(view * size_ + ix[b]) * row, row);
  }
  if (type == torch::kFloat32) return out;
  const auto wide = out.to(torch::kFloat32);
  return wide / wide.norm(2, 1, true).clamp_min(1e-12);
}

}  // namespace lgd::engine
