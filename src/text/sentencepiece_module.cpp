// A loadable module around libsentencepiece with a C interface. lgd opens it with
// dlopen(RTLD_LOCAL | RTLD_DEEPBIND): Debian's libsentencepiece embeds its own protobuf-lite
// (3.14), which must not meet the libprotobuf (3.21) that Debian's LibTorch loads into the
// global symbol scope.
#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

void set_error(char* error, std::size_t size, const std::string& message) {
  if (!error || size == 0) return;
  std::strncpy(error, message.c_str(), size - 1);
  error[size - 1] = '\0';
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) void* lgd_sp_load(const char* path, char* error,
                                                         std::size_t error_size) {
  auto* processor = new sentencepiece::SentencePieceProcessor();
  const auto status = processor->Load(path);
  if (!status.ok()) {
    set_error(error, error_size, status.ToString());
    delete processor;
    return nullptr;
  }
  return processor;
}

__attribute__((visibility("default"))) void lgd_sp_free(void* handle) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(handle);
}

__attribute__((visibility("default"))) int lgd_sp_piece_size(void* handle) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle)->GetPieceSize();
}

// Writes at most `capacity` ids; returns the number of ids of the text, or -1 on error.
__attribute__((visibility("default"))) long lgd_sp_encode(void* handle, const char* text,
                                                          std::size_t length, int* ids,
                                                          std::size_t capacity, char* error,
                                                          std::size_t error_size) {
  std::vector<int> out;
  const auto status = static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Encode(
      std::string(text, length), &out);
  if (!status.ok()) {
    set_error(error, error_size, status.ToString());
    return -1;
  }
  for (std::size_t i = 0; i < out.size() && i < capacity; ++i) ids[i] = out[i];
  return static_cast<long>(out.size());
}

// Writes at most `capacity` bytes; returns the length of the text, or -1 on error.
__attribute__((visibility("default"))) long lgd_sp_decode(void* handle, const int* ids,
                                                          std::size_t count, char* text,
                                                          std::size_t capacity, char* error,
                                                          std::size_t error_size) {
  std::string out;
#ifdef ABSL_NAMESPACE_BEGIN
  // sentencepiece >= 0.2 (declared with Abseil types) takes the ids as a span; its
  // std::vector overload is deprecated.
  const auto status = static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Decode(
      absl::Span<const int>(ids, count), &out);
#else
  const auto status = static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Decode(
      std::vector<int>(ids, ids + count), &out);
#endif
  if (!status.ok()) {
    set_error(error, error_size, status.ToString());
    return -1;
  }
  std::memcpy(text, out.data(), std::min(out.size(), capacity));
  return static_cast<long>(out.size());
}

}  // extern "C"
