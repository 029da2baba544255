#pragma once
// The typed configuration of an lgd run. YAML files and --set overrides are parsed into
// these structs once (load_run_config); nothing else in lgd reads YAML.
#include <cstdint>
#include <string>
#include <vector>

#include "lgd/core/config_fields.h"

namespace lgd::config {

struct RunSection {
  std::string name;                 // run name; empty: the config file's stem
  std::string output_dir = "runs";  // run directory is <output_dir>/<name>
  std::int64_t seed = 0;
  std::string device = "auto";  // auto | cpu | cuda
  std::int64_t threads = 0;     // intra-op threads; 0: all cores
};

struct StudentSection {
  std::string arch;             // a name of the student zoo
  std::string init = "random";  // random | weights
  std::string weights;          // .pth / .safetensors when init = weights
};

struct TeacherSection {
  std::string bundle;  // teacher bundle directory (lgd_teacher.yaml inside)
  bool freeze = false;  // image encoder frozen as torch.jit.freeze does (BatchNorm folded)
  bool overlap = false;  // CUDA: image encoder on its own stream, beside the student's forward
  std::string cache;     // a folder written by `lgd reinforce`: cached embeddings replace the forward
  std::int64_t cache_views = 0;  // use the cache's first K views; 0: all of them
};

struct DataSection {
  std::string dataset = "image_folder";  // image_folder | file_list | idx | cifar
  std::string root;
  std::string classnames;  // class-name file; empty: from the dataset
  std::int64_t image_size = 224;
  std::int64_t batch_size = 256;   // per process
  std::int64_t global_batch = 0;   // > 0: batch_size x world size x optim.accumulate must equal it
  std::int64_t workers = 0;        // decode threads; 0: all cores
  std::string augment = "mocov2";  // mocov2 | linear | eval | none
  double max_bad_fraction = 0.01;
  std::int64_t max_pixels = 89478485;  // larger images are bad samples (decompression bombs)
  std::string split = "train";  // idx and cifar: train | test
  // Validation set (train.val_every > 0): same format; empty val_root: data.root.
  std::string val_root;
  std::string val_split = "test";
  // Augmentation parameters (defaults: MoCo v2, the reference recipe).
  std::vector<double> crop_scale{0.2, 1.0};
  std::vector<double> crop_ratio{3.0 / 4.0, 4.0 / 3.0};
  std::vector<double> jitter{0.4, 0.4, 0.4, 0.1};  // brightness, contrast, saturation, hue
  double jitter_p = 0.8;
  double grayscale_p = 0.2;
  double blur_p = 0.5;
  std::vector<double> blur_sigma{0.1, 2.0};
  double flip_p = 0.5;
  bool jpeg_reduce = true;
  std::string photometric = "auto";  // auto (device on CUDA, host on CPU) | host | device
  std::int64_t seed = -1;  // seed of the sample order and views; -1: run.seed
};

struct BankSection {
  std::string file;                        // a TSB built by `lgd bank build`; empty: build at start
  std::string classnames;                  // class-name file; empty: class_list or the dataset's
  std::vector<std::string> class_list;     // class names inline
  std::string templates;                   // template file; empty: template_list or the default
  std::vector<std::string> template_list;  // templates inline
};

struct MethodSection {
  std::string name = "lgd";  // lgd | seed
  double alpha = 0.5;        // weight of L_VIS; 1 - alpha on L_TEX
  double student_temp = 0.2;
  double teacher_temp = 0.01;
  double vsb_momentum = 0.999;  // the paper's ImageNet script
  std::int64_t queue_size = 65536;  // SEED queue length
};

struct OptimSection {
  double lr = 0.03;  // base learning rate per 256 images of global batch
  double momentum = 0.9;
  double weight_decay = 1e-4;
  bool nesterov = false;
  std::int64_t epochs = 200;
  std::int64_t warmup_epochs = 5;
  std::string schedule = "cosine";  // cosine | reference
  std::int64_t accumulate = 1;
  double clip_grad = 0.0;  // max gradient norm; 0: off
};

struct TrainSection {
  std::string amp = "bf16";  // bf16 | fp16 | off (CUDA only; CPU runs float32)
  bool channels_last = true;
  std::int64_t checkpoint_every = 1000;  // steps; 0: only at epoch ends
  std::int64_t keep_checkpoints = 3;
  std::int64_t log_every = 20;
  std::int64_t val_every = 0;        // epochs; 0: no validation
  std::int64_t val_every_steps = 0;  // optimiser steps; 0: none between epoch ends
  std::int64_t val_limit = 0;        // validate on at most this many images (evenly spaced); 0: all
  std::int64_t max_nonfinite = 5;    // consecutive non-finite losses that stop the run
  bool deterministic = false;  // CUDA: deterministic kernels, no cuDNN autotuning
  std::string nonfinite_check = "auto";  // auto (deferred on CUDA, step on CPU) | step | deferred
  std::int64_t max_steps = 0;        // stop after this many optimiser steps; 0: all epochs
};

struct DistSection {
  std::string backend = "auto";  // auto (nccl on CUDA, gloo on CPU) | gloo | nccl
  std::string master_addr;       // empty: MASTER_ADDR, else (Slurm) the job's first node
  std::int64_t master_port = 0;  // 0: MASTER_PORT, else 29500
  double timeout = 600;          // seconds a collective or the rendezvous may wait
  double bucket_mb = 25;         // gradient all-reduce bucket size
};

struct RunConfig {
  RunSection run;
  StudentSection student;
  TeacherSection teacher;
  DataSection data;
  BankSection bank;
  MethodSection method;
  OptimSection optim;
  TrainSection train;
  DistSection dist;
};

// The seed of the run's sample order and views: data.seed, or run.seed when it is -1.
inline std::int64_t data_seed(const RunConfig& c) { return c.data.seed >= 0 ? c.data.seed : c.run.seed; }

// The declarations of every key, bound to the members of `cfg`.
FieldSet describe(RunConfig& cfg);

struct LoadedConfig {
  RunConfig config;
  Origins origins;  // key -> where it was set
};

// defaults < file < overrides; then required keys and cross-field checks.
LoadedConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides);

// The resolved config as YAML.
std::string to_yaml(const RunConfig& cfg);

}  // namespace lgd::config
