// lgd eval: linear probe (faithful and fast), zero-shot and kNN of a student.
#include <cstdio>

#include "commands.h"
#include "lgd/eval/evaluate.h"

namespace lgd::cli {

void add_eval_command(CLI::App& app, Commands& commands) {
  auto o = std::make_shared<eval::EvalOptions>();
  auto init = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("eval", "Measure a student: linear probe, zero-shot, kNN, fine-tuning");
  cmd->footer(
      "Protocols (--protocol, comma-separated or repeated; run in the order given):\n"
      "  linear       MoCo's linear probe: frozen backbone in eval mode, Linear(F, C) initialised\n"
      "               N(0, 0.01), SGD momentum 0.9, lr --linear-lr x batch/256, x0.1 at each\n"
      "               milestone, RandomResizedCrop + flip views; scored on resize + center crop\n"
      "  linear-fast  the same classifier by L-BFGS on features extracted once (cached in\n"
      "               <out>/cache), weight decay chosen on a held-out 10% of the training set\n"
      "  zero-shot    argmax of 100 * norm(head(f)) . TSB (needs the projection head)\n"
      "  knn          weighted kNN on L2-normalised features (DINO: k 20, temperature 0.07)\n"
      "  finetune     the whole student and a new Linear(F, C) fine-tuned end to end on the\n"
      "               (--subset) labels: SGD Nesterov momentum 0.9, lr --finetune-lr (backbone)\n"
      "               and --finetune-head-lr (classifier) x batch/256, cosine to 0 per step,\n"
      "               BatchNorm training, RandomResizedCrop + flip; resumable: the same command\n"
      "               continues from <out>/finetune/state.safetensors\n"
      "Writes <out>/results.json, <out>/<protocol>_per_class.csv and _confusion.csv, and prints\n"
      "a Markdown table. With a checkpoint, the dataset, image size and normalisation default to\n"
      "the run's. An unreadable image (or one above 89,478,485 pixels, Pillow's decompression-\n"
      "bomb limit) stops the evaluation with its path: scores over a silently smaller set would\n"
      "not compare with published ones.\n"
      "Examples:\n"
      "  lgd eval --checkpoint runs/x/checkpoints/last.ckpt --protocol linear-fast,zero-shot,knn\n"
      "  lgd eval --init random --arch resnet18 --format idx --data /usr/share/datasets/fashion-mnist \\\n"
      "      --image-size 32 --protocol linear-fast,knn --subset 10 --export-classifier cls.pth\n"
      "  lgd eval --init random --arch resnet18 --format idx --data /usr/share/datasets/fashion-mnist \\\n"
      "      --image-size 32 --protocol finetune --subset 1 --finetune-epochs 5 --out ft-r18");
  auto* student = cmd->add_option_group("student", "The student to evaluate (one of)");
  student->add_option("--checkpoint", o->checkpoint, "An lgd training checkpoint (last.ckpt, step_*.ckpt)");
  student->add_option("--weights", o->weights, "Student weights: .pth (torchvision keys) or .safetensors");
  student->add_option("--init", *init, "'random': a randomly initialised baseline")->check(CLI::IsMember({"random"}));
  student->require_option(1);
  cmd->add_option("--arch", o->arch, "Student architecture (default: from the file)");
  cmd->add_option("--seed", o->seed, "Seed of the random init, classifier init, label subset, hold-out split and augmentation")
      ->capture_default_str();
  cmd->add_option("--protocol", o->protocols, "linear, linear-fast, zero-shot, knn, finetune")->delimiter(',')->required();

  cmd->add_option("--format", o->format, "Dataset format: image_folder | file_list | idx | cifar (default: the run's, else image_folder)");
  cmd->add_option("--data", o->data, "Training set the probes and kNN learn from (default: the run's data.root)");
  cmd->add_option("--val-data", o->val_data, "Evaluation set (idx / cifar: default --data with --val-split)");
  cmd->add_option("--train-split", o->train_split, "idx / cifar split to learn from (default train)");
  cmd->add_option("--val-split", o->val_split, "idx / cifar split to score on (default test)");
  cmd->add_option("--classnames", o->classnames, "Class-name file (one per line) for the dataset");
  cmd->add_option("--image-size", o->image_size, "Input size (default: the checkpoint's, else 224)")
      ->check(in_range_or_zero(16, kMaxImageSize));
  cmd->add_option("--mean", o->mean, "Input mean R,G,B (default: the checkpoint's teacher's, else ImageNet's)")->delimiter(',')->expected(3);
  cmd->add_option("--std", o->std, "Input std R,G,B")->delimiter(',')->expected(3);
  cmd->add_option("--batch-size", o->batch_size, "Batch of the feature extraction")->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, kMaxBatch));
  cmd->add_option("--workers", o->workers, "Decode threads (0: one per core)")->capture_default_str()
      ->check(CLI::Range(0, kMaxThreads));
  cmd->add_option("--threads", o->threads, "Intra-op threads (0: all cores)")->capture_default_str()
      ->check(CLI::Range(0, kMaxThreads));
  cmd->add_option("--device", o->device, "auto | cpu | cuda")->capture_default_str();
  cmd->add_option("--subset", o->subset_percent, "Learn from this % of the training labels per class (semi-supervised: 1, 10)")
      ->check(CLI::Range(0.0, 100.0));

  cmd->add_option("--linear-epochs", o->linear_epochs, "linear: epochs")->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{100000}));
  cmd->add_option("--linear-lr", o->linear_lr, "linear: base lr, scaled by batch/256")->capture_default_str()
      ->check(finite_positive());
  cmd->add_option("--linear-batch", o->linear_batch, "linear: batch size")->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, kMaxBatch));
  cmd->add_option("--linear-milestones", o->linear_milestones, "linear: epochs where the lr is multiplied by 0.1")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--linear-weight-decay", o->linear_weight_decay, "linear: weight decay")->capture_default_str()
      ->check(finite_non_negative());
  cmd->add_option("--fast-passes", o->fast_passes, "linear-fast: extra augmented passes over the training set")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1000}));
  cmd->add_option("--fast-weight-decays", o->fast_weight_decays, "linear-fast: weight decays to choose from")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--fast-max-iter", o->fast_max_iter, "linear-fast: L-BFGS iterations per fit")->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1000000}));
  cmd->add_option("--finetune-epochs", o->finetune_epochs, "finetune: epochs")->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{100000}));
  cmd->add_option("--finetune-lr", o->finetune_lr, "finetune: backbone lr, scaled by batch/256")->capture_default_str()
      ->check(finite_positive());
  cmd->add_option("--finetune-head-lr", o->finetune_head_lr, "finetune: classifier lr, scaled by batch/256")
      ->capture_default_str()
      ->check(finite_positive());
  cmd->add_option("--finetune-batch", o->finetune_batch, "finetune: batch size")->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, kMaxBatch));
  cmd->add_option("--finetune-weight-decay", o->finetune_weight_decay, "finetune: weight decay")->capture_default_str()
      ->check(finite_non_negative());
  cmd->add_option("--knn-k", o->knn_k, "knn: neighbours")->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{100000}));
  cmd->add_option("--knn-temperature", o->knn_temperature, "knn: temperature of the vote weights")->capture_default_str()
      ->check(finite_positive());
  cmd->add_option("--bank", o->bank, "zero-shot: a TSB file (lgd bank build)");
  cmd->add_option("--teacher", o->teacher, "zero-shot: build the TSB with this teacher bundle from the dataset's class names");
  cmd->add_option("--templates", o->templates, "zero-shot with --teacher: prompt template file");
  cmd->add_option("--out", o->out, "Output folder")->capture_default_str();
  cmd->add_flag("!--no-cache", o->cache, "Neither read nor write cached features");
  cmd->add_option("--export-classifier", o->export_classifier,
                  "After a linear probe or fine-tuning: backbone + classifier as a torchvision classifier (.pth, "
                  "or .safetensors)");
  commands.push_back({cmd, [o, init] {
                        o->random_init = *init == "random";
                        const auto report = eval::evaluate(*o);
                        std::fputs(eval::format_table(report).c_str(), stdout);
                        std::printf("\nresults: %s/results.json\n", report.out.c_str());
                        return 0;
                      }});
}

}  // namespace lgd::cli
