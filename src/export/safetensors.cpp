#include "lgd/export/safetensors.h"

#include <torch/torch.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstring>

#include "lgd/core/errors.h"

namespace lgd::exporting {
namespace {

struct DtypeName {
  torch::ScalarType type;
  const char* name;
};
constexpr DtypeName kDtypes[] = {
    {torch::kFloat64, "F64"},   {torch::kFloat32, "F32"}, {torch::kFloat16, "F16"},
    {torch::kBFloat16, "BF16"}, {torch::kInt64, "I64"},   {torch::kInt32, "I32"},
    {torch::kInt16, "I16"},     {torch::kInt8, "I8"},     {torch::kUInt8, "U8"},
    {torch::kBool, "BOOL"},
};

std::string dtype_name(torch::ScalarType t, const std::string& key) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d.name;
  throw IoError(key + ": dtype " + std::string(c10::toString(t)) + " has no safetensors name");
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::uint64_t read_u64_le(const char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

}  // namespace

std::vector<char> safetensors_bytes(const models::NamedTensors& tensors, const Metadata& metadata) {
  std::vector<torch::Tensor> data;
  std::string header = "{\"__metadata__\":{";
  bool first = true;
  for (const auto& [k, v] : metadata) {
    header += (first ? "" : ",") + json_string(k) + ":" + json_string(v);
    first = false;
  }
  header += "}";
  std::uint64_t offset = 0;
  for (const auto& [key, tensor] : tensors) {
    auto t = tensor.detach().to(torch::kCPU).contiguous();
    const std::uint64_t nbytes = t.numel() * t.element_size();
    header += "," + json_string(key) + ":{\"dtype\":\"" + dtype_name(t.scalar_type(), key) +
              "\",\"shape\":[";
    for (int64_t i = 0; i < t.dim(); ++i) header += (i ? "," : "") + std::to_string(t.size(i));
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + nbytes) + "]}";
    offset += nbytes;
    data.push_back(t);
  }
  header += "}";
  while ((8 + header.size()) % 8 != 0) header += ' ';

  std::vector<char> out(8 + header.size() + offset);
  std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  std::memcpy(out.data() + 8, header.data(), header.size());
  char* cursor = out.data() + 8 + header.size();
  for (const auto& t : data) {
    const std::size_t nbytes = t.numel() * t.element_size();
    if (nbytes) std::memcpy(cursor, t.data_ptr(), nbytes);  // little-endian hosts only
    cursor += nbytes;
  }
  return out;
}

bool looks_like_safetensors(const std::vector<char>& bytes) {
  if (bytes.size() < 10) return false;
  const std::uint64_t n = read_u64_le(bytes.data());
  return n >= 2 && n <= bytes.size() - 8 && bytes[8] == '{';
}

SafetensorsFile parse_safetensors(const std::vector<char>& bytes, const std::string& source) {
  if (!looks_like_safetensors(bytes))
    throw IoError(source + ": not a safetensors file (bad header length or no JSON header)");
  const std::uint64_t n = read_u64_le(bytes.data());
  const std::string header(bytes.data() + 8, n);
  const char* data = bytes.data() + 8 + n;
  const std::uint64_t data_size = bytes.size() - 8 - n;

  YAML::Node root;
  try {
    root = YAML::Load(header);  // JSON is valid YAML flow syntax
  } catch (const YAML::Exception& e) {
    throw IoError(source + ": corrupt safetensors header (" + e.msg + ")");
  }
  if (!root.IsMap()) throw IoError(source + ": corrupt safetensors header (not a JSON object)");

  SafetensorsFile file;
  std::vector<std::pair<std::uint64_t, std::pair<std::string, torch::Tensor>>> entries;
  try {
    for (const auto& entry : root) {
      const std::string key = entry.first.as<std::string>();
      const YAML::Node& info = entry.second;
      if (key == "__metadata__") {
        if (!info.IsMap())
          throw IoError(source + ": __metadata__ is not a JSON object of strings");
        for (const auto& m : info) {
          // Quoted JSON scalars carry yaml-cpp's "!" tag; numbers, booleans and null do not.
          if (!m.second.IsScalar() || m.second.Tag() != "!")
            throw IoError(source + ": __metadata__ value of " + m.first.as<std::string>() +
                          " is not a string (the format allows only strings there)");
          file.metadata[m.first.as<std::string>()] = m.second.as<std::string>();
        }
        continue;
      }
      if (!info.IsMap()) throw IoError(source + ": " + key + ": expected a JSON object");
      const std::string dtype = info["dtype"].as<std::string>();
      const auto* found = std::find_if(std::begin(kDtypes), std::end(kDtypes),
                                       [&](const DtypeName& d) { return dtype == d.name; });
      if (found == std::end(kDtypes))
        throw IoError(source + ": " + key + ": unsupported dtype " + dtype);
      if (!info["shape"].IsSequence() || !info["data_offsets"].IsSequence() ||
          info["data_offsets"].size() != 2)
        throw IoError(source + ": " + key + ": expected \"shape\": [...] and \"data_offsets\": [begin, end]");
      // The byte count of the shape, checked before anything is allocated for it.
      auto options = torch::TensorOptions().dtype(found->type);
      std::vector<int64_t> shape;
      std::uint64_t expected = c10::elementSize(found->type);
      for (const auto& d : info["shape"]) {
        const auto v = d.as<std::int64_t>();
        if (v < 0) throw IoError(source + ": " + key + ": negative dimension " + std::to_string(v));
        if (v != 0 && expected > data_size / static_cast<std::uint64_t>(v))
          expected = data_size + 1;  // more than the file holds; reported below
        else
          expected *= static_cast<std::uint64_t>(v);
        shape.push_back(v);
      }
      const auto begin = info["data_offsets"][0].as<std::uint64_t>();
      const auto end = info["data_offsets"][1].as<std::uint64_t>();
      if (end < begin || end > data_size || end - begin != expected)
        throw IoError(source + ": " + key + ": data_offsets [" + std::to_string(begin) + ", " +
                      std::to_string(end) + "] do not fit its shape and dtype or the file size (" +
                      std::to_string(data_size) + " data bytes)");
      auto tensor = torch::empty(shape, options);
      if (expected) std::memcpy(tensor.data_ptr(), data + begin, expected);
      entries.push_back({begin, {key, tensor}});
    }
  } catch (const YAML::Exception& e) {
    throw IoError(source + ": corrupt safetensors header (" + e.msg + ")");
  }
  std::stable_sort(entries.begin(), entries.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  // The format's rule: the tensors tile the data buffer, with no overlap, hole or trailing byte.
  std::uint64_t covered = 0;
  for (const auto& [begin, named] : entries) {
    if (begin != covered)
      throw IoError(source + ": " + named.first + ": data starts at byte " + std::to_string(begin) +
                    (begin < covered ? ", inside the previous tensor's bytes"
                                     : ", after a gap at byte " + std::to_string(covered)) +
                    " (safetensors data must be contiguous and not overlap)");
    covered += named.second.numel() * named.second.element_size();
  }
  if (covered != data_size)
    throw IoError(source + ": " + std::to_string(data_size - covered) +
                  " byte(s) after the last tensor's data (safetensors files end there)");
  for (auto& e : entries) file.tensors.push_back(std::move(e.second));
  return file;
}

}  // namespace lgd::exporting
