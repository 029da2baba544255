#include "lgd/text/clip_bpe.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "lgd/core/errors.h"

namespace lgd::text {
namespace {

namespace fs = std::filesystem;
using Ids = std::vector<std::int64_t>;

fs::path reference_dir() {
  if (const char* env = std::getenv("LGD_REFERENCE_DIR")) return env;
  return fs::path(LGD_SOURCE_DIR) / ".." / "shared" / "reference";
}

// CLIP's real vocabulary against the reference tokenizer's ids.
TEST(ClipBpeConformance, ReferenceTokenIds) {
  const fs::path dir = reference_dir() / "clip";
  if (!fs::exists(dir / "token_ids.tsv")) GTEST_SKIP() << "no reference data at " << dir;
  const ClipBpeTokenizer tokenizer((dir / "bpe_simple_vocab_16e6.txt.gz").string());
  EXPECT_EQ(tokenizer.vocab_size(), 49408);
  EXPECT_EQ(tokenizer.start_id(), 49406);
  EXPECT_EQ(tokenizer.end_id(), 49407);
  std::ifstream in(dir / "token_ids.tsv");
  std::string line;
  int checked = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto tab = line.rfind('\t');
    ASSERT_NE(tab, std::string::npos) << line;
    const std::string text = line.substr(0, tab);
    std::istringstream ids_text(line.substr(tab + 1));
    Ids expected;
    for (std::int64_t id; ids_text >> id;) expected.push_back(id);
    Ids got = tokenizer.tokenize(text, 77);
    got.resize(expected.size());
    EXPECT_EQ(got, expected) << "text: '" << text << "'";
    ++checked;
  }
  EXPECT_GE(checked, 50);
}

// A vocabulary of two merges, written by the test: ids are hand-worked from CLIP's layout
// (256 byte symbols, the same with "</w>", then one id per merge, then start and end).
class SmallVocab : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ =
        (fs::temp_directory_path() / ("lgd_bpe_" + std::to_string(::getpid()) + ".txt")).string();
    std::ofstream(path_) << "#version: test\nh i</w>\nt h\n";
    tokenizer_ = std::make_unique<ClipBpeTokenizer>(path_, 2);
  }
  void TearDown() override { fs::remove(path_); }
  std::string path_;
  std::unique_ptr<ClipBpeTokenizer> tokenizer_;
};

TEST_F(SmallVocab, MergesByRank) {
  EXPECT_EQ(tokenizer_->vocab_size(), 516);
  EXPECT_EQ(tokenizer_->encode("hi"), (Ids{512}));           // h + i</w>
  EXPECT_EQ(tokenizer_->encode("thi"), (Ids{83, 512}));      // rank 0 first: t, hi</w>
  EXPECT_EQ(tokenizer_->encode("th"), (Ids{83, 256 + 71}));  // "t h" needs h, not h</w>
  EXPECT_EQ(tokenizer_->encode("a"), (Ids{256 + 64}));       // single symbol: a</w>
}

TEST_F(SmallVocab, PreTokenisationClasses) {
  EXPECT_EQ(tokenizer_->encode("123"), (Ids{272, 273, 274}));          // digits one by one
  EXPECT_EQ(tokenizer_->encode("don't"), (Ids{67, 78, 333, 6, 339}));  // don + 't
  EXPECT_EQ(tokenizer_->encode("!!"), (Ids{0, 256}));                  // a punctuation run
  EXPECT_EQ(tokenizer_->encode("a!b"), (Ids{320, 256, 256 + 65}));     // letters | punct | letters
  EXPECT_EQ(tokenizer_->encode("\xC3\x89"), (Ids{127, 358}));          // É -> é = C3 A9
}

TEST_F(SmallVocab, DecodeInvertsEncode) {
  EXPECT_EQ(tokenizer_->decode(tokenizer_->tokenize("thi  don't!", 12)), "thi don 't ! ");
  EXPECT_EQ(tokenizer_->decode(tokenizer_->tokenize("\xC3\x89t\xC3\xA9", 8)), "\xC3\xA9t\xC3\xA9 ");
}

TEST_F(SmallVocab, PaddingAndTruncation) {
  EXPECT_EQ(tokenizer_->tokenize("hi", 5), (Ids{514, 512, 515, 0, 0}));
  EXPECT_EQ(tokenizer_->tokenize("hi hi hi", 4, Overflow::kTruncate), (Ids{514, 512, 512, 515}));
  EXPECT_THROW(tokenizer_->tokenize("hi hi hi", 4, Overflow::kError), UsageError);
}

TEST(ClipCleanText, WhitespaceHtmlAndCase) {
  EXPECT_EQ(clip_clean_text("  Hello,   WORLD!\t\n"), "hello, world!");
  EXPECT_EQ(clip_clean_text("e-mail &amp; fax"), "e-mail & fax");
  EXPECT_EQ(clip_clean_text("&amp;lt;"), "<");  // unescaped twice
  EXPECT_EQ(clip_clean_text("&#67;&#x41;T"), "cat");
  EXPECT_EQ(clip_clean_text("\xC3\x9C"
                            "ber \xCE\xA3"),
            "\xC3\xBC"
            "ber \xCF\x83");  // Über Σ
  EXPECT_EQ(clip_clean_text("a\xC2\xA0"
                            "b"),
            "a b");  // no-break space is whitespace
}

TEST(ClipBpeErrors, VocabularyProblemsNameTheFile) {
  const std::string path =
      (fs::temp_directory_path() / ("lgd_badbpe_" + std::to_string(::getpid()))).string();
  std::ofstream(path) << "#version\nh i\nbroken\n";
  try {
    ClipBpeTokenizer tokenizer(path, 2);
    FAIL();
  } catch (const IoError& e) {
    EXPECT_EQ(std::string(e.what()), path +
                                         ": merge 2 is 'broken', expected two symbols separated "
                                         "by one space (2 merges expected)");
  }
  fs::remove(path);
  EXPECT_THROW(ClipBpeTokenizer("/nonexistent/vocab.txt.gz"), IoError);
}

}  // namespace
}  // namespace lgd::text
