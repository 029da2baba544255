// lgd train: distil a teacher bundle into a student, resumable to the step.
#include "commands.h"
#include "lgd/engine/trainer.h"

namespace lgd::cli {

void add_train_command(CLI::App& app, Commands& commands) {
  auto a = std::make_shared<engine::TrainArgs>();
  auto* cmd = app.add_subcommand("train", "Distil a teacher bundle into a student (LGD or SEED)");
  cmd->footer(
      "The run directory is <run.output_dir>/<run.name> (default runs/<config stem>): config.yaml\n"
      "(resolved), train.log, metrics.jsonl, TensorBoard events in tb/, checkpoints/ (last.ckpt and\n"
      "the newest step_*.ckpt) and, at the end, student.pth (torchvision keys).\n"
      "Running the same command again resumes from checkpoints/last.ckpt to the exact step.\n"
      "SIGINT / SIGTERM save a checkpoint and exit with 130 / 143.\n"
      "Example:\n"
      "  lgd train --config configs/examples/resnet18_minimal.yaml --set optim.epochs=10");
  cmd->add_option("--config", a->config, "Run config (YAML); see docs/CONFIG.md")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--set", a->overrides, "Override a key, e.g. --set optim.lr=0.05 (repeatable)");
  cmd->add_option("--resume", a->resume,
                  "Resume from this checkpoint instead of <run dir>/checkpoints/last.ckpt");
  commands.push_back({cmd, [a] {
                        engine::Trainer trainer(*a);
                        return trainer.run();
                      }});
}

}  // namespace lgd::cli
