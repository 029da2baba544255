// A step skipped on the device (the deferred non-finite check): with `apply` false the
// optimiser, the VSB and SEED's queue keep their state exactly; with `apply` true the result
// equals the unmasked update bit for bit.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "lgd/distill/method.h"
#include "lgd/engine/sgd.h"
#include "lgd/models/state_dict.h"

namespace {

using lgd::engine::Sgd;
using lgd::engine::SgdOptions;

lgd::models::NamedTensors make_params(std::uint64_t seed) {
  torch::manual_seed(seed);
  lgd::models::NamedTensors p;
  p.emplace_back("w", torch::randn({4, 3}).requires_grad_());
  p.emplace_back("b", torch::randn({4}).requires_grad_());
  p.emplace_back("frozen", torch::randn({2}).requires_grad_());  // never gets a gradient
  return p;
}

void set_grads(lgd::models::NamedTensors& p, std::uint64_t seed) {
  torch::manual_seed(seed);
  p[0].second.mutable_grad() = torch::randn({4, 3});
  p[1].second.mutable_grad() = torch::randn({4});
}

void expect_same(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "tensor " << i;
}

std::vector<torch::Tensor> values(const lgd::models::NamedTensors& p) {
  std::vector<torch::Tensor> v;
  for (const auto& [name, t] : p) v.push_back(t.detach().clone());
  return v;
}

TEST(MaskedStep, SgdAppliedEqualsUnmaskedAndSkippedLeavesEverything) {
  for (bool nesterov : {false, true}) {
    SgdOptions o{0.9, 1e-4, nesterov};
    auto pa = make_params(1), pb = make_params(1);
    Sgd plain(pa, o), masked(pb, o);
    const auto yes = torch::tensor(true), no = torch::tensor(false);
    for (int step = 0; step < 3; ++step) {
      set_grads(pa, 10 + step);
      set_grads(pb, 10 + step);
      plain.step(0.1);
      masked.step(0.1, yes);
      expect_same(values(pa), values(pb));
    }
    // A skipped step: parameters and momentum unchanged, so the next applied step still
    // matches the optimiser that never saw the skipped gradient.
    const auto before = values(pb);
    set_grads(pb, 99);
    masked.step(0.1, no);
    expect_same(values(pb), before);
    set_grads(pa, 20);
    set_grads(pb, 20);
    plain.step(0.1);
    masked.step(0.1, yes);
    expect_same(values(pa), values(pb));
    EXPECT_FALSE(torch::equal(values(pb)[0], before[0]));  // the applied step did move it
  }
}

TEST(MaskedStep, VsbSkippedUpdateLeavesTheBank) {
  torch::manual_seed(3);
  const auto tsb = torch::nn::functional::normalize(torch::randn({8, 5}),
                                                    torch::nn::functional::NormalizeFuncOptions().dim(0));
  const auto keys = torch::nn::functional::normalize(torch::randn({16, 8}),
                                                     torch::nn::functional::NormalizeFuncOptions().dim(1));
  const auto classes = lgd::distill::VisualSemanticsBank::assign(keys, tsb);
  lgd::distill::VisualSemanticsBank plain(8, 5, 0.9, 7), masked(8, 5, 0.9, 7);
  for (int step = 0; step < 2; ++step) {
    plain.update_assigned(keys * (step + 1), classes);
    masked.update_assigned(keys * (step + 1), classes, torch::tensor(true));
    EXPECT_TRUE(torch::equal(plain.bank(), masked.bank()));
    EXPECT_TRUE(torch::equal(plain.initialised(), masked.initialised()));
  }
  const auto bank = masked.bank().clone(), init = masked.initialised().clone();
  masked.update_assigned(-keys, classes, torch::tensor(false));
  EXPECT_TRUE(torch::equal(masked.bank(), bank));
  EXPECT_TRUE(torch::equal(masked.initialised(), init));

  // A fresh bank: a skipped first update must not mark classes initialised.
  lgd::distill::VisualSemanticsBank fresh(8, 5, 0.9, 7);
  const auto q0 = fresh.bank().clone();
  fresh.update_assigned(keys, classes, torch::tensor(false));
  EXPECT_TRUE(torch::equal(fresh.bank(), q0));
  EXPECT_FALSE(fresh.initialised().any().item<bool>());
}

TEST(MaskedStep, SeedQueueSkippedUpdateLeavesQueueAndPointer) {
  lgd::distill::MethodOptions o;
  o.name = "seed";
  o.queue_size = 8;
  auto plain = lgd::distill::make_method(o, 4, {}, 5);
  auto masked = lgd::distill::make_method(o, 4, {}, 5);
  torch::manual_seed(4);
  const auto k1 = torch::randn({3, 4}), k2 = torch::randn({3, 4});
  plain->update(k1);
  masked->update(k1, {}, torch::tensor(true));
  const auto s1 = masked->state();
  masked->update(k2, {}, torch::tensor(false));
  for (const auto& [name, t] : masked->state()) EXPECT_TRUE(torch::equal(t, s1.at(name))) << name;
  plain->update(k2);
  masked->update(k2, {}, torch::tensor(true));
  const auto sp = plain->state();
  for (const auto& [name, t] : masked->state()) EXPECT_TRUE(torch::equal(t, sp.at(name))) << name;
}

}  // namespace
