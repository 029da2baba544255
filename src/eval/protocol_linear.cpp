// lgd eval --protocol linear (MoCo's linear probe, trained on augmented views with the
// backbone frozen) and linear-fast (the same classifier by L-BFGS on cached features), and the
// classifier network --export-classifier writes.
#include <cmath>

#include "evaluation.h"
#include "lgd/core/errors.h"
#include "lgd/core/file_io.h"
#include "lgd/core/logging.h"
#include "lgd/core/progress.h"
#include "lgd/core/version.h"
#include "lgd/data/transforms.h"
#include "lgd/engine/sgd.h"
#include "lgd/eval/probe.h"
#include "lgd/models/architectures.h"
#include "lgd/models/state_dict.h"

namespace lgd::eval {

ProtocolResult Evaluation::linear_fast() {
  ProtocolResult r;
  r.protocol = "linear-fast";
  std::string h1, h2;
  const auto& tr = train_features(&h1);
  std::vector<torch::Tensor> xs{tr.x}, ys{tr.labels};
  for (std::int64_t p = 1; p <= o.fast_passes; ++p) {
    std::string h;
    const auto& aug = get_features("train", train_set, train_opts, "linear", p, &h);
    h1 = merge_how(h1, h);
    xs.push_back(aug.x);
    ys.push_back(aug.labels);
  }
  const auto& va = val_features(&h2);
  r.features = merge_how(h1, h2);
  FastLinearOptions fo;
  fo.weight_decays = o.fast_weight_decays;
  fo.max_iter = o.fast_max_iter;
  fo.seed = static_cast<std::uint64_t>(o.seed);
  fo.views_per_sample = 1 + o.fast_passes;
  const auto started = Clock::now();
  spdlog::info("[eval] linear-fast: L-BFGS on {} x {} features, weight decay from {} candidates",
               tr.x.size(0) * static_cast<std::int64_t>(xs.size()), tr.x.size(1), fo.weight_decays.size());
  const auto fit = fit_linear_fast(torch::cat(xs).to(device), torch::cat(ys).to(device), num_classes(), fo);
  r.details["fit_seconds"] = seconds_since(started);
  r.details["weight_decay"] = fit.weight_decay;
  r.details["weight_decay_search"] = nlohmann::ordered_json::array();
  for (const auto& [decay, accuracy] : fit.search) r.details["weight_decay_search"].push_back({decay, accuracy});
  r.details["augmented_passes"] = o.fast_passes;
  spdlog::info("[eval] linear-fast: weight decay {} chosen on the held-out 10%", fit.weight_decay);
  torch::Tensor scores;
  {
    torch::NoGradGuard no_grad;
    scores = va.x.to(device).matmul(fit.weight.t()) + fit.bias;
  }
  finish(r, scores, va.labels);
  if (classifier_protocol.empty()) keep_classifier(*student, fit.weight, fit.bias, "linear-fast");
  return r;
}

ProtocolResult Evaluation::linear() {
  ProtocolResult r;
  r.protocol = "linear";
  r.features = "per epoch";
  const auto C = num_classes();
  const auto F = student->feature_dim();
  auto gen = at::detail::createCPUGenerator(static_cast<std::uint64_t>(o.seed) + 7);
  auto w = at::normal(0.0, 0.01, {C, F}, gen).to(device);
  auto b = torch::zeros({C}, torch::TensorOptions().device(device));
  w.set_requires_grad(true);
  b.set_requires_grad(true);
  engine::SgdOptions so;
  so.momentum = 0.9;
  so.weight_decay = o.linear_weight_decay;
  engine::Sgd sgd({{"weight", w}, {"bias", b}}, so);
  const double lr0 = o.linear_lr * static_cast<double>(o.linear_batch) / 256.0;
  data::Loader ld(train_set, data::Transform(data::view_defaults("linear", static_cast<int>(image_size))),
                  loader(o.linear_batch, true));
  const auto steps = ld.batches_per_epoch();
  Progress progress("[eval] linear probe", steps * o.linear_epochs);
  std::vector<double> lrs, losses;
  std::int64_t done = 0;
  const auto before = digest;
  for (std::int64_t epoch = 0; epoch < o.linear_epochs; ++epoch) {
    const double lr = step_lr(lr0, epoch, o.linear_milestones);
    lrs.push_back(lr);
    ld.start_epoch(epoch);
    auto sum = torch::zeros({}, torch::TensorOptions().device(device));
    std::int64_t seen = 0;
    while (auto batch = ld.next()) {
      torch::Tensor f;
      {
        torch::NoGradGuard no_grad;
        f = student->features(input(batch->images)).to(torch::kFloat32);
      }
      const auto y = batch->labels.to(device);
      auto loss = torch::nn::functional::cross_entropy(f.matmul(w.t()) + b, y);
      loss.backward();
      sgd.step(lr);
      sgd.zero_grad();
      sum += loss.detach() * static_cast<double>(y.size(0));
      seen += y.size(0);
      progress.update(++done);
    }
    const double mean_loss = sum.item<double>() / static_cast<double>(std::max<std::int64_t>(seen, 1));
    losses.push_back(mean_loss);
    if (!std::isfinite(mean_loss))
      throw Error("lgd eval: the linear probe's loss became " + fmt::format("{}", mean_loss) + " in epoch " +
                  std::to_string(epoch + 1) + " (lower --linear-lr)");
    if ((epoch + 1) % 10 == 0 || epoch + 1 == o.linear_epochs) {
      progress.finish();
      spdlog::info("[eval] linear probe epoch {}/{}: loss {:.4f}, lr {:.4g}", epoch + 1, o.linear_epochs,
                   mean_loss, lr);
    }
  }
  progress.finish();
  const bool unchanged = state_digest(*student) == before;
  if (!unchanged) throw Error("lgd eval: the backbone changed during the linear probe (it must stay frozen)");
  const auto& va = val_features(nullptr);
  torch::Tensor scores;
  {
    torch::NoGradGuard no_grad;
    scores = va.x.to(device).matmul(w.detach().t()) + b.detach();
  }
  finish(r, scores, va.labels);
  r.details["epochs"] = o.linear_epochs;
  r.details["batch"] = o.linear_batch;
  r.details["lr_per_epoch"] = lrs;
  r.details["loss_per_epoch"] = losses;
  r.details["milestones"] = o.linear_milestones;
  r.details["backbone_unchanged"] = unchanged;
  keep_classifier(*student, w.detach(), b.detach(), "linear");
  return r;
}

void Evaluation::keep_classifier(const models::Student& backbone, const torch::Tensor& weight,
                                 const torch::Tensor& bias, const std::string& protocol) {
  const std::string key = models::architecture(arch).family == "resnet" ? "fc." : "classifier.1.";
  classifier_network.clear();
  for (const auto& [k, v] : models::state_dict(backbone))
    classifier_network.emplace_back(k, v.detach().to(torch::kCPU).contiguous());
  classifier_network.emplace_back(key + "weight", weight.detach().to(torch::kCPU).contiguous());
  classifier_network.emplace_back(key + "bias", bias.detach().to(torch::kCPU).contiguous());
  classifier_protocol = protocol;
}

void Evaluation::export_classifier() {
  if (classifier_network.empty())
    throw UsageError("lgd eval: --export-classifier needs a linear probe or fine-tuning (--protocol linear, "
                     "linear-fast or finetune)");
  auto cls = models::create_student(arch, {num_classes()});
  models::load_state_dict(*cls, classifier_network, "the " + classifier_protocol + " classifier");
  const bool st = o.export_classifier.size() > 12 &&
                  o.export_classifier.compare(o.export_classifier.size() - 12, 12, ".safetensors") == 0;
  exporting::write_weights(o.export_classifier, exporting::export_tensors(*cls, nullptr),
                           st ? exporting::WeightsFormat::kSafetensors : exporting::WeightsFormat::kTorchvision,
                           {{"format", "pt"},
                            {"arch", arch},
                            {"num_classes", std::to_string(num_classes())},
                            {"classifier", classifier_protocol},
                            {"lgd_version", version()}});
  spdlog::info("[eval] wrote {}: {} with the {} classifier ({} classes, torchvision keys)", o.export_classifier,
               arch, classifier_protocol, num_classes());
}

}  // namespace lgd::eval
