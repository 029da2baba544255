#pragma once
// The safetensors format: 8-byte little-endian header length N, N bytes of JSON
// {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}},
// then the raw little-endian tensor bytes; offsets are relative to the end of the header.
#include <map>
#include <string>

#include "lgd/models/state_dict.h"

namespace lgd::exporting {

using Metadata = std::map<std::string, std::string>;

// Serialises tensors in the given order (CPU, contiguous copies are made as needed).
std::vector<char> safetensors_bytes(const models::NamedTensors& tensors, const Metadata& metadata);

struct SafetensorsFile {
  models::NamedTensors tensors;  // in file order (ascending data offset)
  Metadata metadata;
};

// Parses and validates a safetensors buffer; `source` names it in IoErrors.
SafetensorsFile parse_safetensors(const std::vector<char>& bytes, const std::string& source);

// True when the bytes start like a safetensors file (plausible length, then '{').
bool looks_like_safetensors(const std::vector<char>& bytes);

}  // namespace lgd::exporting
