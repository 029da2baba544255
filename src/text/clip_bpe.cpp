#include "lgd/text/clip_bpe.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <wctype.h>
#include <zlib.h>

#include <climits>
#include <clocale>
#include <mutex>
#include <unordered_map>

#include "lgd/core/errors.h"

namespace lgd::text {
namespace {

constexpr const char* kStartToken = "<|startoftext|>";
constexpr const char* kEndToken = "<|endoftext|>";

// CLIP's pre-tokenisation pattern (regex module, IGNORECASE), for PCRE2 with UTF + UCP.
constexpr const char* kPattern =
    R"(<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+)";

std::string utf8(char32_t c) {
  std::string out;
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
  return out;
}

// Decodes UTF-8; invalid bytes become U+FFFD, as Python's errors="replace".
std::u32string decode_utf8(const std::string& s) {
  std::u32string out;
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    int len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) {
      out += U'\uFFFD';
      ++i;
      continue;
    }
    char32_t c = len == 1 ? b : b & (0x7F >> len);
    bool ok = true;
    for (int k = 1; k < len; ++k) {
      const auto cont = static_cast<unsigned char>(s[i + k]);
      ok = ok && (cont & 0xC0) == 0x80;
      c = (c << 6) | (cont & 0x3F);
    }
    out += ok ? c : U'\uFFFD';
    i += ok ? len : 1;
  }
  return out;
}

std::string encode_utf8(const std::u32string& s) {
  std::string out;
  for (char32_t c : s) out += utf8(c);
  return out;
}

// Python's str.isspace().
bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// HTML character references: numeric (&#38; &#x26;) and the common named ones.
std::string html_unescape(const std::string& s) {
  static const std::pair<const char*, char32_t> kNamed[] = {
      {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}, {"nbsp", 0xA0}};
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    const std::size_t semi = s.find(';', i);
    if (semi != std::string::npos && semi - i <= 10) {
      const std::string ref = s.substr(i + 1, semi - i - 1);
      char32_t c = 0;
      if (ref.size() > 1 && ref[0] == '#') {
        const bool hex = ref[1] == 'x' || ref[1] == 'X';
        const std::string digits = ref.substr(hex ? 2 : 1);
        char* end = nullptr;
        const unsigned long v = std::strtoul(digits.c_str(), &end, hex ? 16 : 10);
        if (!digits.empty() && *end == '\0' && v > 0 && v <= 0x10FFFF) c = static_cast<char32_t>(v);
      } else {
        for (const auto& [name, value] : kNamed)
          if (ref == name) c = value;
      }
      if (c) {
        out += utf8(c);
        i = semi;
        continue;
      }
    }
    out += '&';
  }
  return out;
}

locale_t utf8_locale() {
  static locale_t locale = [] {
    locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
    return l ? l : newlocale(LC_CTYPE_MASK, "en_US.UTF-8", static_cast<locale_t>(0));
  }();
  return locale;
}

// bytes_to_unicode(): printable bytes map to themselves, the others to 256 + n.
std::vector<std::string> byte_symbols() {
  std::vector<std::string> symbols(256);
  std::vector<bool> printable(256, false);
  for (int b = '!'; b <= '~'; ++b) printable[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
  int n = 0;
  for (int b = 0; b < 256; ++b) symbols[b] = utf8(printable[b] ? b : 256 + n++);
  return symbols;
}

// The order of bytes_to_unicode().values(): printable bytes ascending, then the rest.
std::vector<int> byte_order() {
  std::vector<int> order;
  auto printable = [](int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
  };
  for (int b = 0; b < 256; ++b)
    if (printable(b)) order.push_back(b);
  for (int b = 0; b < 256; ++b)
    if (!printable(b)) order.push_back(b);
  return order;
}

std::string read_maybe_gzip(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (!file) throw IoError(path + ": cannot open the BPE vocabulary");
  std::string out;
  char buffer[1 << 16];
  int n = 0;
  while ((n = gzread(file, buffer, sizeof buffer)) > 0) out.append(buffer, n);
  int err = 0;
  const char* message = gzerror(file, &err);
  gzclose(file);
  if (n < 0 || (err != Z_OK && err != Z_STREAM_END))
    throw IoError(path + ": corrupt BPE vocabulary (" + message + ")");
  return out;
}

}  // namespace

std::string unicode_lower(const std::string& text) {
  std::u32string decoded = decode_utf8(text);
  for (auto& c : decoded)
    c = static_cast<char32_t>(::towlower_l(static_cast<wint_t>(c), utf8_locale()));
  return encode_utf8(decoded);
}

std::string clip_clean_text(const std::string& text) {
  const std::u32string decoded = decode_utf8(html_unescape(html_unescape(text)));
  std::u32string out;
  bool pending_space = false;
  for (char32_t c : decoded) {
    if (is_space(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += U' ';
    pending_space = false;
    out += static_cast<char32_t>(::towlower_l(static_cast<wint_t>(c), utf8_locale()));
  }
  return encode_utf8(out);
}

struct ClipBpeTokenizer::State {
  std::vector<std::string> byte_symbol;        // byte -> symbol (UTF-8)
  std::unordered_map<std::string, int> ranks;  // "a b" -> merge rank
  std::unordered_map<std::string, std::int64_t> encoder;
  std::vector<std::string> decoder;                        // id -> token
  std::unordered_map<std::string, unsigned char> byte_of;  // symbol -> byte
  pcre2_code* pattern = nullptr;
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<std::int64_t>> cache;

  ~State() { pcre2_code_free(pattern); }

  // BPE of one pre-token (already mapped to byte symbols) -> ids.
  std::vector<std::int64_t> bpe(const std::vector<std::string>& symbols) const {
    std::vector<std::string> word = symbols;
    word.back() += "</w>";
    while (word.size() > 1) {
      int best = INT_MAX;
      std::size_t best_at = 0;
      for (std::size_t i = 0; i + 1 < word.size(); ++i) {
        auto it = ranks.find(word[i] + " " + word[i + 1]);
        if (it != ranks.end() && it->second < best) {
          best = it->second;
          best_at = i;
        }
      }
      if (best == INT_MAX) break;
      const std::string first = word[best_at], second = word[best_at + 1];
      std::vector<std::string> merged;
      for (std::size_t i = 0; i < word.size();) {
        if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
          merged.push_back(first + second);
          i += 2;
        } else {
          merged.push_back(word[i++]);
        }
      }
      word = std::move(merged);
    }
    std::vector<std::int64_t> ids;
    for (const auto& piece : word) ids.push_back(encoder.at(piece));
    return ids;
  }
};

ClipBpeTokenizer::ClipBpeTokenizer(const std::string& vocab_path, int merges)
    : state_(std::make_unique<State>()) {
  const std::string text = read_maybe_gzip(vocab_path);
  state_->byte_symbol = byte_symbols();
  std::vector<std::string> vocab;
  for (int b : byte_order()) vocab.push_back(state_->byte_symbol[b]);
  for (int b : byte_order()) vocab.push_back(state_->byte_symbol[b] + "</w>");

  std::size_t pos = text.find('\n');  // skip the header line
  if (pos == std::string::npos) throw IoError(vocab_path + ": no merges in the BPE vocabulary");
  for (int rank = 0; rank < merges; ++rank) {
    const std::size_t begin = pos + 1;
    pos = text.find('\n', begin);
    const std::string line =
        text.substr(begin, pos == std::string::npos ? std::string::npos : pos - begin);
    const std::size_t space = line.find(' ');
    if (line.empty() || space == std::string::npos ||
        line.find(' ', space + 1) != std::string::npos)
      throw IoError(vocab_path + ": merge " + std::to_string(rank + 1) + " is '" + line +
                    "', expected two symbols separated by one space (" + std::to_string(merges) +
                    " merges expected)");
    state_->ranks.emplace(line, rank);
    vocab.push_back(line.substr(0, space) + line.substr(space + 1));
    if (pos == std::string::npos && rank + 1 < merges)
      throw IoError(vocab_path + ": only " + std::to_string(rank + 1) + " merges, expected " +
                    std::to_string(merges));
  }
  vocab.push_back(kStartToken);
  vocab.push_back(kEndToken);
  for (std::size_t i = 0; i < vocab.size(); ++i)
    state_->encoder.emplace(vocab[i], static_cast<std::int64_t>(i));
  state_->decoder = vocab;
  for (int b = 0; b < 256; ++b)
    state_->byte_of[state_->byte_symbol[b]] = static_cast<unsigned char>(b);

  int error = 0;
  PCRE2_SIZE offset = 0;
  state_->pattern = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPattern), PCRE2_ZERO_TERMINATED,
                                  PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS, &error, &offset, nullptr);
  if (!state_->pattern) throw Error("internal error: CLIP pattern does not compile");
}

ClipBpeTokenizer::~ClipBpeTokenizer() = default;

std::int64_t ClipBpeTokenizer::start_id() const { return state_->encoder.at(kStartToken); }
std::int64_t ClipBpeTokenizer::end_id() const { return state_->encoder.at(kEndToken); }
std::int64_t ClipBpeTokenizer::vocab_size() const {
  return static_cast<std::int64_t>(state_->encoder.size());
}

std::vector<std::int64_t> ClipBpeTokenizer::encode(const std::string& text) const {
  const std::string clean = clip_clean_text(text);
  std::vector<std::int64_t> ids;
  pcre2_match_data* match = pcre2_match_data_create_from_pattern(state_->pattern, nullptr);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(clean.data());
  PCRE2_SIZE start = 0;
  while (start < clean.size()) {
    const int rc = pcre2_match(state_->pattern, subject, clean.size(), start, 0, match, nullptr);
    if (rc < 0) break;
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
    const std::string token = clean.substr(ovector[0], ovector[1] - ovector[0]);
    start = ovector[1] > ovector[0] ? ovector[1] : ovector[0] + 1;
    if (token == kStartToken || token == kEndToken) {
      ids.push_back(state_->encoder.at(token));
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(state_->cache_mutex);
      if (auto it = state_->cache.find(token); it != state_->cache.end()) {
        ids.insert(ids.end(), it->second.begin(), it->second.end());
        continue;
      }
    }
    std::vector<std::string> symbols;
    for (unsigned char b : token) symbols.push_back(state_->byte_symbol[b]);
    const auto pieces = state_->bpe(symbols);
    ids.insert(ids.end(), pieces.begin(), pieces.end());
    std::lock_guard<std::mutex> lock(state_->cache_mutex);
    if (state_->cache.size() < 100000) state_->cache.emplace(token, pieces);
  }
  pcre2_match_data_free(match);
  return ids;
}

std::string ClipBpeTokenizer::decode(const std::vector<std::int64_t>& ids) const {
  std::size_t end = ids.size();
  while (end > 0 && ids[end - 1] == 0) --end;  // padding after the end token
  std::string symbols;
  for (std::size_t i = 0; i < end; ++i) {
    const std::int64_t id = ids[i];
    if (id == start_id() || id == end_id()) continue;
    if (id < 0 || id >= vocab_size())
      throw UsageError("token id " + std::to_string(id) + " is outside the vocabulary");
    symbols += state_->decoder[id];
  }
  std::string out;
  for (std::size_t i = 0; i < symbols.size();) {
    if (symbols.compare(i, 4, "</w>") == 0) {
      out += ' ';
      i += 4;
      continue;
    }
    const auto b = static_cast<unsigned char>(symbols[i]);
    const std::size_t len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : 4;
    out += static_cast<char>(state_->byte_of.at(symbols.substr(i, len)));
    i += len;
  }
  return out;
}

std::vector<std::int64_t> ClipBpeTokenizer::tokenize(const std::string& text,
                                                     std::int64_t context_length,
                                                     Overflow overflow) const {
  return frame_tokens(text, encode(text), start_id(), end_id(), /*pad_id=*/0, context_length,
                      overflow);
}

}  // namespace lgd::text
