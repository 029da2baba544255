// lgd train: distil a teacher bundle into a student, resumable to the step; one process, N
// local processes (--nproc), or one of many started by torchrun, srun or mpirun.
#include <fstream>
#include <iterator>

#include "commands.h"
#include "lgd/core/errors.h"
#include "lgd/dist/launch.h"
#include "lgd/engine/trainer.h"

namespace lgd::cli {

std::vector<std::string> arguments_without_nproc() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  std::size_t start = 0;
  while (start < all.size()) {
    const auto end = all.find('\0', start);
    args.push_back(all.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (args.empty()) throw Error("--nproc: cannot read /proc/self/cmdline");
  std::vector<std::string> out;
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--nproc") {
      ++i;
      continue;
    }
    if (args[i].rfind("--nproc=", 0) == 0) continue;
    out.push_back(args[i]);
  }
  return out;
}

void add_train_command(CLI::App& app, Commands& commands) {
  auto a = std::make_shared<engine::TrainArgs>();
  auto nproc = std::make_shared<int>(0);
  auto* cmd = app.add_subcommand("train", "Distil a teacher bundle into a student (LGD or SEED)");
  cmd->footer(
      "The run directory is <run.output_dir>/<run.name> (default runs/<config stem>): config.yaml\n"
      "(resolved), train.log, metrics.jsonl, TensorBoard events in tb/, checkpoints/ (last.ckpt and\n"
      "the newest step_*.ckpt) and, at the end, student.pth (torchvision keys).\n"
      "Running the same command again resumes from checkpoints/last.ckpt to the exact step.\n"
      "SIGINT / SIGTERM save a checkpoint and exit with 130 / 143.\n"
      "\n"
      "Several processes (data parallel; gloo on CPUs, nccl on GPUs, see the dist.* keys):\n"
      "  one machine:   lgd train --nproc 8 --config x.yaml\n"
      "  torchrun:      torchrun --no-python --nnodes 2 --nproc-per-node 8 --rdzv-backend static \\\n"
      "                   --master-addr node0 --master-port 29500 --node-rank $NODE lgd train --config x.yaml\n"
      "  Slurm:         srun --ntasks-per-node 8 lgd train --config x.yaml   (MASTER_ADDR or dist.master_addr;\n"
      "                 default: the job's first node)\n"
      "  Open MPI:      mpirun -np 16 -x MASTER_ADDR=node0 lgd train --config x.yaml\n"
      "The global batch is data.batch_size x processes x optim.accumulate (or set data.global_batch).\n"
      "Example (Fashion-MNIST from Debian's dataset-fashion-mnist, a teacher with random weights):\n"
      "  /usr/bin/python3 scripts/bench/make_teacher.py teachers/random_r18_32 --trunk resnet18 \\\n"
      "      --embed-dim 256 --image-size 32 --classnames configs/classnames/fashion_mnist.txt\n"
      "  lgd train --config configs/examples/fashion_mnist_cpu.yaml --set optim.epochs=1");
  cmd->add_option("--config", a->config, "Run config (YAML); see docs/CONFIG.md")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--set", a->overrides, "Override a key, e.g. --set optim.lr=0.05 (repeatable)");
  cmd->add_option("--resume", a->resume,
                  "Resume from this checkpoint instead of <run dir>/checkpoints/last.ckpt");
  cmd->add_option("--nproc", *nproc,
                  "Start this many worker processes on this machine (one per GPU, or CPU processes "
                  "sharing the cores) on a free local port, and wait for them")
      ->check(CLI::Range(1, 1024));
  commands.push_back({cmd, [a, nproc] {
                        if (*nproc > 1) return dist::run_local_workers(*nproc, arguments_without_nproc(), 0, 60.0);
                        engine::Trainer trainer(*a);
                        return trainer.run();
                      }});
}

}  // namespace lgd::cli
