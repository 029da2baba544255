#pragma once
// A progress line for long loops: on a terminal, "\r<label> done/total pct ETA" redrawn at
// most four times a second on stderr; elsewhere a log line at every tenth of the way.
#include <chrono>
#include <cstdint>
#include <string>

namespace lgd {

// "m:ss" or "h:mm:ss"; "--:--" for a negative, NaN or absurd value.
std::string format_duration(double seconds);

class Progress {
 public:
  Progress(std::string label, std::int64_t total);
  ~Progress();  // clears the line
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void update(std::int64_t done);
  void finish();  // clears the terminal line (idempotent)
  double elapsed() const;

 private:
  std::string label_;
  std::int64_t total_;
  bool tty_;
  bool shown_ = false;
  int logged_tenths_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// A line redrawn in place on a terminal (stderr), for a loop that logs its own lines
// besides (lgd train's "epoch e/E step s/S pct ETA"); nothing when stderr is not a terminal.
class StatusLine {
 public:
  StatusLine();
  bool tty() const { return tty_; }
  // On a terminal, when the line was last drawn more than a quarter of a second ago.
  bool due() const;
  void draw(const std::string& text);
  void clear();  // before any other output to stderr (idempotent)

 private:
  bool tty_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace lgd
