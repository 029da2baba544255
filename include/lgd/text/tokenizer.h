#pragma once
// The small interface every teacher tokenizer implements.
#include <cstdint>
#include <string>
#include <vector>

namespace lgd::text {

enum class Overflow { kError, kTruncate };

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Token ids of `text` as the text encoder expects them: special tokens added, padded to
  // exactly `context_length`. Overlong text is a UsageError naming the text, or is
  // truncated keeping the end token last.
  virtual std::vector<std::int64_t> tokenize(const std::string& text, std::int64_t context_length,
                                             Overflow overflow) const = 0;
  // The text of `ids`, special and padding tokens dropped (for inspecting prompts).
  virtual std::string decode(const std::vector<std::int64_t>& ids) const = 0;
};

// Frames `body` for a text encoder: [start] + body + [end] (either id skipped when < 0), then
// the overflow rule, then padding with `pad_id` to `context_length`. `text` names the input in
// the error for overlong text.
std::vector<std::int64_t> frame_tokens(const std::string& text,
                                       const std::vector<std::int64_t>& body,
                                       std::int64_t start_id, std::int64_t end_id,
                                       std::int64_t pad_id, std::int64_t context_length,
                                       Overflow overflow);

}  // namespace lgd::text
