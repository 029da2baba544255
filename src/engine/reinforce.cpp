// `lgd reinforce`: the teacher's embeddings of K training views of every image, written
// once into a cache folder (embedding_cache.h) that `lgd train` reads instead of running
// the teacher. Each process takes its share of every view's sample order through the
// training loader (so view k of image i is the one `lgd train` draws at epoch k), writes its
// rows in place into one preallocated file, and records how far it got; the same command
// continues from there.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "lgd/core/errors.h"
#include "lgd/core/file_io.h"
#include "lgd/core/logging.h"
#include "lgd/core/progress.h"
#include "lgd/core/version.h"
#include "lgd/data/pipeline.h"
#include "lgd/engine/embedding_cache.h"
#include "stop_signals.h"
#include "trainer_state.h"

namespace lgd::engine {
namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace {

std::string gib(double bytes) { return fmt::format("{:.2f} GiB", bytes / (1024.0 * 1024.0 * 1024.0)); }

json read_json(const fs::path& path) {
  const auto bytes = read_file(path.string());
  try {
    return json::parse(bytes.begin(), bytes.end());
  } catch (const json::exception& e) {
    throw IoError(path.string() + ": not JSON (" + e.what() + "); remove the cache folder to start over");
  }
}

CacheFields fields_of(const json& j, const fs::path& path) {
  CacheFields out;
  try {
    for (const auto& [k, v] : j.at("fields").items()) out.emplace_back(k, v.get<std::string>());
  } catch (const json::exception& e) {
    throw IoError(path.string() + ": no cache fields (" + e.what() + ")");
  }
  return out;
}

// What the cache being written is: its fields and how it is laid out and shared out.
json plan_of(const CacheFields& fields, std::int64_t views, std::int64_t size, std::int64_t dim,
             const std::string& dtype, std::int64_t world) {
  json j;
  j["fields"] = json::object();
  for (const auto& [k, v] : fields) j["fields"][k] = v;
  j["views"] = views;
  j["size"] = size;
  j["embed_dim"] = dim;
  j["dtype"] = dtype;
  j["layout"] = "embeddings.bin: [views, size, embed_dim] row-major, little-endian " + dtype;
  j["processes"] = world;
  return j;
}

// The first of views, dtype and processes where `have` (a plan on disk) differs from `want`.
std::string plan_difference(const json& have, const json& want) {
  for (const char* key : {"views", "dtype", "processes"})
    if (have.value(key, json()) != want[key])
      return std::string(key) + ": " + have.value(key, json()).dump() + " there, " + want[key].dump() + " now";
  return {};
}

struct Position {
  std::int64_t view = 0, batch = 0;
};

class ProgressFile {
 public:
  ProgressFile(const fs::path& dir, int rank, int world)
      : path_(dir / fmt::format("progress.{}-of-{}.json", rank, world)) {}
  Position read() const {
    std::error_code ec;
    if (!fs::exists(path_, ec)) return {};
    const auto j = read_json(path_);
    return {j.value("view", std::int64_t{0}), j.value("batch", std::int64_t{0})};
  }
  void write(Position p) const {
    json j;
    j["view"] = p.view;
    j["batch"] = p.batch;
    write_file_atomic(path_.string(), j.dump() + "\n");
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Refuses, before anything is written, when the file system cannot hold what is left to
// allocate of `file` (`total` bytes in all).
void check_space(const fs::path& dir, const fs::path& file, std::uint64_t total, const std::string& what) {
  struct statvfs vfs {};
  if (::statvfs(dir.c_str(), &vfs) != 0) throw IoError(dir.string() + ": cannot stat the file system");
  std::uint64_t have = 0;
  struct stat st {};
  if (::stat(file.c_str(), &st) == 0) have = static_cast<std::uint64_t>(st.st_blocks) * 512;
  const std::uint64_t free_bytes = static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  const std::uint64_t need = total > have ? total - have : 0;
  if (need > free_bytes)
    throw IoError(dir.string() + ": the cache needs " + gib(static_cast<double>(total)) + " (" + what + "), " +
                  gib(static_cast<double>(need)) + " more than is written, and the file system has " +
                  gib(static_cast<double>(free_bytes)) + " free (choose another --out, fewer --views or --dtype float16)");
}

class RowFile {
 public:
  RowFile(const fs::path& path, bool create) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
    if (fd_ < 0) throw IoError(path.string() + ": cannot open (" + std::strerror(errno) + ")");
  }
  ~RowFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  RowFile(const RowFile&) = delete;
  RowFile& operator=(const RowFile&) = delete;
  void allocate(std::uint64_t bytes) {
    const int err = ::posix_fallocate(fd_, 0, static_cast<off_t>(bytes));
    if (err != 0) throw IoError(path_.string() + ": cannot allocate " + gib(static_cast<double>(bytes)) + " (" + std::strerror(err) + ")");
  }
  void write(const void* data, std::size_t n, std::uint64_t offset) {
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
      const auto done = ::pwrite(fd_, p, n, static_cast<off_t>(offset));
      if (done < 0 && errno == EINTR) continue;
      if (done <= 0) throw IoError(path_.string() + ": write failed (" + std::strerror(errno) + ")");
      p += done;
      n -= static_cast<std::size_t>(done);
      offset += static_cast<std::uint64_t>(done);
    }
  }
  void sync() {
    if (::fdatasync(fd_) != 0) throw IoError(path_.string() + ": fdatasync failed (" + std::strerror(errno) + ")");
  }

 private:
  fs::path path_;
  int fd_ = -1;
};

torch::ScalarType scalar_type(const std::string& dtype) {
  return dtype == "float32" ? torch::kFloat32 : dtype == "bfloat16" ? torch::kBFloat16 : torch::kHalf;
}

}  // namespace

namespace detail {

// One process of `lgd reinforce`.
class Reinforcer {
 public:
  explicit Reinforcer(const ReinforceArgs& args) : args_(args) {
    m_.config_path = args.config;
    m_.loaded = config::load_run_config(args.config, args.overrides);
    if (args.views < 1) throw UsageError("--views: expected at least 1, got " + std::to_string(args.views));
    bytes_ = cache_dtype_bytes(args.dtype, "--dtype");
    if (args.out.empty()) throw UsageError("--out: expected the cache folder to write");
    m_.require_key("teacher.bundle", m_.cfg.teacher.bundle, "a teacher bundle directory");
    m_.require_key("data.root", m_.cfg.data.root, "the training set's location");
    m_.setup_launch();
    m_.setup_device();
    m_.setup_process_group();
    m_.setup_teacher();
    m_.open_dataset();
    m_.view = data::view_options(m_.cfg.data);
    m_.view.photometric_on_device =
        m_.view.view == data::View::kMocoV2 && data::photometric_on_device(m_.cfg.data, m_.device);
    n_ = m_.dataset->size();
    dim_ = m_.teacher->manifest().embed_dim;
    total_ = static_cast<std::uint64_t>(args.views) * static_cast<std::uint64_t>(n_) *
             static_cast<std::uint64_t>(dim_) * static_cast<std::uint64_t>(bytes_);
    plan_ = plan_of(cache_fields(m_.cfg, *m_.teacher, *m_.dataset, m_.view.photometric_on_device), args.views, n_,
                    dim_, args.dtype, m_.collective->world_size());
  }

  int run() {
    const fs::path dir(args_.out);
    fs::create_directories(dir);
    std::unique_ptr<DirectoryLock> lock;
    if (m_.rank() == 0) {
      lock = std::make_unique<DirectoryLock>(dir.string(), "the cache folder");
      remove_interrupted_writes(dir.string());
    }
    if (finished(dir)) return 0;
    const std::string what = fmt::format("{} images x {} views x {} x {} bytes", n_, args_.views, dim_, bytes_);
    if (m_.rank() == 0)
      spdlog::info("[reinforce] {} on {}: teacher {}, {} -> {} in {}", m_.cfg.data.root, m_.cuda ? "cuda" : "cpu",
                   m_.teacher->manifest().name, what, gib(static_cast<double>(total_)), dir.string());
    check_space(dir, dir / "embeddings.bin", total_, what);
    check_plan(dir);  // on every rank, so that none waits at the barrier for a refused run
    if (m_.rank() == 0) begin(dir);
    m_.collective->barrier();
    RowFile file(dir / "embeddings.bin", false);
    ProgressFile progress(dir, m_.rank(), m_.collective->world_size());
    const int sig = embed_views(file, progress);
    if (sig) return 128 + sig;
    m_.collective->barrier();
    if (m_.rank() == 0) finish(dir);
    m_.collective->barrier();
    return 0;
  }

 private:
  // A finished cache of this plan: nothing to do. A finished cache of another: refused.
  bool finished(const fs::path& dir) const {
    const auto manifest = dir / "manifest.json";
    std::error_code ec;
    if (!fs::exists(manifest, ec)) return false;
    const auto have = read_json(manifest);
    std::string diff = first_difference(fields_of(have, manifest), fields_of(plan_, manifest));
    if (diff.empty())
      for (const char* key : {"views", "dtype"})
        if (have.value(key, json()) != plan_[key])
          diff = std::string(key) + ": " + have.value(key, json()).dump() + " in the cache, " + plan_[key].dump() + " asked";
    if (!diff.empty())
      throw IoError(dir.string() + ": holds a finished cache of another run (" + diff +
                    "); choose another --out or remove the folder");
    if (m_.rank() == 0) spdlog::info("[reinforce] {} is already complete: nothing to do", dir.string());
    return true;
  }

  // A plan left by an interrupted run must be this one.
  void check_plan(const fs::path& dir) const {
    const auto plan_path = dir / "plan.json";
    std::error_code ec;
    if (!fs::exists(plan_path, ec)) return;
    const auto have = read_json(plan_path);
    std::string diff = first_difference(fields_of(have, plan_path), fields_of(plan_, plan_path));
    if (diff.empty()) diff = plan_difference(have, plan_);
    if (!diff.empty())
      throw IoError(dir.string() + ": holds an unfinished cache of another run (" + diff +
                    "); run that command again to finish it, or remove the folder to start over");
  }

  // Rank 0: the plan, and the whole file allocated before any row is written.
  void begin(const fs::path& dir) {
    const auto plan_path = dir / "plan.json";
    std::error_code ec;
    if (fs::exists(plan_path, ec))
      spdlog::info("[reinforce] continuing the unfinished cache in {}", dir.string());
    else
      write_file_atomic(plan_path.string(), plan_.dump(2) + "\n");
    RowFile(dir / "embeddings.bin", true).allocate(total_);
  }

  // This process's rows of every view, from where it stopped. Returns a stop signal, or 0.
  int embed_views(RowFile& file, const ProgressFile& progress) {
    auto lo = data::loader_options(m_.cfg, true);
    lo.drop_last = false;
    lo.even_shards = false;  // every image once over the processes
    lo.rank = m_.collective->rank();
    lo.world_size = m_.collective->world_size();
    data::Loader loader(m_.dataset, data::Transform(m_.view), lo);
    const std::int64_t per_view = loader.batches_per_epoch();
    Position at = progress.read();
    if (at.view > args_.views || (at.view < args_.views && (at.batch < 0 || at.batch > per_view)))
      throw IoError(progress.path().string() + ": a position outside the plan; remove the cache folder to start over");
    StopSignals signals;
    std::optional<Progress> shown;
    if (m_.rank() == 0) shown.emplace("[reinforce] batches", args_.views * per_view);
    const auto started = Clock::now();
    auto synced = Clock::now();
    std::int64_t images = 0;
    double teacher_s = 0;
    const auto type = scalar_type(args_.dtype);
    const std::size_t row = static_cast<std::size_t>(dim_ * bytes_);
    for (; at.view < args_.views; at = {at.view + 1, 0}) {
      loader.start_epoch(at.view, at.batch);
      while (auto batch = loader.next()) {
        const auto t0 = Clock::now();
        torch::Tensor t;
        {
          torch::NoGradGuard no_grad;
          const auto x = m_.model_input(batch->images, batch->photometric);
          t = m_.teacher->encode_images(x).to(torch::kFloat32);
          t = (t / t.norm(2, 1, true).clamp_min(1e-12)).to(torch::kCPU, type).contiguous();
        }
        teacher_s += std::chrono::duration<double>(Clock::now() - t0).count();
        const auto* rows = static_cast<const char*>(t.data_ptr());
        const auto* index = batch->sampled.data_ptr<std::int64_t>();
        for (std::int64_t b = 0; b < t.size(0); ++b)
          file.write(rows + b * row, row,
                     (static_cast<std::uint64_t>(at.view) * static_cast<std::uint64_t>(n_) +
                      static_cast<std::uint64_t>(index[b])) * row);
        images += t.size(0);
        ++at.batch;
        if (shown) shown->update(at.view * per_view + at.batch);
        const int sig = StopSignals::pending();
        if (sig || std::chrono::duration<double>(Clock::now() - synced).count() > 10.0) {
          file.sync();  // the rows before the position that says they are there
          progress.write(at);
          synced = Clock::now();
        }
        if (sig) {
          if (shown) shown->finish();
          spdlog::warn("[reinforce] {} at view {} batch {}: progress saved; run the same command to continue",
                       sig == SIGINT ? "SIGINT" : "SIGTERM", at.view, at.batch);
          return sig;
        }
      }
      file.sync();
      progress.write({at.view + 1, 0});
    }
    if (shown) shown->finish();
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    spdlog::info("[reinforce] process {}: {} images in {} ({:.1f} img/s; the teacher's forward alone {:.1f} img/s)",
                 m_.rank(), images, format_duration(seconds), images / std::max(seconds, 1e-9),
                 images / std::max(teacher_s, 1e-9));
    return 0;
  }

  // Rank 0, every process done: the manifest that makes the folder a cache.
  void finish(const fs::path& dir) {
    for (int r = 0; r < m_.collective->world_size(); ++r) {
      const auto at = ProgressFile(dir, r, m_.collective->world_size()).read();
      if (at.view != args_.views)
        throw IoError(dir.string() + ": process " + std::to_string(r) + " did not finish (view " +
                      std::to_string(at.view) + " of " + std::to_string(args_.views) + ")");
    }
    json manifest = plan_;
    manifest["lgd_version"] = version();
    manifest["written_on"] = m_.cuda ? "cuda" : "cpu";
    manifest["teacher_dtype"] = m_.autocast ? m_.cfg.train.amp : "float32";
    manifest["batch_size"] = m_.cfg.data.batch_size;
    write_file_atomic((dir / "manifest.json").string(), manifest.dump(2) + "\n");
    spdlog::info("[reinforce] done: {} ({} views of {} images); train with --set teacher.cache={}", dir.string(),
                 args_.views, n_, dir.string());
  }

  ReinforceArgs args_;
  TrainerState m_;
  std::int64_t bytes_ = 2, n_ = 0, dim_ = 0;
  std::uint64_t total_ = 0;
  json plan_;
};

}  // namespace detail

int reinforce(const ReinforceArgs& args) {
  detail::Reinforcer r(args);
  return r.run();
}

}  // namespace lgd::engine
