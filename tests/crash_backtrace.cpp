// A crashing test case prints where it crashed: on SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGABRT
// the raw stack (glibc's backtrace, symbol names thanks to -rdynamic) goes to stderr, which
// ctest --output-on-failure shows, before the signal's default action ends the process.
#include <execinfo.h>
#include <unistd.h>

#include <csignal>

namespace {

void print_backtrace(int sig) {
  static const char header[] = "\nlgd_tests: fatal signal; backtrace:\n";
  (void)!::write(STDERR_FILENO, header, sizeof header - 1);
  void* frames[64];
  const int n = ::backtrace(frames, 64);
  ::backtrace_symbols_fd(frames, n, STDERR_FILENO);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

const bool installed = [] {
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) std::signal(sig, print_backtrace);
  return true;
}();

}  // namespace
