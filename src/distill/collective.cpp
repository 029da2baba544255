#include "lgd/distill/collective.h"

namespace lgd::distill {
namespace {

class SingleProcess final : public Collective {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  torch::Tensor all_gather_cat(const torch::Tensor& local) override { return local.detach(); }
  void broadcast(torch::Tensor&, int) override {}
  void barrier() override {}
  void all_reduce(torch::Tensor&, Reduce) override {}
  std::string broadcast_string(const std::string& value, int) override { return value; }
  std::unique_ptr<GradientSync> gradient_sync(std::vector<torch::Tensor>, double) override {
    return std::make_unique<GradientSync>();
  }
  std::string describe() const override { return "one process"; }
};

}  // namespace

std::shared_ptr<Collective> single_process_collective() { return std::make_shared<SingleProcess>(); }

}  // namespace lgd::distill
