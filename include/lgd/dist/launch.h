#pragma once
// How a process learns its place in a multi-process run: from the variables that torchrun,
// Slurm's srun or Open MPI's mpirun set (or `lgd train --nproc N`, which sets torchrun's),
// plus the rendezvous address. No LibTorch here.
#include <functional>
#include <string>
#include <vector>

namespace lgd::dist {

struct LaunchInfo {
  std::string launcher;  // "torchrun" (also --nproc), "slurm", "mpirun", or "" for one process
  int rank = 0, world_size = 1;
  int local_rank = 0, local_world_size = 1;
  std::string master_addr;  // empty when world_size == 1
  int master_port = 0;
  bool multi() const { return world_size > 1; }
};

// What the rendezvous address comes from when the environment does not give it (the
// config's dist.master_addr / dist.master_port; empty / 0: not set).
struct RendezvousDefaults {
  std::string master_addr;
  int master_port = 0;
  std::string addr_source = "dist.master_addr";  // names used in error messages
  std::string port_source = "dist.master_port";
};

using GetEnv = std::function<const char*(const char*)>;

// Reads the launcher's variables through `getenv` (std::getenv by default). ConfigError naming
// the variable for a malformed or inconsistent value (e.g. "RANK: 'x' is not an integer",
// RANK >= WORLD_SIZE, a MASTER_PORT that is not a port number, a missing master address).
// torchrun: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT (the
//   environment wins over the config). Slurm: SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID,
//   SLURM_NTASKS_PER_NODE / SLURM_TASKS_PER_NODE; mpirun: OMPI_COMM_WORLD_RANK, _SIZE,
//   _LOCAL_RANK, _LOCAL_SIZE; for both the address is the config's, else MASTER_ADDR /
//   MASTER_PORT, else (Slurm) the first host of SLURM_JOB_NODELIST, and the port 29500.
LaunchInfo detect_launch(const RendezvousDefaults& defaults, const GetEnv& getenv = {});

// The first host of a Slurm host list: "node[03-05,9],gpu1" -> "node03".
std::string first_slurm_host(const std::string& nodelist);

// Starts `nproc` copies of this executable (/proc/self/exe) with `args` (argv without the
// program name and without --nproc) and torchrun's variables on 127.0.0.1:`port` (0: a free
// port), forwards SIGINT / SIGTERM to them, and waits. When one exits with an error, the
// others get `grace_seconds` to stop on their own before SIGKILL. Returns 0 when all
// succeeded, else the first failure's exit code (128 + signal for a signal).
int run_local_workers(int nproc, const std::vector<std::string>& args, int port, double grace_seconds);

}  // namespace lgd::dist
