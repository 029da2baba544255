// lgd eval --protocol finetune: end-to-end fine-tuning of the whole student with a new linear
// classifier on the (optionally --subset) labelled training set, scored on the evaluation set:
// the semi-supervised protocol of SEED-style papers (1% / 10% / 100% of the labels).
//
// Recipe (each number an option): a copy of the student (the protocols after it see the
// original), Linear(F, C) initialised N(0, 0.01) with zero bias; SGD with Nesterov momentum 0.9
// and weight decay --finetune-weight-decay (0) on both; learning rates --finetune-lr (backbone)
// and --finetune-head-lr (classifier), each x batch/256, cosine-decayed per step to 0 over
// --finetune-epochs, no warm-up; BatchNorm in training mode; the "linear" view
// (RandomResizedCrop + horizontal flip) for training, the "eval" view for scoring. Epoch e
// draws its batches and augmentations from (--seed, e) and seeds torch's generator (stochastic
// depth) with them, so an epoch computes the same whether or not the run was resumed.
//
// Resumable: after every epoch the student, classifier and momentum go to
// <out>/finetune/state.safetensors (written to a temporary file, then renamed), keyed by the
// student's digest, the data, the subset and the recipe. The same command run again continues
// after the last finished epoch; a finished state is scored without training.
#include <cmath>
#include <filesystem>

#include "evaluation.h"
#include "lgd/core/errors.h"
#include "lgd/core/file_io.h"
#include "lgd/core/logging.h"
#include "lgd/core/progress.h"
#include "lgd/data/transforms.h"
#include "lgd/engine/sgd.h"
#include "lgd/export/safetensors.h"
#include "lgd/models/state_dict.h"

namespace lgd::eval {
namespace fs = std::filesystem;
namespace {

constexpr double kPi = 3.14159265358979323846;

models::NamedTensors parameters_of(torch::nn::Module& module) {
  models::NamedTensors out;
  for (const auto& p : module.named_parameters()) out.emplace_back(p.key(), p.value());
  return out;
}

models::NamedTensors prefixed(const models::NamedTensors& tensors, const std::string& prefix) {
  models::NamedTensors out;
  for (const auto& [k, v] : tensors) out.emplace_back(prefix + k, v.detach().to(torch::kCPU).contiguous());
  return out;
}

// The tensors under `prefix` (prefix removed).
models::NamedTensors under(const models::NamedTensors& tensors, const std::string& prefix) {
  models::NamedTensors out;
  for (const auto& [k, v] : tensors)
    if (k.compare(0, prefix.size(), prefix) == 0) out.emplace_back(k.substr(prefix.size()), v);
  return out;
}

std::vector<double> parse_list(const std::string& text) {
  std::vector<double> out;
  std::size_t at = 0;
  while (at < text.size()) {
    const auto comma = text.find(',', at);
    out.push_back(std::stod(text.substr(at, comma - at)));
    at = comma == std::string::npos ? text.size() : comma + 1;
  }
  return out;
}

// One fine-tuning run: the network, its classifier and optimisers, what it has done so far,
// and where its state lives.
struct FinetuneRun {
  std::shared_ptr<models::Student> net;
  torch::Tensor weight, bias;
  std::unique_ptr<engine::Sgd> backbone_sgd, head_sgd;
  std::int64_t epochs_done = 0;
  std::vector<double> losses;
  std::string key;  // what the state belongs to
  fs::path state_file;

  // The state after `epochs_done` epochs, written to a temporary file and renamed.
  void save() const {
    models::NamedTensors state = prefixed(models::state_dict(*net), "student.");
    for (auto& e : prefixed({{"weight", weight}, {"bias", bias}}, "classifier.")) state.push_back(e);
    for (auto& e : prefixed(backbone_sgd->state(), "momentum.student.")) state.push_back(e);
    for (auto& e : prefixed(head_sgd->state(), "momentum.classifier.")) state.push_back(e);
    std::string text;
    for (double l : losses) text += (text.empty() ? "" : ",") + fmt::format("{}", l);
    fs::create_directories(state_file.parent_path());
    write_file_atomic(state_file.string(),
                      exporting::safetensors_bytes(state, {{"key", key},
                                                           {"epochs_done", std::to_string(epochs_done)},
                                                           {"loss_per_epoch", text}}));
  }

  // Continues from the state file when it belongs to this run (false: another run's state,
  // left alone). Throws on a state that does not read, possibly half applied.
  bool resume(std::int64_t epochs) {
    auto st = exporting::parse_safetensors(read_file(state_file.string()), state_file.string());
    if (st.metadata["key"] != key) {
      spdlog::warn("[eval] finetune: {} belongs to another student, dataset or recipe; starting afresh",
                   state_file.string());
      return false;
    }
    models::load_state_dict(*net, under(st.tensors, "student."), state_file.string());
    const auto head = under(st.tensors, "classifier.");
    if (head.size() != 2 || head[0].second.sizes() != weight.sizes() || head[1].second.sizes() != bias.sizes())
      throw IoError(state_file.string() + ": classifier.weight / classifier.bias missing or of another shape");
    torch::NoGradGuard no_grad;
    weight.copy_(head[0].second);
    bias.copy_(head[1].second);
    backbone_sgd->load_state(under(st.tensors, "momentum.student."), state_file.string());
    head_sgd->load_state(under(st.tensors, "momentum.classifier."), state_file.string());
    losses = parse_list(st.metadata["loss_per_epoch"]);
    epochs_done = std::stoll(st.metadata["epochs_done"]);
    if (epochs_done < 0 || epochs_done > epochs || static_cast<std::int64_t>(losses.size()) != epochs_done)
      throw IoError(state_file.string() + ": epochs_done and loss_per_epoch disagree");
    spdlog::info("[eval] finetune: resuming after epoch {} of {} ({})", epochs_done, epochs, state_file.string());
    return true;
  }
};

// A copy of the student, a new classifier and their optimisers.
FinetuneRun fresh_finetune(Evaluation& ev, std::int64_t batch) {
  const auto& o = ev.o;
  FinetuneRun run;
  run.key = fmt::format(
      "lgd-finetune/1 student={} arch={} data={}:{}:{} subset={} size={} mean={},{},{} std={},{},{} seed={} "
      "epochs={} batch={} lr={} head_lr={} wd={}",
      hex(ev.digest), ev.arch, ev.train_opts.format, fs::absolute(ev.train_opts.root).string(), ev.train_opts.split,
      ev.subset_key, ev.image_size, ev.mean[0], ev.mean[1], ev.mean[2], ev.std[0], ev.std[1], ev.std[2], o.seed,
      o.finetune_epochs, batch, o.finetune_lr, o.finetune_head_lr, o.finetune_weight_decay);
  run.state_file = fs::path(o.out) / "finetune" / "state.safetensors";
  run.net = models::create_student(ev.arch, {0});
  models::load_state_dict(*run.net, prefixed(models::state_dict(*ev.student), ""), "the student to fine-tune");
  run.net->to(ev.device);
  if (ev.channels_last) models::to_channels_last(*run.net);
  auto gen = at::detail::createCPUGenerator(static_cast<std::uint64_t>(o.seed) + 11);
  run.weight = at::normal(0.0, 0.01, {ev.num_classes(), ev.student->feature_dim()}, gen).to(ev.device);
  run.bias = torch::zeros({ev.num_classes()}, torch::TensorOptions().device(ev.device));
  run.weight.set_requires_grad(true);
  run.bias.set_requires_grad(true);
  engine::SgdOptions so;
  so.momentum = 0.9;
  so.nesterov = true;
  so.weight_decay = o.finetune_weight_decay;
  run.backbone_sgd = std::make_unique<engine::Sgd>(parameters_of(*run.net), so);
  run.head_sgd = std::make_unique<engine::Sgd>(models::NamedTensors{{"weight", run.weight}, {"bias", run.bias}}, so);
  return run;
}

// A fresh run, resumed where a state of the same run says so. A state that does not read costs
// the epochs it held, not the evaluation: the run starts afresh.
FinetuneRun start_finetune(Evaluation& ev, std::int64_t batch) {
  FinetuneRun run = fresh_finetune(ev, batch);
  if (!fs::is_regular_file(run.state_file)) return run;
  try {
    run.resume(ev.o.finetune_epochs);
  } catch (const std::exception& e) {
    spdlog::warn("[eval] finetune: ignoring the unreadable state {}: {}", run.state_file.string(), e.what());
    run = fresh_finetune(ev, batch);
  }
  return run;
}

// One epoch over the loader; returns the mean loss.
double finetune_epoch(Evaluation& ev, FinetuneRun& run, data::Loader& ld, std::int64_t epoch,
                             double lr_backbone, double lr_head, Progress& progress, std::int64_t& done) {
  const auto& o = ev.o;
  const std::int64_t steps = ld.batches_per_epoch();
  const double total = static_cast<double>(steps * o.finetune_epochs);
  run.net->train();
  ld.start_epoch(epoch);
  torch::manual_seed(static_cast<std::uint64_t>(o.seed) * 100003u + static_cast<std::uint64_t>(epoch));
  auto sum = torch::zeros({}, torch::TensorOptions().device(ev.device));
  std::int64_t seen = 0, step = epoch * steps;
  while (auto b = ld.next()) {
    const double cosine = 0.5 * (1.0 + std::cos(kPi * static_cast<double>(step++) / total));
    const auto y = b->labels.to(ev.device);
    const auto f = run.net->features(ev.input(b->images)).to(torch::kFloat32);
    auto loss = torch::nn::functional::cross_entropy(f.matmul(run.weight.t()) + run.bias, y);
    loss.backward();
    run.backbone_sgd->step(lr_backbone * cosine);
    run.head_sgd->step(lr_head * cosine);
    run.backbone_sgd->zero_grad();
    run.head_sgd->zero_grad();
    sum += loss.detach() * static_cast<double>(y.size(0));
    seen += y.size(0);
    progress.update(++done);
  }
  const double mean_loss = sum.item<double>() / static_cast<double>(std::max<std::int64_t>(seen, 1));
  if (!std::isfinite(mean_loss))
    throw Error("lgd eval: the fine-tuning loss became " + fmt::format("{}", mean_loss) + " in epoch " +
                std::to_string(epoch + 1) + " (lower --finetune-lr / --finetune-head-lr)");
  return mean_loss;
}

// The fine-tuned network's scores on the evaluation set (eval view, BatchNorm in eval mode).
torch::Tensor finetune_scores(Evaluation& ev, FinetuneRun& run, torch::Tensor& labels) {
  run.net->eval();
  data::Loader vl(ev.val_set, data::Transform(data::view_defaults("eval", static_cast<int>(ev.image_size))),
                  ev.loader(ev.o.batch_size, false));
  vl.start_epoch(0);
  auto scores = torch::empty({ev.val_set->size(), ev.num_classes()}, torch::kFloat32);
  labels = torch::full({ev.val_set->size()}, -1, torch::kInt64);
  torch::NoGradGuard no_grad;
  Progress progress("[eval] finetune: scoring", vl.batches_per_epoch());
  std::int64_t n = 0;
  while (auto b = vl.next()) {
    const auto f = run.net->features(ev.input(b->images)).to(torch::kFloat32);
    scores.index_copy_(0, b->indices, (f.matmul(run.weight.t()) + run.bias).to(torch::kCPU));
    labels.index_copy_(0, b->indices, b->labels);
    progress.update(++n);
  }
  progress.finish();
  return scores;
}

}  // namespace

ProtocolResult Evaluation::finetune() {
  ProtocolResult r;
  r.protocol = "finetune";
  r.features = "per epoch";
  if (train_set->size() < 2)
    throw UsageError("lgd eval: finetune needs at least 2 training images (BatchNorm in training mode); the "
                     "training set" + std::string(o.subset_percent > 0 ? " subset" : "") + " has " +
                     std::to_string(train_set->size()));
  const std::int64_t batch = std::min(o.finetune_batch, train_set->size());
  const double lr_backbone = o.finetune_lr * static_cast<double>(batch) / 256.0;
  const double lr_head = o.finetune_head_lr * static_cast<double>(batch) / 256.0;
  FinetuneRun run = start_finetune(*this, batch);
  const std::int64_t resumed_from = run.epochs_done;

  auto lo = loader(batch, true);
  lo.drop_last = train_set->size() > batch;  // no batch of one through BatchNorm
  data::Loader ld(train_set, data::Transform(data::view_defaults("linear", static_cast<int>(image_size))), lo);
  Progress progress("[eval] finetune", ld.batches_per_epoch() * (o.finetune_epochs - run.epochs_done));
  std::int64_t done = 0;
  for (std::int64_t epoch = run.epochs_done; epoch < o.finetune_epochs; ++epoch) {
    const double loss = finetune_epoch(*this, run, ld, epoch, lr_backbone, lr_head, progress, done);
    run.losses.push_back(loss);
    run.epochs_done = epoch + 1;
    run.save();
    progress.finish();
    spdlog::info("[eval] finetune epoch {}/{}: loss {:.4f}", epoch + 1, o.finetune_epochs, loss);
  }
  progress.finish();

  torch::Tensor labels;
  const torch::Tensor scores = finetune_scores(*this, run, labels);
  finish(r, scores, labels);
  r.details["epochs"] = o.finetune_epochs;
  r.details["batch"] = batch;
  r.details["lr_backbone"] = lr_backbone;
  r.details["lr_head"] = lr_head;
  r.details["schedule"] = "cosine per step to 0, no warm-up";
  r.details["optimizer"] = "SGD, Nesterov momentum 0.9";
  r.details["weight_decay"] = o.finetune_weight_decay;
  r.details["augmentation"] = "RandomResizedCrop + horizontal flip (the linear view)";
  r.details["loss_per_epoch"] = run.losses;
  r.details["resumed_after_epoch"] = resumed_from;
  keep_classifier(*run.net, run.weight, run.bias, "finetune");
  return r;
}

}  // namespace lgd::eval
