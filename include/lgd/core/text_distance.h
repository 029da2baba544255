#pragma once
#include <optional>
#include <string>
#include <vector>

namespace lgd {

// Levenshtein distance (insert, delete, substitute, each cost 1).
std::size_t edit_distance(const std::string& a, const std::string& b);

// The candidate closest to `word`, if it is close enough to be a plausible typo
// (distance at most max(2, |word| / 3)).
std::optional<std::string> nearest(const std::string& word,
                                   const std::vector<std::string>& candidates);

// "a, b, c"
std::string join(const std::vector<std::string>& items, const std::string& sep = ", ");

}  // namespace lgd
