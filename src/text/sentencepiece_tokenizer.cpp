#include "lgd/text/sentencepiece_tokenizer.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include "lgd/core/errors.h"
#include "lgd/text/clip_bpe.h"

namespace lgd::text {
namespace {

// The functions of the lgd_sentencepiece module (src/text/sentencepiece_module.cpp).
struct Module {
  void* (*load)(const char*, char*, std::size_t) = nullptr;
  void (*free)(void*) = nullptr;
  int (*piece_size)(void*) = nullptr;
  long (*encode)(void*, const char*, std::size_t, int*, std::size_t, char*, std::size_t) = nullptr;
  long (*decode)(void*, const int*, std::size_t, char*, std::size_t, char*, std::size_t) = nullptr;
};

const Module& module() {
  static Module m;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("LGD_SENTENCEPIECE_MODULE");
    const std::string path = env && *env ? env : LGD_SENTENCEPIECE_MODULE_PATH;
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!handle)
      throw IoError(path + ": cannot load lgd's SentencePiece module (" + dlerror() +
                    "); set LGD_SENTENCEPIECE_MODULE to its path");
    m.load = reinterpret_cast<decltype(m.load)>(dlsym(handle, "lgd_sp_load"));
    m.free = reinterpret_cast<decltype(m.free)>(dlsym(handle, "lgd_sp_free"));
    m.piece_size = reinterpret_cast<decltype(m.piece_size)>(dlsym(handle, "lgd_sp_piece_size"));
    m.encode = reinterpret_cast<decltype(m.encode)>(dlsym(handle, "lgd_sp_encode"));
    m.decode = reinterpret_cast<decltype(m.decode)>(dlsym(handle, "lgd_sp_decode"));
    if (!m.load || !m.free || !m.piece_size || !m.encode || !m.decode)
      throw IoError(path + ": not lgd's SentencePiece module (symbols missing)");
  });
  return m;
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_path,
                                               SentencePieceOptions options)
    : options_(options) {
  char error[512] = {0};
  processor_ = module().load(model_path.c_str(), error, sizeof error);
  if (!processor_)
    throw IoError(model_path + ": cannot load the SentencePiece model (" + error + ")");
  const std::int64_t size = vocab_size();
  for (auto [name, id] : {std::pair{"bos_id", options.bos_id}, std::pair{"eos_id", options.eos_id},
                          std::pair{"pad_id", options.pad_id}}) {
    if (id >= size)
      throw IoError(model_path + ": " + name + " " + std::to_string(id) +
                    " is outside the vocabulary of " + std::to_string(size) + " pieces");
  }
}

SentencePieceTokenizer::~SentencePieceTokenizer() {
  if (processor_) module().free(processor_);
}

std::int64_t SentencePieceTokenizer::vocab_size() const { return module().piece_size(processor_); }

std::vector<std::int64_t> SentencePieceTokenizer::encode(const std::string& text) const {
  const std::string input = options_.lower_case ? unicode_lower(text) : text;
  std::vector<int> ids(input.size() + 16);
  char error[512] = {0};
  long n = module().encode(processor_, input.data(), input.size(), ids.data(), ids.size(), error,
                           sizeof error);
  if (n > static_cast<long>(ids.size())) {  // more pieces than bytes + 16: ask again
    ids.resize(n);
    n = module().encode(processor_, input.data(), input.size(), ids.data(), ids.size(), error,
                        sizeof error);
  }
  if (n < 0) throw UsageError("cannot tokenize '" + text + "': " + error);
  return std::vector<std::int64_t>(ids.begin(), ids.begin() + n);
}

std::string SentencePieceTokenizer::decode(const std::vector<std::int64_t>& ids) const {
  std::vector<int> pieces;
  for (std::int64_t id : ids) {
    if (id == options_.bos_id || id == options_.eos_id || id == options_.pad_id) continue;
    if (id < 0 || id >= vocab_size())
      throw UsageError("token id " + std::to_string(id) + " is outside the vocabulary");
    pieces.push_back(static_cast<int>(id));
  }
  std::string text(4 * pieces.size() + 64, '\0');
  char error[512] = {0};
  long n = module().decode(processor_, pieces.data(), pieces.size(), text.data(), text.size(),
                           error, sizeof error);
  if (n > static_cast<long>(text.size())) {
    text.resize(n);
    n = module().decode(processor_, pieces.data(), pieces.size(), text.data(), text.size(), error,
                        sizeof error);
  }
  if (n < 0) throw UsageError(std::string("cannot decode token ids: ") + error);
  text.resize(n);
  return text;
}

std::vector<std::int64_t> SentencePieceTokenizer::tokenize(const std::string& text,
                                                           std::int64_t context_length,
                                                           Overflow overflow) const {
  return frame_tokens(text, encode(text), options_.bos_id, options_.eos_id, options_.pad_id,
                      context_length, overflow);
}

}  // namespace lgd::text
