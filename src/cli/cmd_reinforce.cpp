// lgd reinforce: the teacher's embeddings of K training views of every image, computed once
// into a cache folder that `lgd train --set teacher.cache=DIR` reads instead of running the
// teacher; one process, N local processes (--nproc), or one of many (torchrun, srun, mpirun).
#include "commands.h"
#include "lgd/dist/launch.h"
#include "lgd/engine/embedding_cache.h"

namespace lgd::cli {

void add_reinforce_command(CLI::App& app, Commands& commands) {
  auto a = std::make_shared<engine::ReinforceArgs>();
  auto nproc = std::make_shared<int>(0);
  auto* cmd = app.add_subcommand(
      "reinforce", "Run the teacher once over K training views of every image and cache its embeddings");
  cmd->footer(
      "View k of image i is the view lgd train draws at epoch k for image i (data.seed, the\n"
      "training view of data.*); lgd train --set teacher.cache=DIR then skips the teacher's forward\n"
      "and takes view e mod K at epoch e. With K >= optim.epochs and --dtype float32 the run is\n"
      "bit-identical to one without the cache (CPU). One cache serves every student, method,\n"
      "learning rate and run.seed of the same teacher, data, view and data.seed.\n"
      "DIR gets embeddings.bin ([K, N, D] raw, numpy.memmap-readable) and manifest.json, written\n"
      "last. Running the same command again continues an interrupted cache. Several processes:\n"
      "--nproc N, torchrun, srun or mpirun as for lgd train; each takes every N-th image.\n"
      "Example (after the lgd train example's make_teacher.py):\n"
      "  lgd reinforce --config configs/examples/fashion_mnist_cpu.yaml --views 2 --out runs/fmnist_cache\n"
      "  lgd train --config configs/examples/fashion_mnist_cpu.yaml --set optim.epochs=2 \\\n"
      "      --set teacher.cache=runs/fmnist_cache --set run.name=fmnist_cached");
  cmd->add_option("--config", a->config, "Run config (YAML): its teacher, data and view")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--set", a->overrides, "Override a key, e.g. --set data.seed=1 (repeatable)");
  cmd->add_option("--views", a->views, "K: views of every image (epochs the cache covers exactly)")
      ->required()
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--out", a->out, "Cache folder to write (or to continue)")->required();
  cmd->add_option("--dtype", a->dtype, "Stored precision")
      ->capture_default_str()
      ->check(CLI::IsMember({"float16", "bfloat16", "float32"}));
  cmd->add_option("--nproc", *nproc, "Start this many worker processes on this machine and wait for them")
      ->check(CLI::Range(1, 1024));
  commands.push_back({cmd, [a, nproc] {
                        if (*nproc > 1) return dist::run_local_workers(*nproc, arguments_without_nproc(), 0, 60.0);
                        return engine::reinforce(*a);
                      }});
}

}  // namespace lgd::cli
