// The trainer's checkpoints: what they hold, the cross-rank fingerprint check, writing and
// resuming.
#include "trainer_state.h"

#include <set>

#include "lgd/core/logging.h"
#include "lgd/models/state_dict.h"

namespace lgd::engine::detail {

std::map<std::string, std::string> TrainerState::identity() const {
  return {{"arch", cfg.student.arch},
          {"method", cfg.method.name},
          {"embed_dim", std::to_string(teacher->manifest().embed_dim)},
          {"num_classes", std::to_string(tsb.weights.size(1))},
          {"image_size", std::to_string(cfg.data.image_size)},
          {"batch_size", std::to_string(cfg.data.batch_size)},
          {"accumulate", std::to_string(cfg.optim.accumulate)},
          {"world_size", std::to_string(collective->world_size())},
          {"seed", std::to_string(cfg.run.seed)},
          {"data_seed", std::to_string(config::data_seed(cfg))},
          // The epoch -> view mapping of the loader (0: every epoch its own views).
          {"cache_views", std::to_string(cache ? cache_views : 0)}};
}

Checkpoint TrainerState::make_checkpoint() const {
  Checkpoint c;
  for (auto& [k, v] : models::state_dict(*student)) c.tensors.emplace_back("student." + k, v);
  for (auto& [k, v] : models::state_dict(*head)) c.tensors.emplace_back("head." + k, v);
  for (auto& [k, v] : optimizer->state()) c.tensors.emplace_back("optim." + k, v);
  for (auto& [k, v] : method->state()) c.tensors.emplace_back("method." + k, v);
  if (scaler) {
    c.tensors.emplace_back("amp.scale", scaler->scale);
    c.tensors.emplace_back("amp.growth", scaler->growth);
  }
  c.meta = identity();
  c.meta["epoch"] = std::to_string(epoch);
  c.meta["step_in_epoch"] = std::to_string(step_in_epoch);
  c.meta["global_step"] = std::to_string(global_step);
  c.meta["nonfinite_steps"] = std::to_string(nonfinite_total);
  c.meta["teacher"] = teacher->manifest().name;
  // The input normalisation the student was trained with (lgd eval uses it).
  auto joined = [](const std::vector<double>& v) {
    std::string out;
    for (double x : v) out += (out.empty() ? "" : ",") + fmt::format("{}", x);
    return out;
  };
  c.meta["image_mean"] = joined(teacher->manifest().image.mean);
  c.meta["image_std"] = joined(teacher->manifest().image.std);
  c.meta["config"] = config::to_yaml(cfg);
  c.meta["rng"] = "global generator reseeded from (run.seed, step); data draws from (data.seed, epoch, index)";
  return c;
}

torch::Tensor TrainerState::fingerprint() const {
  auto stats = [](const std::vector<torch::Tensor>& ts) {
    double sum = 0, sq = 0, weighted = 0;
    for (const auto& t : ts) {
      if (!t.defined() || !t.is_floating_point()) continue;
      const auto x = t.detach().to(torch::kCPU, torch::kFloat64).contiguous().view({-1});
      const auto w = torch::linspace(1.0, 2.0, x.numel(), torch::kFloat64);
      sum += x.sum().item<double>();
      sq += x.square().sum().item<double>();
      weighted += (x * w).sum().item<double>();
    }
    return std::vector<double>{sum, sq, weighted};
  };
  std::vector<torch::Tensor> params, state;
  for (const auto& p : student->parameters()) params.push_back(p);
  for (const auto& p : head->parameters()) params.push_back(p);
  for (const auto& [k, v] : method->state()) state.push_back(v);
  auto a = stats(params), b = stats(state);
  a.insert(a.end(), b.begin(), b.end());
  return torch::tensor(a, torch::kFloat64);
}

void TrainerState::save(bool periodic) {
  check_nonfinite();  // deferred checks: never a checkpoint past a streak that stops the run
  Checkpoint c = make_checkpoint();
  torch::Tensor finite_t = torch::ones({}, torch::kBool);
  for (const auto& [k, v] : c.tensors)
    if (v.is_floating_point()) finite_t = finite_t.logical_and(torch::isfinite(v).all().cpu());
  bool finite = finite_t.item<bool>();
  if (multi()) {
    auto mine = torch::cat({torch::tensor({finite ? 1.0 : 0.0}, torch::kFloat64), fingerprint()}).unsqueeze(0);
    const auto all = collective->all_gather_cat(mine).to(torch::kCPU);  // [world, 7]
    std::string text;
    for (int r = 0; r < launch.world_size; ++r) {
      text += (r ? "; rank " : "rank ") + std::to_string(r) + ":";
      for (std::int64_t j = 1; j < all.size(1); ++j) text += fmt::format(" {:.17g}", all[r][j].item<double>());
      if (all[r][0].item<double>() == 0) finite = false;
    }
    c.meta["rank_fingerprints"] = text;
    for (int r = 1; r < launch.world_size; ++r) {
      if (all[r].slice(0, 1).equal(all[0].slice(0, 1))) continue;
      const bool params_differ = !all[r].slice(0, 1, 4).equal(all[0].slice(0, 1, 4));
      throw Error("dist: ranks diverged at step " + std::to_string(global_step) + ": rank " + std::to_string(r) +
                  "'s " + (params_differ ? "parameters" : "method state (VSB / queue)") +
                  " differ from rank 0's (fingerprints " + text + ")");
    }
  }
  if (!finite)
    throw Error("refusing to write a checkpoint at step " + std::to_string(global_step) +
                ": the model or the bank holds NaN or Inf (the last checkpoint in " +
                checkpoints->dir() + " is intact)");
  if (rank() == 0) {
    const auto path = checkpoints->save(c, global_step, periodic);
    spdlog::debug("[train] checkpoint {}", path);
  }
  collective->barrier();
}

void TrainerState::resume_from(const std::string& path) {
  const Checkpoint c = load_checkpoint(path);
  // Checkpoints written before data.seed and teacher.cache existed mean run.seed and no cache.
  const std::map<std::string, std::string> implied{{"data_seed", c.meta.count("seed") ? c.meta.at("seed") : ""},
                                                   {"cache_views", "0"}};
  for (const auto& [key, value] : identity()) {
    std::string had;
    if (const auto it = c.meta.find(key); it != c.meta.end())
      had = it->second;
    else if (const auto old = implied.find(key); old != implied.end())
      had = old->second;
    else
      throw IoError(path + ": checkpoint has no '" + key + "' entry");
    if (had != value && key == "cache_views")
      throw ConfigError(path + ": checkpoint was made reading " + (had == "0" ? "no teacher cache" : had + " cached views") +
                        " (epoch e took view e mod K), but this run reads " +
                        (cache ? std::to_string(cache_views) + " of " + cache->dir() : std::string("none")) +
                        " (cache_views; a resumed run cannot change the epoch's views: set teacher.cache_views, or a "
                        "new run.name to start over)");
    if (had != value)
      throw ConfigError(path + ": checkpoint was made with " + key + " = " + had +
                        ", the config gives " + value +
                        " (a resumed run cannot change this; use a new run.name to start over)");
  }
  std::set<std::string> known{"student.", "head.", "optim.", "method.", "amp."};
  for (const auto& [k, v] : c.tensors) {
    const auto dot = k.find('.');
    if (dot == std::string::npos || !known.count(k.substr(0, dot + 1)))
      throw IoError(path + ": unexpected tensor '" + k + "' in checkpoint");
  }
  models::load_state_dict(*student, c.section("student."), path + " (student.*)");
  models::load_state_dict(*head, c.section("head."), path + " (head.*)");
  optimizer->load_state(c.section("optim."), path);
  std::map<std::string, torch::Tensor> ms;
  for (auto& [k, v] : c.section("method.")) ms[k] = v;
  try {
    method->load_state(ms);
  } catch (const Error& e) {
    throw IoError(path + ": " + e.what());
  }
  const auto amp = c.section("amp.");
  if (scaler) {
    if (amp.size() == 2) {
      for (auto& [k, v] : amp) (k == "scale" ? scaler->scale : scaler->growth).copy_(v);
    } else {
      spdlog::warn("[train] {} has no fp16 loss scale; starting at 65536", path);
    }
  }
  epoch = c.integer("epoch", path);
  step_in_epoch = c.integer("step_in_epoch", path);
  global_step = c.integer("global_step", path);
  nonfinite_total = c.integer("nonfinite_steps", path);
  if (step_in_epoch > steps_per_epoch || global_step != epoch * steps_per_epoch + step_in_epoch)
    throw ConfigError(path + ": checkpoint position (epoch " + std::to_string(epoch) + ", step " +
                      std::to_string(step_in_epoch) + ") does not fit " +
                      std::to_string(steps_per_epoch) +
                      " steps per epoch (the dataset or data.batch_size changed)");
  spdlog::info("[train] resuming from {} at epoch {}, step {} of {} (global step {})", path,
               epoch + 1, step_in_epoch, steps_per_epoch, global_step);
}

}  // namespace lgd::engine::detail
