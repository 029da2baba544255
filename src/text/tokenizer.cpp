#include "lgd/text/tokenizer.h"

#include "lgd/core/errors.h"

namespace lgd::text {

std::vector<std::int64_t> frame_tokens(const std::string& text,
                                       const std::vector<std::int64_t>& body,
                                       std::int64_t start_id, std::int64_t end_id,
                                       std::int64_t pad_id, std::int64_t context_length,
                                       Overflow overflow) {
  std::vector<std::int64_t> ids;
  ids.reserve(body.size() + 2);
  if (start_id >= 0) ids.push_back(start_id);
  ids.insert(ids.end(), body.begin(), body.end());
  if (end_id >= 0) ids.push_back(end_id);
  if (static_cast<std::int64_t>(ids.size()) > context_length) {
    if (overflow == Overflow::kError)
      throw UsageError("text '" + text + "' is " + std::to_string(ids.size()) +
                       " tokens long, more than the context length " +
                       std::to_string(context_length));
    ids.resize(context_length);
    if (end_id >= 0) ids.back() = end_id;
  }
  ids.resize(context_length, pad_id);
  return ids;
}

}  // namespace lgd::text
