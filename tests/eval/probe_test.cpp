// The evaluation protocols' arithmetic against hand-worked examples and constructed data.
#include "lgd/eval/probe.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <set>

namespace lgd::eval {
namespace {

TEST(EvalAccuracy, HandWorkedTopKAndConfusion) {
  // 4 samples, 3 classes. Top-1 predictions: 0, 2, 1, 2; labels 0, 1, 1, 2.
  const auto scores = torch::tensor({{0.9f, 0.05f, 0.05f},
                                     {0.1f, 0.3f, 0.6f},
                                     {0.2f, 0.7f, 0.1f},
                                     {0.0f, 0.4f, 0.6f}});
  const auto labels = torch::tensor({0, 1, 1, 2}, torch::kInt64);
  const auto a = accuracy(scores, labels, 3);
  EXPECT_DOUBLE_EQ(a.top1, 75.0);
  EXPECT_DOUBLE_EQ(a.top5, 100.0);  // top-min(5, C) = top-3
  EXPECT_EQ(a.n, 4);
  const auto expected = torch::tensor({{1, 0, 0}, {0, 1, 1}, {0, 0, 1}}, torch::kInt64);
  EXPECT_TRUE(torch::equal(a.confusion, expected)) << a.confusion;
  const auto pc = per_class(a);
  ASSERT_EQ(pc.size(), 3u);
  EXPECT_EQ(pc[1].first, 2);
  EXPECT_EQ(pc[1].second, 1);
}

TEST(EvalAccuracy, TopFiveOfTen) {
  // The label ranks 6th for sample 0 and 5th for sample 1.
  auto scores = torch::arange(10, torch::kFloat32).flip(0).unsqueeze(0).repeat({2, 1});
  const auto a = accuracy(scores, torch::tensor({5, 4}, torch::kInt64), 10);
  EXPECT_DOUBLE_EQ(a.top1, 0.0);
  EXPECT_DOUBLE_EQ(a.top5, 50.0);
}

TEST(EvalKnn, HandWorkedVotes) {
  // Unit 2-D features: the query at angle 0 is nearest to the train points at 0.1 and -0.2
  // radians (k = 2), of classes 1 and 0.
  auto pt = [](double a) { return std::vector<float>{static_cast<float>(std::cos(a)), static_cast<float>(std::sin(a))}; };
  std::vector<float> flat;
  for (double a : {0.1, -0.2, 2.0, 3.0}) {
    auto p = pt(a);
    flat.insert(flat.end(), p.begin(), p.end());
  }
  const auto train = torch::tensor(flat).view({4, 2}) * 3.0;  // scale must not matter
  const auto labels = torch::tensor({1, 0, 0, 1}, torch::kInt64);
  const auto query = torch::tensor({1.0f, 0.0f}).view({1, 2});
  const auto s = knn_scores(train, labels, query, 2, 2, 0.5);
  EXPECT_NEAR(s[0][1].item<double>(), std::exp(std::cos(0.1) / 0.5), 1e-4);
  EXPECT_NEAR(s[0][0].item<double>(), std::exp(std::cos(0.2) / 0.5), 1e-4);
  // k larger than the training set takes all of it.
  const auto all = knn_scores(train, labels, query, 2, 20, 0.5);
  EXPECT_NEAR(all[0][0].item<double>(), std::exp(std::cos(0.2) / 0.5) + std::exp(std::cos(2.0) / 0.5), 1e-4);
}

TEST(EvalZeroShot, PicksTheClassOfConstructedEmbeddings) {
  torch::manual_seed(1);
  const std::int64_t D = 32, C = 7, N = 70;
  auto tsb = torch::nn::functional::normalize(torch::randn({D, C}), torch::nn::functional::NormalizeFuncOptions().dim(0));
  const auto labels = torch::arange(N, torch::kInt64) % C;
  // Each embedding is its class's text embedding at a random scale, plus noise.
  const auto emb = tsb.t().index_select(0, labels) * (torch::rand({N, 1}) * 5 + 0.5) + 0.05 * torch::randn({N, D});
  const auto scores = zero_shot_scores(emb, tsb);
  EXPECT_TRUE(torch::equal(scores.argmax(1), labels));
  // 100 x cosine similarity.
  const auto cos = torch::nn::functional::normalize(emb, torch::nn::functional::NormalizeFuncOptions().dim(1)).matmul(tsb);
  EXPECT_TRUE(torch::allclose(scores, 100 * cos, 1e-4, 1e-4));
}

TEST(EvalSubset, ClassBalancedAndSeeded) {
  std::vector<std::int64_t> labels;
  const std::map<std::int64_t, int> counts{{0, 100}, {1, 50}, {2, 7}, {3, 1}, {4, 0}};
  for (int i = 0; i < 400; ++i) {  // interleaved classes
    for (auto [c, n] : counts)
      if (i < n) labels.push_back(c);
  }
  const auto a = class_balanced_subset(labels, 5, 0.1, 42);
  const auto b = class_balanced_subset(labels, 5, 0.1, 42);
  const auto c = class_balanced_subset(labels, 5, 0.1, 43);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::map<std::int64_t, int> got;
  std::set<std::int64_t> unique(a.begin(), a.end());
  EXPECT_EQ(unique.size(), a.size());
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  for (auto i : a) ++got[labels[static_cast<std::size_t>(i)]];
  EXPECT_EQ(got[0], 10);
  EXPECT_EQ(got[1], 5);
  EXPECT_EQ(got[2], 1);  // round(0.7) = 1
  EXPECT_EQ(got[3], 1);  // at least one
  EXPECT_EQ(got.count(4), 0u);
  // 1% of 100 is 1; 100% is everything.
  EXPECT_EQ(class_balanced_subset(labels, 5, 1.0, 0).size(), labels.size());
  EXPECT_THROW(class_balanced_subset(labels, 5, 0.0, 0), std::exception);
  // Over seeds, every member of a class is drawn about equally often.
  std::vector<int> hits(labels.size());
  for (std::uint64_t s = 0; s < 2000; ++s)
    for (auto i : class_balanced_subset(labels, 5, 0.1, s)) ++hits[static_cast<std::size_t>(i)];
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] == 0) {
      EXPECT_NEAR(hits[i], 200, 60) << i;
    }
  }
}

TEST(EvalLinear, MocoStepSchedule) {
  const std::vector<std::int64_t> m{60, 80};
  const double base = 30.0 * 512 / 256;
  EXPECT_DOUBLE_EQ(step_lr(base, 0, m), 60.0);
  EXPECT_DOUBLE_EQ(step_lr(base, 59, m), 60.0);
  EXPECT_NEAR(step_lr(base, 60, m), 6.0, 1e-12);
  EXPECT_NEAR(step_lr(base, 79, m), 6.0, 1e-12);
  EXPECT_NEAR(step_lr(base, 80, m), 0.6, 1e-12);
  EXPECT_NEAR(step_lr(base, 99, m), 0.6, 1e-12);
}

TEST(EvalLinearFast, SeparableFeaturesAbove99Percent) {
  torch::manual_seed(3);
  const std::int64_t C = 10, F = 48;
  const auto centres = torch::randn({C, F}) * 2.0;
  auto make = [&](std::int64_t n) {
    const auto y = torch::randint(C, {n}, torch::kInt64);
    // Features on an awkward scale and offset, as raw backbone features are.
    auto x = (centres.index_select(0, y) + 0.5 * torch::randn({n, F})) * 40.0 + 7.0;
    return std::make_pair(x, y);
  };
  const auto [xtr, ytr] = make(3000);
  const auto [xte, yte] = make(1000);
  FastLinearOptions o;
  o.weight_decays = {1e-4, 1e-2};
  o.max_iter = 100;
  // Raw scale, and ~1e-9 as a random-init MobileNetV2's pooled features are.
  for (double scale : {1.0, 1e-10}) {
    const auto fit = fit_linear_fast(xtr * scale, ytr, C, o);
    ASSERT_EQ(fit.search.size(), 2u);
    const auto scores = (xte * scale).matmul(fit.weight.t()) + fit.bias;  // raw features
    const auto a = accuracy(scores, yte, C);
    EXPECT_GE(a.top1, 99.0) << "feature scale " << scale;
  }
  // Two views of every sample: the split keeps both views of a sample on one side.
  o.views_per_sample = 2;
  const auto fit2 = fit_linear_fast(torch::cat({xtr, xtr + 0.01}), torch::cat({ytr, ytr}), C, o);
  EXPECT_GE(accuracy(xte.matmul(fit2.weight.t()) + fit2.bias, yte, C).top1, 99.0);
  o.views_per_sample = 7;  // 6000 rows are not 7 views
  EXPECT_THROW(fit_linear_fast(torch::cat({xtr, xtr}), torch::cat({ytr, ytr}), C, o), std::exception);
}

}  // namespace
}  // namespace lgd::eval
