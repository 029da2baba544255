#include "lgd/dist/launch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <thread>

#include "lgd/core/errors.h"
#include "lgd/core/logging.h"

extern char** environ;

namespace lgd::dist {
namespace {

constexpr int kDefaultPort = 29500;

std::optional<std::string> read(const GetEnv& getenv, const char* name) {
  const char* v = getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

int parse_int(const std::string& value, const std::string& name) {
  try {
    std::size_t used = 0;
    const long long v = std::stoll(value, &used);
    if (used == value.size() && v >= 0 && v <= 1 << 30) return static_cast<int>(v);
  } catch (const std::exception&) {
  }
  throw ConfigError(name + ": '" + value + "' is not a non-negative integer");
}

int parse_port(const std::string& value, const std::string& name) {
  int port = -1;
  try {
    port = parse_int(value, name);
  } catch (const ConfigError&) {
  }
  if (port < 1 || port > 65535)
    throw ConfigError(name + ": '" + value + "' is not a TCP port (expected 1-65535)");
  return port;
}

// SLURM_TASKS_PER_NODE is e.g. "4(x2),3": the count on the first node is what we can use.
int leading_count(const std::string& value, const std::string& name) {
  std::size_t end = 0;
  while (end < value.size() && std::isdigit(static_cast<unsigned char>(value[end]))) ++end;
  return parse_int(value.substr(0, end), name);
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  // Hosts are separated by commas outside brackets; each bracket group ("03-05,9") stands for
  // its first element.
  std::string host;
  for (std::size_t i = 0; i < nodelist.size(); ++i) {
    const char c = nodelist[i];
    if (c == ',') break;
    if (c != '[') {
      host += c;
      continue;
    }
    const auto close = nodelist.find(']', i);
    if (close == std::string::npos)
      throw ConfigError("SLURM_JOB_NODELIST: unbalanced '[' in '" + nodelist + "'");
    const std::string group = nodelist.substr(i + 1, close - i - 1);
    host += group.substr(0, group.find_first_of(",-"));
    i = close;
  }
  return host;
}

LaunchInfo detect_launch(const RendezvousDefaults& defaults, const GetEnv& getenv_in) {
  const GetEnv getenv = getenv_in ? getenv_in : GetEnv([](const char* n) { return std::getenv(n); });
  LaunchInfo info;
  auto num = [&](const char* name, int fallback) {
    const auto v = read(getenv, name);
    return v ? parse_int(*v, name) : fallback;
  };
  // Each launcher's variables, in the order they are looked for (torchrun's first: they are
  // what `lgd train --nproc` sets, also under Slurm or MPI).
  struct Variables {
    const char *launcher, *rank, *size, *local_rank, *local_size;
  };
  static const Variables kLaunchers[] = {
      {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
      {"mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
       "OMPI_COMM_WORLD_LOCAL_SIZE"},
      {"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", nullptr}};
  const char* rank_var = nullptr;
  const char* size_var = nullptr;
  for (const auto& v : kLaunchers) {
    if (!read(getenv, v.rank) || !read(getenv, v.size)) continue;
    info.launcher = v.launcher;
    rank_var = v.rank;
    size_var = v.size;
    info.rank = num(v.rank, 0);
    info.world_size = num(v.size, 1);
    info.local_rank = num(v.local_rank, info.launcher == "slurm" ? 0 : info.rank);
    if (v.local_size) {
      info.local_world_size = num(v.local_size, info.world_size);
    } else if (auto n = read(getenv, "SLURM_NTASKS_PER_NODE")) {
      info.local_world_size = leading_count(*n, "SLURM_NTASKS_PER_NODE");
    } else if (auto t = read(getenv, "SLURM_TASKS_PER_NODE")) {
      info.local_world_size = leading_count(*t, "SLURM_TASKS_PER_NODE");
    } else {
      info.local_world_size = 1;
    }
    break;
  }
  if (info.launcher.empty() || info.world_size == 1) {
    LaunchInfo single;
    single.launcher = info.launcher;
    return single;
  }
  if (info.world_size < 1) throw ConfigError(std::string(size_var) + ": expected at least 1 process");
  if (info.rank >= info.world_size)
    throw ConfigError(std::string(rank_var) + ": " + std::to_string(info.rank) + " is not below " + size_var +
                      " = " + std::to_string(info.world_size));
  if (info.local_world_size < 1) info.local_world_size = 1;
  if (info.local_rank >= info.local_world_size)
    throw ConfigError("local rank " + std::to_string(info.local_rank) + " is not below the " +
                      std::to_string(info.local_world_size) + " processes per node the launcher reports");

  // The rendezvous address: torchrun always sets it; otherwise the config, then the environment.
  const auto env_addr = read(getenv, "MASTER_ADDR");
  const auto env_port = read(getenv, "MASTER_PORT");
  if (info.launcher == "torchrun") {
    if (!env_addr) throw ConfigError("MASTER_ADDR: not set (RANK and WORLD_SIZE are; expected rank 0's host name or address)");
    if (!env_port) throw ConfigError("MASTER_PORT: not set (RANK and WORLD_SIZE are; expected rank 0's TCP port)");
    info.master_addr = *env_addr;
    info.master_port = parse_port(*env_port, "MASTER_PORT");
    return info;
  }
  if (!defaults.master_addr.empty()) {
    info.master_addr = defaults.master_addr;
  } else if (env_addr) {
    info.master_addr = *env_addr;
  } else if (info.launcher == "slurm") {
    const auto nodes = read(getenv, "SLURM_JOB_NODELIST") ? read(getenv, "SLURM_JOB_NODELIST")
                                                          : read(getenv, "SLURM_NODELIST");
    if (nodes) info.master_addr = first_slurm_host(*nodes);
  }
  if (info.master_addr.empty())
    throw ConfigError(defaults.addr_source + ": no rendezvous address for the " + info.launcher +
                      " launch (set " + defaults.addr_source + " or MASTER_ADDR to rank 0's host)");
  if (defaults.master_port > 0) {
    info.master_port = parse_port(std::to_string(defaults.master_port), defaults.port_source);
  } else if (env_port) {
    info.master_port = parse_port(*env_port, "MASTER_PORT");
  } else {
    info.master_port = kDefaultPort;
  }
  return info;
}

// ---- lgd train --nproc N ----

namespace {

std::atomic<int> g_forward_signal{0};
extern "C" void on_launcher_signal(int sig) { g_forward_signal.store(sig); }

int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw IoError(std::string("--nproc: cannot open a socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    throw IoError("--nproc: cannot find a free port on 127.0.0.1: " + why);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

int run_local_workers(int nproc, const std::vector<std::string>& args, int port, double grace_seconds) {
  if (nproc < 1) throw UsageError("--nproc: expected at least 1 process");
  RendezvousDefaults any;
  any.master_addr = "127.0.0.1";
  const LaunchInfo outer = detect_launch(any);
  if (outer.multi())
    throw UsageError("--nproc: this process is already one of " + std::to_string(outer.world_size) +
                     " started by " + outer.launcher + "; use one launcher or the other");
  if (port == 0) port = free_local_port();
  std::vector<std::string> argv_store{"lgd"};
  argv_store.insert(argv_store.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_store) argv.push_back(a.data());
  argv.push_back(nullptr);

  struct sigaction sa {}, old_int {}, old_term {};
  sa.sa_handler = on_launcher_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  g_forward_signal.store(0);

  const pid_t parent = ::getpid();
  std::vector<pid_t> pids;
  for (int r = 0; r < nproc; ++r) {
    std::vector<std::string> env_store;
    for (char** e = environ; *e; ++e) {
      const std::string kv = *e;
      const auto name = kv.substr(0, kv.find('='));
      if (name == "RANK" || name == "WORLD_SIZE" || name == "LOCAL_RANK" || name == "LOCAL_WORLD_SIZE" ||
          name == "MASTER_ADDR" || name == "MASTER_PORT" || name == "GROUP_RANK")
        continue;
      env_store.push_back(kv);
    }
    for (const auto& kv : {"RANK=" + std::to_string(r), "LOCAL_RANK=" + std::to_string(r),
                           "WORLD_SIZE=" + std::to_string(nproc), "LOCAL_WORLD_SIZE=" + std::to_string(nproc),
                           std::string("GROUP_RANK=0"), std::string("MASTER_ADDR=127.0.0.1"),
                           "MASTER_PORT=" + std::to_string(port)})
      env_store.push_back(kv);
    std::vector<char*> envp;
    for (auto& kv : env_store) envp.push_back(kv.data());
    envp.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) throw IoError(std::string("--nproc: fork failed: ") + std::strerror(errno));
    if (pid == 0) {
      // Own process group, so a terminal's Ctrl-C reaches the workers once, through us; and
      // SIGTERM when the launcher itself dies.
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(1);
      sigaction(SIGINT, &old_int, nullptr);
      sigaction(SIGTERM, &old_term, nullptr);
      ::execve("/proc/self/exe", argv.data(), envp.data());
      std::fprintf(stderr, "lgd: --nproc: cannot start /proc/self/exe: %s\n", std::strerror(errno));
      ::_exit(127);
    }
    pids.push_back(pid);
  }
  spdlog::info("[launch] {} worker processes on 127.0.0.1:{} (pids {}..{})", nproc, port, pids.front(), pids.back());

  using Clock = std::chrono::steady_clock;
  std::vector<bool> done(pids.size(), false);
  int result = 0;
  Clock::time_point failed_at{};
  bool failing = false;  // a worker failed; the others are in their grace period
  std::size_t remaining = pids.size();
  int forwarded = 0;
  while (remaining > 0) {
    if (const int sig = g_forward_signal.exchange(0)) {
      forwarded = sig;
      for (std::size_t i = 0; i < pids.size(); ++i)
        if (!done[i]) ::kill(pids[i], sig);
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      for (std::size_t i = 0; i < pids.size(); ++i) {
        if (pids[i] != pid || done[i]) continue;
        done[i] = true;
        --remaining;
        const int code = exit_code(status);
        if (code != 0 && result == 0) {
          result = code;
          if (!forwarded)
            spdlog::error("[launch] rank {} exited with {}; waiting up to {:.0f} s for the others", i, code,
                          grace_seconds);
          failed_at = Clock::now();
          failing = true;
        }
      }
      continue;
    }
    if (failing && std::chrono::duration<double>(Clock::now() - failed_at).count() > grace_seconds) {
      for (std::size_t i = 0; i < pids.size(); ++i)
        if (!done[i]) {
          spdlog::error("[launch] rank {} still running {:.0f} s after a failure; killing it", i, grace_seconds);
          ::kill(pids[i], SIGKILL);
        }
      failing = false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return result;
}

}  // namespace lgd::dist
