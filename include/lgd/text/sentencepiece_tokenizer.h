#pragma once
// SentencePiece tokenizers (SigLIP-style and multilingual text encoders), with the special
// ids and lower-casing that the teacher manifest states. libsentencepiece is reached through
// a module opened with dlopen (src/text/sentencepiece_module.cpp says why).
#include <cstdint>
#include <string>

#include "lgd/text/tokenizer.h"

namespace lgd::text {

struct SentencePieceOptions {
  std::int64_t bos_id = -1;  // prepended when >= 0
  std::int64_t eos_id = -1;  // appended when >= 0
  std::int64_t pad_id = 0;   // fills up to the context length
  bool lower_case = false;   // lower-case the text before encoding
};

class SentencePieceTokenizer : public Tokenizer {
 public:
  // IoError naming `model_path` when it cannot be loaded.
  SentencePieceTokenizer(const std::string& model_path, SentencePieceOptions options);
  ~SentencePieceTokenizer() override;
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  std::vector<std::int64_t> tokenize(const std::string& text, std::int64_t context_length,
                                     Overflow overflow = Overflow::kError) const override;
  // Detokenised text; bos, eos and pad ids dropped.
  std::string decode(const std::vector<std::int64_t>& ids) const override;
  // Piece ids of `text` without special tokens.
  std::vector<std::int64_t> encode(const std::string& text) const;
  std::int64_t vocab_size() const;

 private:
  void* processor_ = nullptr;  // owned, from the lgd_sentencepiece module
  SentencePieceOptions options_;
};

}  // namespace lgd::text
