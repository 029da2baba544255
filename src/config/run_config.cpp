#include "lgd/config/run_config.h"

#include <cstdio>
#include <filesystem>

#include "lgd/core/config_yaml.h"
#include "lgd/core/errors.h"
#include "lgd/models/architectures.h"

namespace lgd::config {

FieldSet describe(RunConfig& c) {
  FieldSet f;
  f.add("run.name", &c.run.name, "Run name; empty means the config file's name without extension.");
  f.add("run.output_dir", &c.run.output_dir, "Parent folder of run directories.");
  f.add("run.seed", &c.run.seed, "Seed of every random draw of the run: the student's initialisation, the step's "
        "generator (stochastic depth) and, unless data.seed is set, the data.").at_least(0);
  f.add("run.device", &c.run.device, "Where to train; auto picks CUDA when present.")
      .one_of({"auto", "cpu", "cuda"});
  f.add("run.threads", &c.run.threads, "Intra-op CPU threads; 0 uses all cores.").range(0, 1024);

  f.add("student.arch", &c.student.arch, "Student architecture (see `lgd info`).")
      .one_of(models::architecture_names())
      .required();
  f.add("student.init", &c.student.init, "Student initialisation.").one_of({"random", "weights"});
  f.add("student.weights", &c.student.weights,
        "Weights file (.pth or .safetensors) when student.init is weights.");

  f.add("teacher.bundle", &c.teacher.bundle, "Teacher bundle directory (holds lgd_teacher.yaml).");
  f.add("teacher.freeze", &c.teacher.freeze,
        "Run the image encoder frozen as torch.jit.freeze does, on the training device and "
        "dtype: weights become graph constants, BatchNorm after a convolution is folded into "
        "it. Embeddings equal the loaded encoder's up to rounding. Off by default: no faster "
        "on a CPU (docs/PERFORMANCE.md), not yet measured on a GPU.");
  f.add("teacher.overlap", &c.teacher.overlap,
        "CUDA: run the image encoder's forward on a second CUDA stream while the student's "
        "forward runs on the training stream; the loss waits for both. Same results as without "
        "it. No effect on a CPU. Off by default: not yet measured on a GPU.");
  f.add("teacher.cache", &c.teacher.cache,
        "A folder written by `lgd reinforce`: epoch e takes the teacher's embeddings of its "
        "views from view e mod K of the cache instead of running the image encoder, and the "
        "loader draws the views of epoch e mod K. Refused when the cache was made for another "
        "teacher, dataset, image size, view or data.seed. Empty: the teacher runs every step.");
  f.add("teacher.cache_views", &c.teacher.cache_views,
        "K: use the first K views of teacher.cache (epoch e takes view e mod K); 0 uses all of "
        "them. View k is the same in every cache of the same run, so one cache of many views "
        "serves every smaller K.")
      .range(0, 100000);

  f.add("data.dataset", &c.data.dataset, "Dataset format.")
      .one_of({"image_folder", "file_list", "idx", "cifar"});
  f.add("data.root", &c.data.root, "Dataset location.");
  f.add("data.classnames", &c.data.classnames,
        "Class-name file (one per line); empty takes the names from the dataset.");
  f.add("data.image_size", &c.data.image_size, "Training crop size in pixels.").range(16, 4096);
  f.add("data.batch_size", &c.data.batch_size, "Images per process per step.").range(1, 65536);
  f.add("data.global_batch", &c.data.global_batch,
        "Images per optimiser step over all processes; 0: data.batch_size x processes x "
        "optim.accumulate. When set, data.batch_size is derived from it (it must divide).")
      .at_least(0);
  f.add("data.workers", &c.data.workers, "Decode and augmentation threads; 0 uses all cores.")
      .range(0, 1024);
  f.add("data.augment", &c.data.augment, "Training view.")
      .one_of({"mocov2", "linear", "eval", "none"});
  f.add("data.max_bad_fraction", &c.data.max_bad_fraction,
        "Stop when more than this fraction of samples cannot be read.")
      .range(0, 1);
  f.add("data.max_pixels", &c.data.max_pixels,
        "Images whose header claims more pixels (width x height) are bad samples, refused "
        "before decoding (decompression bombs); the default is Pillow's limit.")
      .range(1, 1e12);
  f.add("data.split", &c.data.split, "Split of an idx or cifar dataset.").one_of({"train", "test"});
  f.add("data.val_root", &c.data.val_root,
        "Validation set (train.val_every > 0), in data.dataset's format; empty: data.root "
        "(idx and cifar, with data.val_split).");
  f.add("data.val_split", &c.data.val_split, "Split of an idx or cifar validation set.")
      .one_of({"train", "test"});
  f.add("data.crop_scale", &c.data.crop_scale,
        "RandomResizedCrop area fraction [min, max] of the mocov2 view (the linear view uses "
        "torchvision's 0.08-1).");
  f.add("data.crop_ratio", &c.data.crop_ratio, "RandomResizedCrop aspect ratio [min, max].");
  f.add("data.jitter", &c.data.jitter,
        "ColorJitter strengths [brightness, contrast, saturation, hue] (mocov2 view).");
  f.add("data.jitter_p", &c.data.jitter_p, "Probability of applying ColorJitter.").range(0, 1);
  f.add("data.grayscale_p", &c.data.grayscale_p, "Probability of RandomGrayscale.").range(0, 1);
  f.add("data.blur_p", &c.data.blur_p, "Probability of GaussianBlur.").range(0, 1);
  f.add("data.blur_sigma", &c.data.blur_sigma, "GaussianBlur sigma range [min, max].");
  f.add("data.flip_p", &c.data.flip_p, "Probability of a horizontal flip.").range(0, 1);
  f.add("data.jpeg_reduce", &c.data.jpeg_reduce,
        "Decode large JPEGs at 1/2, 1/4 or 1/8 scale when the view still gets full resolution.");
  f.add("data.photometric", &c.data.photometric,
        "Where the mocov2 view's colour jitter, grayscale and blur run. host: in the loader "
        "threads on 8-bit images (as torchvision on PIL images). device: per batch on the "
        "training device in float (as torchvision's tensor ops), the loader doing the crop and "
        "flip; each sample draws the same parameters either way. auto: device on CUDA, host "
        "on a CPU.")
      .one_of({"auto", "host", "device"});
  f.add("data.seed", &c.data.seed,
        "Seed of the sample order, the views and the bad-sample replacements; -1 takes "
        "run.seed. Set it apart from run.seed to keep the data (and a teacher.cache made "
        "for it) while changing the student's initialisation.")
      .at_least(-1);

  f.add("bank.file", &c.bank.file,
        "A TSB written by `lgd bank build`; empty builds it from the teacher at start.");
  f.add("bank.classnames", &c.bank.classnames,
        "Class-name file for the TSB; empty: bank.class_list, else the dataset's class names.");
  f.add("bank.class_list", &c.bank.class_list, "Class names for the TSB, inline.");
  f.add("bank.templates", &c.bank.templates,
        "Prompt-template file, '{}' standing for the class name; empty: bank.template_list.");
  f.add("bank.template_list", &c.bank.template_list,
        "Prompt templates inline; with no file and no list: the teacher bundle's templates "
        "when it ships some, else \"a photo of a {}.\".");

  f.add("method.name", &c.method.name, "Distillation method.").one_of({"lgd", "seed"});
  f.add("method.alpha", &c.method.alpha, "Weight of L_VIS; L_TEX gets 1 - alpha.").range(0, 1);
  f.add("method.student_temp", &c.method.student_temp, "Student softmax temperature.").above(0);
  f.add("method.teacher_temp", &c.method.teacher_temp, "Teacher softmax temperature.").above(0);
  f.add("method.vsb_momentum", &c.method.vsb_momentum, "Momentum of the Visual Semantics Bank.")
      .range(0, 1);
  f.add("method.queue_size", &c.method.queue_size, "SEED queue length.").range(1, 4194304);

  f.add("optim.lr", &c.optim.lr, "Base learning rate per 256 images of global batch.").above(0);
  f.add("optim.momentum", &c.optim.momentum, "SGD momentum.").range(0, 1);
  f.add("optim.weight_decay", &c.optim.weight_decay, "SGD weight decay.").at_least(0);
  f.add("optim.nesterov", &c.optim.nesterov, "Nesterov momentum.");
  f.add("optim.epochs", &c.optim.epochs, "Training epochs.").at_least(1);
  f.add("optim.warmup_epochs", &c.optim.warmup_epochs, "Linear warm-up epochs.").at_least(0);
  f.add("optim.schedule", &c.optim.schedule,
        "cosine: per-iteration linear warm-up from 0, then cosine; reference: one lr per epoch "
        "as the official script sets it, warm-up from optim.lr to the scaled lr, then the "
        "scaled lr * (1 + cos(pi * epoch / epochs)) / 2.")
      .one_of({"cosine", "reference"});
  f.add("optim.accumulate", &c.optim.accumulate, "Gradient accumulation steps.").at_least(1);
  f.add("optim.clip_grad", &c.optim.clip_grad, "Maximum gradient norm; 0 disables clipping.")
      .at_least(0);

  f.add("train.amp", &c.train.amp, "Mixed precision on CUDA (CPU runs float32).")
      .one_of({"bf16", "fp16", "off"});
  f.add("train.channels_last", &c.train.channels_last,
        "channels_last memory format for inputs and conv weights (faster on CUDA and with oneDNN on CPUs).");
  f.add("train.checkpoint_every", &c.train.checkpoint_every,
        "Checkpoint every N steps; 0 only at epoch ends.")
      .at_least(0);
  f.add("train.keep_checkpoints", &c.train.keep_checkpoints, "Periodic checkpoints kept.")
      .at_least(1);
  f.add("train.log_every", &c.train.log_every, "Log a metrics line every N steps.").at_least(1);
  f.add("train.val_every", &c.train.val_every,
        "Zero-shot validation of student and teacher every N epochs; 0 disables.")
      .at_least(0);
  f.add("train.val_every_steps", &c.train.val_every_steps,
        "Zero-shot validation also every N optimiser steps (a curve within short runs); 0 disables.")
      .at_least(0);
  f.add("train.val_limit", &c.train.val_limit,
        "Validate on at most this many images of the validation set, evenly spaced over it (a "
        "quicker curve); 0 uses all of them.")
      .at_least(0);
  f.add("train.max_steps", &c.train.max_steps,
        "Stop after this many optimiser steps in all (a quick look or a smoke test); 0 trains every "
        "epoch. The learning-rate schedule still spans optim.epochs; running again with a larger "
        "value continues.")
      .at_least(0);
  f.add("train.max_nonfinite", &c.train.max_nonfinite,
        "Stop after this many consecutive steps with a NaN or Inf loss (each is skipped).")
      .at_least(1);
  f.add("train.deterministic", &c.train.deterministic,
        "CUDA: deterministic kernels (torch.use_deterministic_algorithms, warn only; cuDNN "
        "deterministic, no autotuning; CUBLAS_WORKSPACE_CONFIG=:4096:8 unless set), so that a run "
        "and its resumed copy end bit-identical on the same GPU. Slower; CPU runs are deterministic "
        "anyway.");
  f.add("train.nonfinite_check", &c.train.nonfinite_check,
        "How a NaN or Inf loss is caught. step: read on the host after every micro-batch (one "
        "device synchronisation each). deferred: the step is skipped on the device (parameters, "
        "momentum and bank unchanged) and the counts are read at log, checkpoint and validation "
        "steps, so the device never waits for the host; a stop signal is then also acted on there "
        "when several processes run. auto: deferred on CUDA, step on a CPU.")
      .one_of({"auto", "step", "deferred"});

  f.add("dist.backend", &c.dist.backend,
        "Collective backend of a multi-process run; auto: nccl on CUDA, gloo on CPU.")
      .one_of({"auto", "gloo", "nccl"});
  f.add("dist.master_addr", &c.dist.master_addr,
        "Rendezvous host (rank 0's address); empty: $MASTER_ADDR, else under Slurm the first "
        "node of $SLURM_JOB_NODELIST.");
  f.add("dist.master_port", &c.dist.master_port, "Rendezvous TCP port; 0: $MASTER_PORT, else 29500.")
      .range(0, 65535);
  f.add("dist.timeout", &c.dist.timeout,
        "Seconds the rendezvous or any collective may wait for the other processes before the "
        "run stops with an error (a rank that died or hangs).")
      .above(0);
  f.add("dist.bucket_mb", &c.dist.bucket_mb, "Size of a gradient all-reduce bucket in MiB.").above(0);
  return f;
}

namespace {

// Checks that involve several keys, after everything is loaded.
std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

void check_consistency(const RunConfig& c, const Origins& origins, const std::string& source) {
  auto where = [&](const std::string& key) {
    auto it = origins.find(key);
    return it == origins.end() ? source : it->second;
  };
  if (c.student.init == "weights" && c.student.weights.empty())
    throw ConfigError(where("student.init") +
                      ": student.weights: required when student.init is weights (expected a "
                      ".pth or .safetensors file)");
  if (c.student.init == "random" && !c.student.weights.empty())
    throw ConfigError(where("student.weights") +
                      ": student.weights is set but student.init is random (expected "
                      "student.init: weights)");
  if (!c.bank.classnames.empty() && !c.bank.class_list.empty())
    throw ConfigError(where("bank.class_list") +
                      ": bank.class_list: set either bank.classnames or bank.class_list, not both");
  if (!c.bank.templates.empty() && !c.bank.template_list.empty())
    throw ConfigError(
        where("bank.template_list") +
        ": bank.template_list: set either bank.templates or bank.template_list, not both");
  for (const auto& t : c.bank.template_list) {
    const auto at = t.find("{}");
    if (at == std::string::npos || t.find("{}", at + 2) != std::string::npos)
      throw ConfigError(where("bank.template_list") + ": bank.template_list: template '" + t +
                        "' must contain exactly one {} for the class name");
  }
  const auto check_pair = [&](const std::vector<double>& v, const char* key, double lo, double hi,
                              const char* bounds) {
    if (v.size() != 2 || !(v[0] >= lo) || !(v[1] <= hi) || !(v[0] <= v[1]))
      throw ConfigError(where(key) + ": " + key + ": expected [min, max] with " + bounds);
  };
  check_pair(c.data.crop_scale, "data.crop_scale", 1e-6, 1.0, "0 < min <= max <= 1");
  check_pair(c.data.crop_ratio, "data.crop_ratio", 1e-3, 1e3, "0.001 <= min <= max <= 1000");
  check_pair(c.data.blur_sigma, "data.blur_sigma", 1e-3, 100.0, "0.001 <= min <= max <= 100");
  if (c.data.jitter.size() != 4 || c.data.jitter[0] < 0 || c.data.jitter[1] < 0 ||
      c.data.jitter[2] < 0 || c.data.jitter[3] < 0 || c.data.jitter[3] > 0.5)
    throw ConfigError(where("data.jitter") +
                      ": data.jitter: expected [brightness, contrast, saturation, hue], each >= 0, "
                      "hue <= 0.5");
  // The scaled lr (x global batch / 256) and every update are float32 on the device.
  if (c.optim.lr > 1e6)
    throw ConfigError(where("optim.lr") + ": optim.lr: " + format_number(c.optim.lr) +
                      " is above the limit 1e6 (the scaled lr and the updates are float32)");
  if (c.optim.weight_decay > 1e6)
    throw ConfigError(where("optim.weight_decay") + ": optim.weight_decay: " +
                      format_number(c.optim.weight_decay) + " is above the limit 1e6");
  if (c.optim.warmup_epochs > c.optim.epochs)
    throw ConfigError(where("optim.warmup_epochs") +
                      ": optim.warmup_epochs: " + std::to_string(c.optim.warmup_epochs) +
                      " exceeds optim.epochs (" + std::to_string(c.optim.epochs) + ")");
  if (c.data.val_root.empty() && (c.data.dataset == "image_folder" || c.data.dataset == "file_list")) {
    const char* key = c.train.val_every > 0         ? "train.val_every"
                      : c.train.val_every_steps > 0 ? "train.val_every_steps"
                                                    : nullptr;
    if (key)
      throw ConfigError(where(key) + ": data.val_root: required when " + key + " > 0 with an " +
                        c.data.dataset + " dataset (expected the validation set's location)");
  }
}

}  // namespace

LoadedConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  LoadedConfig out;
  FieldSet fields = describe(out.config);
  apply_yaml_file(fields, path, out.origins);
  for (const auto& assignment : overrides) apply_override(fields, assignment, out.origins);
  check_required(fields, out.origins, path);
  check_consistency(out.config, out.origins, path);
  if (out.config.run.name.empty())
    out.config.run.name = std::filesystem::path(path).stem().string();
  return out;
}

std::string to_yaml(const RunConfig& cfg) {
  RunConfig copy = cfg;
  return to_yaml(describe(copy));
}

}  // namespace lgd::config
