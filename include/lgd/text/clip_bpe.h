#pragma once
// OpenAI CLIP's byte-level BPE tokenizer, reproduced: text cleaning (HTML unescape twice,
// whitespace collapse, Unicode lower-casing), CLIP's pre-tokenisation pattern with Unicode
// letter and number classes (PCRE2), byte-to-unicode mapping and BPE over the merges of the
// gzip vocabulary file (bpe_simple_vocab_16e6.txt.gz).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lgd/text/tokenizer.h"

namespace lgd::text {

class ClipBpeTokenizer : public Tokenizer {
 public:
  // Reads the merges file (gzip or plain text): a header line, then "a b" merges; the first
  // `merges` of them are used (48894 for CLIP's vocabulary of 49408).
  explicit ClipBpeTokenizer(const std::string& vocab_path, int merges = 48894);
  ~ClipBpeTokenizer();
  ClipBpeTokenizer(const ClipBpeTokenizer&) = delete;
  ClipBpeTokenizer& operator=(const ClipBpeTokenizer&) = delete;

  // Token ids of `text` without start and end tokens.
  std::vector<std::int64_t> encode(const std::string& text) const;

  // [start] + encode(text) + [end], zero-padded to `context_length`. Overlong text is an
  // error (naming the text) or truncated with the last token forced to the end token.
  std::vector<std::int64_t> tokenize(const std::string& text, std::int64_t context_length,
                                     Overflow overflow = Overflow::kError) const override;

  // CLIP's decode: byte symbols back to UTF-8, "</w>" read as a space; start, end and
  // trailing padding dropped.
  std::string decode(const std::vector<std::int64_t>& ids) const override;

  std::int64_t start_id() const;
  std::int64_t end_id() const;
  std::int64_t vocab_size() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// CLIP's text normalisation: HTML entities unescaped twice, runs of whitespace collapsed to
// one space, leading and trailing whitespace removed, lower-cased (Unicode simple mapping).
std::string clip_clean_text(const std::string& text);

// Unicode lower-casing (simple case mapping) of UTF-8 text.
std::string unicode_lower(const std::string& text);

}  // namespace lgd::text
