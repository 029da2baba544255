#include <torch/torch.h>

#include "lgd/models/student.h"

namespace lgd::models {

torch::nn::Sequential make_projection_head(std::int64_t feature_dim, std::int64_t embed_dim) {
  // nn.Linear's default initialisation, as the reference's MLP head.
  return torch::nn::Sequential(torch::nn::Linear(feature_dim, feature_dim), torch::nn::ReLU(),
                               torch::nn::Linear(feature_dim, embed_dim));
}

}  // namespace lgd::models
