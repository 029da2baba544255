#include "lgd/export/safetensors.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

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

std::uint64_t read_u64_le(const char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

}  // namespace

std::vector<char> safetensors_bytes(const models::NamedTensors& tensors, const Metadata& metadata) {
  std::vector<torch::Tensor> data;
  nlohmann::ordered_json header;
  header["__metadata__"] = nlohmann::ordered_json::object();
  for (const auto& [k, v] : metadata) header["__metadata__"][k] = v;
  std::uint64_t offset = 0;
  for (const auto& [key, tensor] : tensors) {
    auto t = tensor.detach().to(torch::kCPU).contiguous();
    const std::uint64_t nbytes = t.numel() * t.element_size();
    header[key] = {{"dtype", dtype_name(t.scalar_type(), key)},
                   {"shape", t.sizes().vec()},
                   {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    data.push_back(t);
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // a key or metadata value that is not UTF-8
    throw IoError(std::string("safetensors header: ") + e.what());
  }
  while ((8 + text.size()) % 8 != 0) text += ' ';

  std::vector<char> out(8 + text.size() + offset);
  std::uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  std::memcpy(out.data() + 8, text.data(), text.size());
  char* cursor = out.data() + 8 + text.size();
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

  nlohmann::json root;
  try {
    root = nlohmann::json::parse(header);
  } catch (const nlohmann::json::exception& e) {
    throw IoError(source + ": corrupt safetensors header (" + e.what() + ")");
  }
  if (!root.is_object()) throw IoError(source + ": corrupt safetensors header (not a JSON object)");

  SafetensorsFile file;
  std::vector<std::pair<std::uint64_t, std::pair<std::string, torch::Tensor>>> entries;
  for (const auto& [key, info] : root.items()) {
    if (key == "__metadata__") {
      if (!info.is_object()) throw IoError(source + ": __metadata__ is not a JSON object of strings");
      for (const auto& [name, value] : info.items()) {
        if (!value.is_string())
          throw IoError(source + ": __metadata__ value of " + name +
                        " is not a string (the format allows only strings there)");
        file.metadata[name] = value.get<std::string>();
      }
      continue;
    }
    if (!info.is_object()) throw IoError(source + ": " + key + ": expected a JSON object");
    const auto dtype_it = info.find("dtype");
    if (dtype_it == info.end() || !dtype_it->is_string())
      throw IoError(source + ": " + key + ": expected \"dtype\": a string");
    const std::string dtype = dtype_it->get<std::string>();
    const auto* found = std::find_if(std::begin(kDtypes), std::end(kDtypes),
                                     [&](const DtypeName& d) { return dtype == d.name; });
    if (found == std::end(kDtypes)) throw IoError(source + ": " + key + ": unsupported dtype " + dtype);
    const auto shape_it = info.find("shape"), offsets_it = info.find("data_offsets");
    if (shape_it == info.end() || !shape_it->is_array() || offsets_it == info.end() || !offsets_it->is_array() ||
        offsets_it->size() != 2 || !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned())
      throw IoError(source + ": " + key + ": expected \"shape\": [...] and \"data_offsets\": [begin, end]");
    // The byte count of the shape, checked before anything is allocated for it.
    std::vector<int64_t> shape;
    std::uint64_t expected = c10::elementSize(found->type);
    for (const auto& d : *shape_it) {
      if (!d.is_number_integer())
        throw IoError(source + ": " + key + ": a shape entry is a " + std::string(d.type_name()) + ", not an integer");
      if (d.is_number_unsigned() && d.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
        throw IoError(source + ": " + key + ": dimension " + std::to_string(d.get<std::uint64_t>()) + " is out of range");
      const auto v = d.get<std::int64_t>();
      if (v < 0) throw IoError(source + ": " + key + ": negative dimension " + std::to_string(v));
      if (v != 0 && expected > data_size / static_cast<std::uint64_t>(v))
        expected = data_size + 1;  // more than the file holds; reported below
      else
        expected *= static_cast<std::uint64_t>(v);
      shape.push_back(v);
    }
    const auto begin = (*offsets_it)[0].get<std::uint64_t>();
    const auto end = (*offsets_it)[1].get<std::uint64_t>();
    if (end < begin || end > data_size || end - begin != expected)
      throw IoError(source + ": " + key + ": data_offsets [" + std::to_string(begin) + ", " +
                    std::to_string(end) + "] do not fit its shape and dtype or the file size (" +
                    std::to_string(data_size) + " data bytes)");
    auto tensor = torch::empty(shape, torch::TensorOptions().dtype(found->type));
    if (expected) std::memcpy(tensor.data_ptr(), data + begin, expected);
    entries.push_back({begin, {key, tensor}});
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
