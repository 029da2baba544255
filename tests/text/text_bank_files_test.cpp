// The class-name and template files of `lgd bank build` and bank.classnames /
// bank.templates: what they accept, and one line naming the file (and line) for what they
// do not.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "lgd/core/errors.h"
#include "lgd/core/file_io.h"
#include "lgd/text/text_bank.h"

namespace lgd::text {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) / ("lgd_bank_" + name)).string();
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(TextBankFiles, NamesAndTemplatesSkipBlankAndCommentLines) {
  const auto names = temp_path("names.txt");
  write_file_atomic(names, std::string("# Fashion-MNIST\ntench\n\n  goldfish \n"));
  EXPECT_EQ(read_class_names(names, false), (std::vector<std::string>{"tench", "goldfish"}));
  const auto templates = temp_path("templates.txt");
  write_file_atomic(templates, std::string("a photo of a {}.\n# comment\nthe {}\n"));
  EXPECT_EQ(read_templates(templates), (std::vector<std::string>{"a photo of a {}.", "the {}"}));
}

TEST(TextBankFiles, BadFilesAreOneLineNamingTheFileAndLine) {
  const auto dup = temp_path("dup.txt");
  write_file_atomic(dup, std::string("tench\ngoldfish\ntench\n"));
  EXPECT_EQ(error_of([&] { read_class_names(dup, false); }),
            dup + ":3: duplicate class name 'tench' (also at line 1)");
  EXPECT_EQ(read_class_names(dup, true).size(), 3u);
  const auto binary = temp_path("binary.txt");
  write_file_atomic(binary, std::string("tench\ngold\0fish\n", 16));
  EXPECT_EQ(error_of([&] { read_class_names(binary, false); }),
            binary + ":2: binary data (expected one entry per line, UTF-8 text)");
  const auto empty = temp_path("empty.txt");
  write_file_atomic(empty, std::string("# nothing\n\n"));
  EXPECT_EQ(error_of([&] { read_class_names(empty, false); }),
            empty + ": no entries (only blank or comment lines)");
  const auto dir = temp_path("dir");
  std::filesystem::create_directories(dir);
  EXPECT_EQ(error_of([&] { read_templates(dir); }), dir + ": is a directory, expected a file");
  const auto two = temp_path("two.txt");
  write_file_atomic(two, std::string("a {} and a {}\n"));
  EXPECT_EQ(error_of([&] { read_templates(two); }),
            two + ":1: template 'a {} and a {}' must contain exactly one {} for the class name");
}

}  // namespace
}  // namespace lgd::text
