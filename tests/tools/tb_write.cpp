// Test helper: writes a TensorBoard event file with known scalars into DIR and prints its path.
//   tb_write DIR    -> loss = 1/(step+1) and lr = 0.1*step for steps 0..9, "a/b c" = -2.5 at 7
#include <cstdio>

#include "lgd/engine/tensorboard.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: tb_write DIR\n");
    return 2;
  }
  try {
    lgd::engine::EventWriter w(argv[1]);
    for (int step = 0; step < 10; ++step) {
      w.scalar("loss", 1.0 / (step + 1), step);
      w.scalar("lr", 0.1 * step, step);
    }
    w.scalar("a/b c", -2.5, 7);
    w.flush();
    std::printf("%s\n", w.path().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tb_write: %s\n", e.what());
    return 1;
  }
  return 0;
}
