// eval_knn IN OUT K T: reads train_x, train_y, query_x and num_classes (a 0-dim tensor) from
// IN (.pth), writes the kNN vote totals as "scores" to OUT (.pth).
#include <torch/torch.h>

#include <cstdio>
#include <map>

#include "lgd/eval/probe.h"
#include "lgd/export/weights_io.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: eval_knn IN OUT K T\n");
    return 2;
  }
  std::map<std::string, torch::Tensor> in;
  for (auto& [k, v] : lgd::exporting::read_weights(argv[1]).tensors) in[k] = v;
  const auto scores = lgd::eval::knn_scores(in.at("train_x"), in.at("train_y"), in.at("query_x"),
                                            in.at("num_classes").item<std::int64_t>(), std::stoll(argv[3]),
                                            std::stod(argv[4]), 7);
  lgd::exporting::write_weights(argv[2], {{"scores", scores}}, lgd::exporting::WeightsFormat::kTorchvision, {});
  return 0;
}
