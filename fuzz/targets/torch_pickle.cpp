// torch.save files -> read_weights (format detection, LibTorch's zip reader, lgd's unpickler).
// The first byte picks the input's shape: odd, the bytes are the whole file (mutations of
// the zip container); even, the rest is data.pkl inside a well-formed archive that also
// holds four 256-byte storages data/0..3 (mutations reach the unpickler and the tensor-view
// checks instead of stopping at the zip's CRC).
#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>

#include "../fuzz_target.h"
#include "lgd/export/weights_io.h"

LGD_FUZZ_TARGET(torch_pickle) {
  if (size == 0) return;
  std::string path;
  if (data[0] & 1) {
    path = lgd::fuzz::write_scratch("weights.pth", data + 1, size - 1);
  } else {
    path = lgd::fuzz::scratch_dir() + "/archive.pth";
    caffe2::serialize::PyTorchStreamWriter writer(path);
    writer.writeRecord("data.pkl", data + 1, size - 1);
    std::vector<char> storage(256);
    for (std::size_t i = 0; i < storage.size(); ++i) storage[i] = static_cast<char>(i);
    for (int k = 0; k < 4; ++k) writer.writeRecord("data/" + std::to_string(k), storage.data(), storage.size());
    writer.writeRecord("byteorder", "little", 6);
    writer.writeEndOfFile();
  }
  const auto file = lgd::exporting::read_weights(path);
  for (const auto& [name, tensor] : file.tensors) (void)tensor.clone();
}
