// lgd eval: features of a (student, dataset, view, augmentation pass) extracted once and kept
// in memory and in <out>/cache as safetensors, keyed by a digest of the student's weights and
// everything else the features depend on.
#include <cstring>
#include <filesystem>

#include "evaluation.h"
#include "lgd/core/digest.h"
#include "lgd/core/errors.h"
#include "lgd/core/file_io.h"
#include "lgd/core/logging.h"
#include "lgd/core/progress.h"
#include "lgd/data/transforms.h"
#include "lgd/export/safetensors.h"
#include "lgd/models/state_dict.h"

namespace lgd::eval {
namespace fs = std::filesystem;

std::uint64_t state_digest(const torch::nn::Module& module) {
  Digest d;
  for (const auto& [name, tensor] : models::state_dict(module)) {
    d.text(name);
    const auto t = tensor.detach().to(torch::kCPU).contiguous();
    for (auto s : t.sizes()) d.value(s);
    d.words(t.data_ptr(), static_cast<std::size_t>(t.numel()) * t.element_size());
  }
  return d.get();
}

std::string hex(std::uint64_t v) { return hex64(v); }

std::uint64_t text_digest(const std::string& text) { return Digest().text(text).get(); }

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

namespace {
std::string joined(const std::vector<double>& v) {
  std::string out;
  for (double x : v) out += (out.empty() ? "" : ",") + fmt::format("{}", x);
  return out;
}
}  // namespace

// Features of `ds` under `view` (pass p draws its augmentation from epoch p), from the
// cache when present.
const Features& Evaluation::get_features(const std::string& which, std::shared_ptr<const data::Dataset> ds,
                             const data::DatasetOptions& dopts, const std::string& view, std::int64_t pass,
                             std::string* how) {
  const std::string key = fmt::format(
      "lgd-features/1 student={} arch={} data={}:{}:{} subset={} n={} view={} pass={} size={} mean={} std={}",
      hex(digest), arch, dopts.format, fs::absolute(dopts.root).string(), dopts.split,
      which == "train" ? subset_key : "all", ds->size(), view, pass, image_size, joined(mean), joined(std));
  if (auto it = features.find(key); it != features.end()) {
    if (how) *how = "reused";
    return it->second;
  }
  const auto file = fs::path(o.out) / "cache" / ("features-" + hex(text_digest(key)) + ".safetensors");
  if (o.cache && fs::is_regular_file(file)) {
    try {
      auto st = exporting::parse_safetensors(read_file(file.string()), file.string());
      if (st.metadata["key"] == key && st.tensors.size() == 2) {
        spdlog::info("[eval] {} features ({} view{}) from the cache {}", which, view,
                     pass ? fmt::format(", pass {}", pass) : "", file.string());
        if (how) *how = "cached";
        return features[key] = Features{st.tensors[0].second, st.tensors[1].second};
      }
    } catch (const Error& e) {
      spdlog::warn("[eval] ignoring the unreadable cache file {}: {}", file.string(), e.what());
    }
  }
  const auto started = Clock::now();
  data::Loader ld(ds, data::Transform(data::view_defaults(view, static_cast<int>(image_size))),
                  loader(o.batch_size, false));
  ld.start_epoch(pass);
  const auto n = ds->size();
  auto x = torch::empty({n, student->feature_dim()}, torch::kFloat32);
  auto y = torch::full({n}, -1, torch::kInt64);
  Progress progress(fmt::format("[eval] {} features ({} view{})", which, view, pass ? fmt::format(" pass {}", pass) : ""),
                    ld.batches_per_epoch());
  std::int64_t done = 0;
  {
    torch::NoGradGuard no_grad;
    while (auto batch = ld.next()) {
      const auto f = student->features(input(batch->images)).to(torch::kCPU, torch::kFloat32);
      x.index_copy_(0, batch->indices, f);
      y.index_copy_(0, batch->indices, batch->labels);
      progress.update(++done);
    }
  }
  progress.finish();
  if ((y < 0).any().item<bool>())
    throw IoError(dopts.root + ": the loader did not deliver every sample of the dataset");
  const double secs = seconds_since(started);
  extraction_seconds[which + "/" + view + "/" + std::to_string(pass)] = secs;
  spdlog::info("[eval] {} features: {} x {} in {:.1f} s", which, n, x.size(1), secs);
  if (o.cache) {
    fs::create_directories(file.parent_path());
    write_file_atomic(file.string(), exporting::safetensors_bytes({{"features", x}, {"labels", y}}, {{"key", key}}));
  }
  if (how) *how = "extracted";
  return features[key] = Features{x, y};
}

const Features& Evaluation::train_features(std::string* how) {
  return get_features("train", train_set, train_opts, "eval", 0, how);
}

const Features& Evaluation::val_features(std::string* how) {
  return get_features("val", val_set, val_opts, "eval", 0, how);
}

std::string merge_how(const std::string& a, const std::string& b) {
  if (a == b) return a;
  auto extracted = [](const std::string& s) { return s.rfind("extracted", 0) == 0; };
  if (extracted(a) || extracted(b)) return "extracted (part)";
  return "cached";
}

}  // namespace lgd::eval
