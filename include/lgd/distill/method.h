#pragma once
// The distillation objectives, on L2-normalised embeddings s (student, through the head) and
// t (teacher) of one rank's batch, exactly as ../shared/DESIGN.md states them:
//
//   lgd   L = alpha * L_VIS + (1 - alpha) * L_TEX
//         L_VIS: student [s.t, s^T Q] / tau_s against softmax([t.t, t^T Q] / tau_t), Q the
//                Visual Semantics Bank (D x C) built by LGKA
//         L_TEX: student s^T TSB / tau_s against softmax(t^T TSB / tau_t)
//         after the logits, LGKA updates Q with the teacher keys of the global batch
//   seed  the SEED baseline: [s.t, s^T queue] / tau_s against softmax([t.t, t^T queue] / tau_t),
//         then the global batch's keys enter a FIFO queue of K keys; no text
//
// Each loss is a soft cross-entropy -sum_k p_t(k) log softmax(z_s)(k), averaged over the batch.
#include <torch/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace lgd::distill {

// -sum_k softmax(teacher_logits)(k) * log_softmax(student_logits)(k), mean over rows.
torch::Tensor soft_cross_entropy(const torch::Tensor& student_logits,
                                 const torch::Tensor& teacher_logits);

// LGKA's Visual Semantics Bank: Q (D x C) and a per-class initialised flag.
class VisualSemanticsBank {
 public:
  // Q starts as random unit columns drawn from `seed`.
  VisualSemanticsBank(std::int64_t dim, std::int64_t classes, double momentum, std::uint64_t seed);

  torch::Tensor bank() const { return rows_.t(); }                   // float [D, C] (a view)
  const torch::Tensor& initialised() const { return initialised_; }  // bool [C]
  double momentum() const { return momentum_; }

  // keys [N, D] (normalised teacher embeddings of the global batch), tsb [D, C]: each key
  // goes to argmax_c keys @ tsb; every class that received keys takes the mean z_c of its
  // keys (not re-normalised) if it was not initialised, else m Q_c + (1 - m) z_c. Vectorised
  // (index_add_ over the keys, touching only the rows of classes that received keys), no loop
  // over classes and no host synchronisation.
  void update(const torch::Tensor& keys, const torch::Tensor& tsb);
  // The two halves of update(): the class of each key (argmax of keys @ tsb), and the
  // per-class means and momentum step given those classes (int64 [N]).
  static torch::Tensor assign(const torch::Tensor& keys, const torch::Tensor& tsb);
  // `apply` (optional, a 0-dim bool on the bank's device): when false the bank is left as
  // it was, decided on the device (a step skipped without a host synchronisation).
  void update_assigned(const torch::Tensor& keys, const torch::Tensor& classes,
                       const torch::Tensor& apply = {});

  // Fraction of classes initialised, as a 0-dim tensor on the bank's device (no sync).
  torch::Tensor initialised_fraction() const;

  void to(const torch::Device& device);
  std::map<std::string, torch::Tensor> state() const;
  void load_state(const std::map<std::string, torch::Tensor>& state);  // strict, IoError

 private:
  torch::Tensor rows_;          // Q transposed: [C, D], one row per class
  torch::Tensor initialised_;   // bool [C]
  double momentum_;
};

struct MethodOptions {
  std::string name = "lgd";  // lgd | seed
  double alpha = 0.5;
  double student_temp = 0.2;
  double teacher_temp = 0.01;
  double vsb_momentum = 0.999;
  std::int64_t queue_size = 65536;
};

struct LossParts {
  torch::Tensor loss;      // what is minimised
  torch::Tensor loss_vis;  // L_VIS (lgd) or the SEED loss
  torch::Tensor loss_tex;  // L_TEX (lgd); undefined for seed
  // lgd: argmax_c of the teacher's TSB logits per row, int64 [B] -- the LGKA class of each
  // key, a by-product of L_TEX that update() can take instead of recomputing it.
  torch::Tensor classes;
};

class Method {
 public:
  virtual ~Method() = default;
  virtual const std::string& name() const = 0;
  // The loss of this rank's batch with the current bank / queue.
  virtual LossParts loss(const torch::Tensor& s, const torch::Tensor& t) const = 0;
  // After the loss: take in the teacher keys of the global batch (all ranks, rank order) and,
  // when given, their LossParts::classes gathered the same way. `apply` (optional, a 0-dim
  // bool on the device): when false the state stays as it was (a skipped step, decided on
  // the device without a host synchronisation).
  virtual void update(const torch::Tensor& global_keys, const torch::Tensor& global_classes = {},
                      const torch::Tensor& apply = {}) = 0;
  // Metrics without host synchronisation (e.g. fraction of VSB classes initialised).
  virtual std::map<std::string, torch::Tensor> metrics() const = 0;
  virtual void to(const torch::Device& device) = 0;
  virtual std::map<std::string, torch::Tensor> state() const = 0;
  virtual void load_state(const std::map<std::string, torch::Tensor>& state) = 0;
};

// tsb: the Textual Semantics Bank [D, C] (L2-normalised columns); used by lgd only.
std::unique_ptr<Method> make_method(const MethodOptions& options, std::int64_t embed_dim,
                                    const torch::Tensor& tsb, std::uint64_t seed);

}  // namespace lgd::distill
