#include "lgd/core/progress.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>

namespace lgd {

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e8) return "--:--";
  const auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
  return buf;
}

Progress::Progress(std::string label, std::int64_t total)
    : label_(std::move(label)),
      total_(total > 0 ? total : 1),
      tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_ - std::chrono::seconds(1)) {}

Progress::~Progress() { finish(); }

double Progress::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(std::int64_t done) {
  const auto now = std::chrono::steady_clock::now();
  const double frac = static_cast<double>(done) / static_cast<double>(total_);
  const double el = elapsed();
  const double eta = done > 0 ? el / frac - el : -1;
  if (tty_) {
    if (std::chrono::duration<double>(now - last_draw_).count() < 0.25 && done < total_) return;
    std::fprintf(stderr, "\r\033[K%s %lld/%lld  %.1f%%  ETA %s", label_.c_str(),
                 static_cast<long long>(done), static_cast<long long>(total_), 100.0 * frac,
                 format_duration(eta).c_str());
    std::fflush(stderr);
    shown_ = true;
    last_draw_ = now;
  } else {
    const int tenths = static_cast<int>(frac * 10);
    if (tenths > logged_tenths_ && done < total_) {
      logged_tenths_ = tenths;
      spdlog::info("{} {}/{} ({:.0f}%), ETA {}", label_, done, total_, 100.0 * frac, format_duration(eta));
    }
  }
}

void Progress::finish() {
  if (shown_) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    shown_ = false;
  }
}

StatusLine::StatusLine()
    : tty_(isatty(STDERR_FILENO) != 0), last_draw_(std::chrono::steady_clock::now() - std::chrono::seconds(1)) {}

bool StatusLine::due() const {
  return tty_ && std::chrono::duration<double>(std::chrono::steady_clock::now() - last_draw_).count() > 0.25;
}

void StatusLine::draw(const std::string& text) {
  if (!tty_) return;
  std::fprintf(stderr, "\r\033[K%s", text.c_str());
  std::fflush(stderr);
  shown_ = true;
  last_draw_ = std::chrono::steady_clock::now();
}

void StatusLine::clear() {
  if (!shown_) return;
  std::fputs("\r\033[K", stderr);
  shown_ = false;
}

}  // namespace lgd
