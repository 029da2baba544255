#include "lgd/eval/probe.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "lgd/core/errors.h"

namespace lgd::eval {
namespace {

torch::Tensor l2_normalize(const torch::Tensor& x) {
  return torch::nn::functional::normalize(x.to(torch::kFloat32),
                                          torch::nn::functional::NormalizeFuncOptions().dim(1));
}

void check_labels(const torch::Tensor& scores_or_features, const torch::Tensor& labels, const char* what) {
  if (labels.dim() != 1 || labels.size(0) != scores_or_features.size(0))
    throw UsageError(std::string(what) + ": " + std::to_string(scores_or_features.size(0)) + " rows but " +
                     std::to_string(labels.numel()) + " labels");
}

}  // namespace

Accuracy accuracy(const torch::Tensor& scores, const torch::Tensor& labels, std::int64_t num_classes) {
  check_labels(scores, labels, "accuracy");
  Accuracy a;
  a.n = scores.size(0);
  const auto y = labels.to(scores.device(), torch::kInt64);
  const auto k = std::min<std::int64_t>(5, num_classes);
  const auto topk = std::get<1>(scores.topk(k, 1));
  const auto pred = topk.select(1, 0);
  const double n = static_cast<double>(std::max<std::int64_t>(a.n, 1));
  a.top1 = 100.0 * static_cast<double>((pred == y).sum().item<std::int64_t>()) / n;
  a.top5 = 100.0 * static_cast<double>((topk == y.unsqueeze(1)).any(1).sum().item<std::int64_t>()) / n;
  a.confusion = torch::bincount((y * num_classes + pred).cpu(), {}, num_classes * num_classes)
                    .view({num_classes, num_classes})
                    .to(torch::kInt64);
  return a;
}

std::vector<std::pair<std::int64_t, std::int64_t>> per_class(const Accuracy& a) {
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  const auto c = a.confusion.contiguous();
  const auto n = c.size(0);
  const auto* p = c.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t count = 0;
    for (std::int64_t j = 0; j < n; ++j) count += p[i * n + j];
    out.emplace_back(count, p[i * n + i]);
  }
  return out;
}

torch::Tensor knn_scores(const torch::Tensor& train_features, const torch::Tensor& train_labels,
                         const torch::Tensor& query_features, std::int64_t num_classes, std::int64_t k,
                         double temperature, std::int64_t chunk) {
  check_labels(train_features, train_labels, "knn");
  if (k <= 0 || temperature <= 0) throw UsageError("knn: k and the temperature must be positive");
  torch::NoGradGuard no_grad;
  const auto train = l2_normalize(train_features);
  const auto query = l2_normalize(query_features);
  const auto labels = train_labels.to(train.device(), torch::kInt64);
  const auto kk = std::min<std::int64_t>(k, train.size(0));
  auto out = torch::zeros({query.size(0), num_classes}, query.options());
  for (std::int64_t begin = 0; begin < query.size(0); begin += chunk) {
    const auto end = std::min<std::int64_t>(begin + chunk, query.size(0));
    const auto sim = query.slice(0, begin, end).matmul(train.t());
    auto [values, index] = sim.topk(kk, 1);
    const auto votes = values.div(temperature).exp_();
    out.slice(0, begin, end).scatter_add_(1, labels.index_select(0, index.flatten()).view(index.sizes()), votes);
  }
  return out;
}

torch::Tensor zero_shot_scores(const torch::Tensor& embeddings, const torch::Tensor& tsb) {
  if (embeddings.size(1) != tsb.size(0))
    throw UsageError("zero-shot: embeddings of width " + std::to_string(embeddings.size(1)) + ", TSB of width " +
                     std::to_string(tsb.size(0)));
  torch::NoGradGuard no_grad;
  return l2_normalize(embeddings).matmul(tsb.to(embeddings.device(), torch::kFloat32)).mul_(100.0);
}

std::vector<std::int64_t> class_balanced_subset(const std::vector<std::int64_t>& labels,
                                                std::int64_t num_classes, double fraction,
                                                std::uint64_t seed) {
  if (!(fraction > 0) || fraction > 1)
    throw UsageError("subset fraction must be in (0, 1], got " + std::to_string(fraction));
  std::vector<std::vector<std::int64_t>> by_class(static_cast<std::size_t>(num_classes));
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const auto y = labels[i];
    if (y < 0 || y >= num_classes)
      throw UsageError("subset: label " + std::to_string(y) + " outside [0, " + std::to_string(num_classes) + ")");
    by_class[static_cast<std::size_t>(y)].push_back(static_cast<std::int64_t>(i));
  }
  std::mt19937_64 rng(seed);
  std::vector<std::int64_t> out;
  for (auto& members : by_class) {
    if (members.empty()) continue;
    const auto n = static_cast<std::int64_t>(members.size());
    const auto take = std::min<std::int64_t>(
        n, std::max<std::int64_t>(1, std::llround(fraction * static_cast<double>(n))));
    // Partial Fisher-Yates: the first `take` entries become a uniform sample.
    for (std::int64_t i = 0; i < take; ++i) {
      const auto j = i + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(n - i));
      std::swap(members[static_cast<std::size_t>(i)], members[static_cast<std::size_t>(j)]);
    }
    out.insert(out.end(), members.begin(), members.begin() + take);
  }
  std::sort(out.begin(), out.end());
  return out;
}

double step_lr(double base, std::int64_t epoch, const std::vector<std::int64_t>& milestones) {
  double lr = base;
  for (auto m : milestones)
    if (epoch >= m) lr *= 0.1;
  return lr;
}

namespace {

struct Fit {
  torch::Tensor weight, bias;
};

Fit lbfgs_fit(const torch::Tensor& x, const torch::Tensor& y, std::int64_t num_classes, double wd,
              std::int64_t max_iter, const Fit* start) {
  auto w = start ? start->weight.clone() : torch::zeros({num_classes, x.size(1)}, x.options());
  auto b = start ? start->bias.clone() : torch::zeros({num_classes}, x.options());
  w.set_requires_grad(true);
  b.set_requires_grad(true);
  torch::optim::LBFGS opt({w, b}, torch::optim::LBFGSOptions(1.0)
                                      .max_iter(max_iter)
                                      .history_size(20)
                                      .tolerance_grad(1e-6)
                                      .tolerance_change(1e-9)
                                      .line_search_fn("strong_wolfe"));
  opt.step([&]() {
    opt.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(x.matmul(w.t()) + b, y) + 0.5 * wd * w.pow(2).sum();
    loss.backward();
    return loss;
  });
  return {w.detach(), b.detach()};
}

double top1(const Fit& f, const torch::Tensor& x, const torch::Tensor& y) {
  torch::NoGradGuard no_grad;
  const auto pred = (x.matmul(f.weight.t()) + f.bias).argmax(1);
  return 100.0 * static_cast<double>((pred == y).sum().item<std::int64_t>()) / static_cast<double>(y.size(0));
}

}  // namespace

FastLinearResult fit_linear_fast(const torch::Tensor& features, const torch::Tensor& labels,
                                 std::int64_t num_classes, const FastLinearOptions& options) {
  check_labels(features, labels, "linear-fast");
  if (options.weight_decays.empty()) throw UsageError("linear-fast: no weight decay to try");
  const auto x0 = features.to(torch::kFloat32);
  const auto y = labels.to(x0.device(), torch::kInt64);
  const auto mean = x0.mean(0);
  // Standardised per feature. The threshold is relative: a random-init network's features
  // can be ~1e-9 in all, and only (numerically) constant features are left unscaled.
  auto sd = x0.std(0, /*unbiased=*/false);
  const double top = sd.max().item<double>();
  sd = torch::where(sd > 1e-6 * top, sd, torch::full_like(sd, top > 0 ? top : 1.0));
  const auto x = (x0 - mean) / sd;

  FastLinearResult result;
  result.weight_decay = options.weight_decays.front();
  Fit best{};
  if (options.weight_decays.size() > 1) {
    const auto views = std::max<std::int64_t>(options.views_per_sample, 1);
    if (x.size(0) % views != 0)
      throw UsageError("linear-fast: " + std::to_string(x.size(0)) + " rows are not " + std::to_string(views) +
                       " views of the same samples");
    const auto n = x.size(0) / views;
    const auto ycpu = y.slice(0, 0, n).cpu().contiguous();
    std::vector<std::int64_t> yv(ycpu.data_ptr<std::int64_t>(), ycpu.data_ptr<std::int64_t>() + ycpu.numel());
    const auto held = class_balanced_subset(yv, num_classes, options.holdout, options.seed);
    auto mask = torch::zeros({n}, torch::kBool);
    mask.index_fill_(0, torch::tensor(held, torch::kInt64), true);
    mask = mask.repeat({views}).to(x.device());
    const auto xt = x.index({~mask}), yt = y.index({~mask});
    const auto xh = x.index({mask}), yh = y.index({mask});
    // Strongest decay first, each fit starting from the previous solution.
    auto wds = options.weight_decays;
    std::sort(wds.begin(), wds.end(), std::greater<double>());
    double best_acc = -1;
    Fit prev{};
    bool have_prev = false;
    for (double wd : wds) {
      Fit f = lbfgs_fit(xt, yt, num_classes, wd, options.max_iter, have_prev ? &prev : nullptr);
      const double acc = top1(f, xh, yh);
      result.search.emplace_back(wd, acc);
      if (acc > best_acc) {
        best_acc = acc;
        result.weight_decay = wd;
        best = f;
      }
      prev = f;
      have_prev = true;
    }
    std::reverse(result.search.begin(), result.search.end());
  }
  const Fit f = lbfgs_fit(x, y, num_classes, result.weight_decay, options.max_iter,
                          best.weight.defined() ? &best : nullptr);
  // scores = ((x - mean) / sd) W^T + b = x (W / sd)^T + (b - (W / sd) mean)
  result.weight = f.weight / sd;
  result.bias = f.bias - result.weight.matmul(mean);
  return result;
}

}  // namespace lgd::eval
