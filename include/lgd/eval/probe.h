#pragma once
// The evaluation protocols' arithmetic on features that are already extracted: accuracy
// with per-class counts and a confusion matrix, DINO's weighted kNN, zero-shot scores
// through a TSB, the class-balanced label subset of the semi-supervised protocols, the
// step schedule of the faithful linear probe, and the fast linear probe (L-BFGS on cached
// features with the weight decay chosen on a held-out part of the training set).
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lgd::eval {

struct Accuracy {
  double top1 = 0;     // percent
  double top5 = 0;     // percent (top-min(5, C))
  std::int64_t n = 0;  // samples scored
  at::Tensor confusion;  // int64 [C, C]: row = true class, column = top-1 prediction
};

// scores [N, C] (higher is better), labels int64 [N] in [0, C).
Accuracy accuracy(const at::Tensor& scores, const at::Tensor& labels, std::int64_t num_classes);

// Per class: the class's samples and how many the top-1 prediction got right.
std::vector<std::pair<std::int64_t, std::int64_t>> per_class(const Accuracy& accuracy);

// DINO's weighted kNN: features are L2-normalised; for each query the k training samples of
// highest cosine similarity vote for their class with weight exp(similarity / temperature).
// Returns the vote totals [Nq, C] (float32). Queries go in chunks of `chunk` rows.
at::Tensor knn_scores(const at::Tensor& train_features, const at::Tensor& train_labels,
                      const at::Tensor& query_features, std::int64_t num_classes, std::int64_t k = 20,
                      double temperature = 0.07, std::int64_t chunk = 1024);

// 100 * normalise(embeddings) . tsb, with tsb [D, C] of unit columns: [N, C].
at::Tensor zero_shot_scores(const at::Tensor& embeddings, const at::Tensor& tsb);

// The semi-supervised protocols' label subset: from each class, round(fraction x its count)
// samples (at least one), drawn without replacement with a generator seeded by `seed`.
// Returns dataset indices in ascending order.
std::vector<std::int64_t> class_balanced_subset(const std::vector<std::int64_t>& labels,
                                                std::int64_t num_classes, double fraction,
                                                std::uint64_t seed);

// The faithful probe's learning rate in `epoch` (0-based): base x 0.1 per milestone <= epoch.
double step_lr(double base, std::int64_t epoch, const std::vector<std::int64_t>& milestones);

struct FastLinearOptions {
  std::vector<double> weight_decays{1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0};  // L2 on the weight
  double holdout = 0.1;  // fraction of every class held out to choose the weight decay
  std::int64_t max_iter = 300;  // L-BFGS iterations per fit
  std::uint64_t seed = 0;
  // Rows are this many blocks of the same samples in the same order (augmented passes): the
  // hold-out split takes whole samples, never one view of a sample while another trains.
  std::int64_t views_per_sample = 1;
};

struct FastLinearResult {
  at::Tensor weight;  // [C, F], on the original (unstandardised) features
  at::Tensor bias;    // [C]
  double weight_decay = 0;
  // (weight decay, held-out top-1 %) for every candidate; empty with one candidate.
  std::vector<std::pair<double, double>> search;
};

// Multinomial logistic regression on standardised features, full-batch L-BFGS with a strong
// Wolfe line search, loss mean cross-entropy + wd / 2 * |W|^2. The standardisation is folded
// into the returned weight and bias, so scores = x W^T + b on the raw features.
FastLinearResult fit_linear_fast(const at::Tensor& features, const at::Tensor& labels,
                                 std::int64_t num_classes, const FastLinearOptions& options);

}  // namespace lgd::eval
