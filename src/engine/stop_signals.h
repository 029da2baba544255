#pragma once
// SIGINT / SIGTERM during `lgd train` and `lgd reinforce`: a flag the loop checks after every
// step or batch, so that the run saves where it is and exits 130 / 143. Private to src/engine.
#include <atomic>
#include <csignal>

namespace lgd::engine::detail {

// The handler is installed once per run and resets itself, so a second signal ends the process at once.
inline std::atomic<int> g_stop_signal{0};
extern "C" inline void on_stop_signal(int sig) { g_stop_signal.store(sig); }

class StopSignals {
 public:
  StopSignals() {
    g_stop_signal.store(0);
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  static int pending() { return g_stop_signal.load(); }

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

}  // namespace lgd::engine::detail
