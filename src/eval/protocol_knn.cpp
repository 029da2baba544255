// lgd eval --protocol knn: DINO's weighted kNN on L2-normalised features (probe.cpp).
#include "evaluation.h"
#include "lgd/eval/probe.h"

namespace lgd::eval {

ProtocolResult Evaluation::knn() {
  ProtocolResult r;
  r.protocol = "knn";
  std::string h1, h2;
  const auto& tr = train_features(&h1);
  const auto& va = val_features(&h2);
  r.features = merge_how(h1, h2);
  const auto scores = knn_scores(tr.x.to(device), tr.labels, va.x.to(device), num_classes(), o.knn_k,
                                 o.knn_temperature);
  finish(r, scores, va.labels);
  r.details["k"] = o.knn_k;
  r.details["temperature"] = o.knn_temperature;
  return r;
}

}  // namespace lgd::eval
