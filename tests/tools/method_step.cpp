// Test helper: one distillation step with lgd's methods on tensors a Python test saved.
//   method_step lgd|seed IN.pt OUT.pt alpha tau_s tau_t momentum lr sgd_momentum weight_decay
//               [nesterov]
// IN holds feats [B, F] (student pooled features), t [B, D] (normalised teacher keys),
// head.0.weight/bias, head.2.weight/bias (the projection head) and, for lgd, tsb [D, C],
// vsb.bank [D, C], vsb.initialised [C] (0/1 floats); for seed, seed.queue [K, D] and
// seed.ptr [1]. It computes s = normalise(head(feats)), the losses, one SGD step on the
// head, the bank / queue update and a second SGD step with the updated bank, and writes loss, loss_vis, loss_tex, the updated
// bank / queue and head weights to OUT (torch.save format).
#include <torch/torch.h>

#include <cstdio>
#include <map>

#include "lgd/core/file_io.h"
#include "lgd/distill/method.h"
#include "lgd/engine/sgd.h"
#include "lgd/export/torch_pickle.h"
#include "lgd/models/state_dict.h"
#include "lgd/models/student.h"

using namespace lgd;

int main(int argc, char** argv) {
  if (argc != 11 && argc != 12) {
    std::fprintf(stderr, "usage: method_step lgd|seed IN.pt OUT.pt alpha tau_s tau_t momentum lr "
                         "sgd_momentum weight_decay [nesterov]\n");
    return 2;
  }
  try {
    torch::manual_seed(0);
    std::map<std::string, torch::Tensor> in;
    for (auto& [k, v] : exporting::read_torch_state_dict(argv[2])) in[k] = v;
    const std::string mode = argv[1];
    distill::MethodOptions o;
    o.name = mode;
    o.alpha = std::stod(argv[4]);
    o.student_temp = std::stod(argv[5]);
    o.teacher_temp = std::stod(argv[6]);
    o.vsb_momentum = std::stod(argv[7]);
    const double lr = std::stod(argv[8]), sgd_momentum = std::stod(argv[9]), wd = std::stod(argv[10]);
    const auto feats = in.at("feats"), t = in.at("t");
    const std::int64_t F = feats.size(1), D = t.size(1);
    auto head = models::make_projection_head(F, D);
    models::NamedTensors head_weights;
    for (const char* k : {"0.weight", "0.bias", "2.weight", "2.bias"})
      head_weights.emplace_back(k, in.at(std::string("head.") + k));
    models::load_state_dict(*head, head_weights, argv[2]);

    std::unique_ptr<distill::Method> method;
    if (mode == "lgd") {
      o.queue_size = 1;
      method = distill::make_method(o, D, in.at("tsb"), 0);
      method->load_state({{"vsb.bank", in.at("vsb.bank")},
                          {"vsb.initialised", in.at("vsb.initialised").to(torch::kBool)}});
    } else {
      o.queue_size = in.at("seed.queue").size(0);
      method = distill::make_method(o, D, torch::Tensor(), 0);
      method->load_state({{"seed.queue", in.at("seed.queue")},
                          {"seed.ptr", in.at("seed.ptr").reshape({}).to(torch::kInt64)}});
    }
    models::NamedTensors params;
    for (const auto& p : head->named_parameters(true)) params.emplace_back(p.key(), p.value());
    const bool nesterov = argc == 12 && std::string(argv[11]) == "nesterov";
    engine::Sgd sgd(params, engine::SgdOptions{sgd_momentum, wd, nesterov});
    auto s = head->forward(feats);
    s = s / s.norm(2, 1, true).clamp_min(1e-12);
    const auto parts = method->loss(s, t);
    sgd.zero_grad();
    parts.loss.backward();
    sgd.step(lr);
    method->update(t, parts.classes);  // as the trainer does: the classes L_TEX computed
    // A second step on the same batch exercises the momentum buffers (b = m b + g).
    {
      auto s2 = head->forward(feats);
      s2 = s2 / s2.norm(2, 1, true).clamp_min(1e-12);
      sgd.zero_grad();
      method->loss(s2, t).loss.backward();
      sgd.step(lr);
    }

    models::NamedTensors out{{"loss", parts.loss.detach().reshape({1})},
                             {"loss_vis", parts.loss_vis.detach().reshape({1})}};
    if (parts.loss_tex.defined()) out.emplace_back("loss_tex", parts.loss_tex.detach().reshape({1}));
    for (auto& [k, v] : method->state()) {
      out.emplace_back(k, v.dim() == 0 ? v.reshape({1}) : v);
      if (v.scalar_type() == torch::kBool) out.back().second = v.to(torch::kFloat32);
    }
    for (auto& [k, v] : models::state_dict(*head)) out.emplace_back("head." + k, v);
    write_file_atomic(argv[3], exporting::torch_save_bytes(out));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "method_step: %s\n", e.what());
    return 1;
  }
  return 0;
}
