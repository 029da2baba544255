#pragma once
// `lgd eval`: measures a student (an lgd checkpoint, exported weights, or a random-init
// baseline) on a labelled dataset by the protocols of the paper and its peers:
//   linear       the MoCo linear probe: frozen backbone in eval mode, a linear classifier on
//                the pooled feature trained with SGD on augmented views (linear view),
//                step schedule; evaluated on the eval view
//   linear-fast  the same classifier fitted by L-BFGS on features extracted once (eval view,
//                plus optional augmented passes) and cached on disk
//   zero-shot    argmax of 100 * norm(head(f)) . TSB
//   knn          DINO's weighted kNN on L2-normalised features
//   finetune     the whole student and a new linear classifier fine-tuned end to end on the
//                (--subset) labelled training set (protocol_finetune.cpp states the recipe),
//                resumable from <out>/finetune/state.safetensors
// The features of a (student, dataset, view) are extracted once per run and cached under
// the output folder, so protocols share them and a second run reuses them.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lgd::eval {

struct EvalOptions {
  // The student: exactly one of checkpoint, weights, random_init.
  std::string checkpoint;  // lgd training checkpoint (arch, image size, normalisation, data from it)
  std::string weights;     // .pth / .safetensors (exported, torchvision or lgd)
  bool random_init = false;
  std::string arch;  // required unless the file names it
  std::int64_t seed = 0;  // random init, classifier init, subset, hold-out split, augmentation

  // Data (defaults from the checkpoint's run config when empty).
  std::string format;       // image_folder | file_list | idx | cifar
  std::string data;         // training set (what probes and kNN learn from)
  std::string val_data;     // evaluation set; empty: data with val_split
  std::string train_split;  // idx / cifar; default "train"
  std::string val_split;    // idx / cifar; default "test"
  std::string classnames;
  std::int64_t image_size = 0;      // 0: the checkpoint's, else 224
  std::vector<double> mean, std;    // empty: the checkpoint's, the teacher's, else ImageNet's
  std::int64_t batch_size = 256;    // feature extraction
  int workers = 0;
  int threads = 0;
  std::string device = "auto";

  std::vector<std::string> protocols;  // in order
  double subset_percent = 0;           // > 0: that % of the training labels per class

  // linear (MoCo)
  std::int64_t linear_epochs = 100;
  double linear_lr = 30.0;  // scaled by linear_batch / 256
  std::int64_t linear_batch = 256;
  std::vector<std::int64_t> linear_milestones{60, 80};
  double linear_weight_decay = 0;

  // linear-fast
  std::int64_t fast_passes = 0;  // extra augmented (linear view) passes over the training set
  std::vector<double> fast_weight_decays{1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0};
  std::int64_t fast_max_iter = 300;

  // finetune
  std::int64_t finetune_epochs = 30;
  double finetune_lr = 0.05;       // backbone, scaled by finetune_batch / 256 (SimCLR's fine-tuning)
  double finetune_head_lr = 0.05;  // classifier, scaled likewise
  std::int64_t finetune_batch = 256;
  double finetune_weight_decay = 0;

  // knn
  std::int64_t knn_k = 20;
  double knn_temperature = 0.07;

  // zero-shot: the TSB from `bank`, else the run's tsb.safetensors (next to a checkpoint's
  // folder), else built with `teacher` from the class names and `templates`.
  std::string bank;
  std::string teacher;
  std::string templates;

  std::string out = "lgd-eval";  // results.json, CSVs, cache/
  bool cache = true;
  std::string export_classifier;  // torchvision classifier after a linear probe or fine-tuning
};

struct ProtocolResult {
  std::string protocol;
  double top1 = 0, top5 = 0;
  double seconds = 0;  // wall time, including feature extraction it triggered
  std::string features;  // how its features were obtained: extracted | cached | reused | per epoch
  nlohmann::ordered_json details = nlohmann::ordered_json::object();  // protocol-specific, into results.json
};

struct EvalReport {
  std::string student;  // what was evaluated (path or "random init")
  std::string arch;
  std::string dataset;  // "format:root" of the evaluation set
  std::int64_t train_samples = 0, val_samples = 0, num_classes = 0;
  std::vector<ProtocolResult> results;
  std::string out;
};

// Runs every protocol, writes <out>/results.json, <out>/<protocol>_per_class.csv and
// <out>/<protocol>_confusion.csv (and the classifier, when asked). Errors name the option,
// file or value at fault.
EvalReport evaluate(const EvalOptions& options);

// The report as a Markdown table.
std::string format_table(const EvalReport& report);

}  // namespace lgd::eval
