#include "lgd/export/torch_pickle.h"

#include <gtest/gtest.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>

#include <filesystem>

#include "lgd/core/errors.h"
#include "lgd/core/file_io.h"

namespace lgd::exporting {
namespace {

TEST(TorchPickle, WrittenArchivesReadBack) {
  torch::manual_seed(0);
  models::NamedTensors tensors = {
      {"z.weight", torch::randn({4, 3})},
      {"a.running_mean", torch::randn({4})},
      {"a.num_batches_tracked", torch::tensor(3, torch::kInt64).reshape({})},
      {"b.half", torch::randn({2, 5}).to(torch::kBFloat16)},
      {"c.mask", torch::rand({3}) > 0.5},
      {"d.empty", torch::zeros({0, 3})}};
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("lgd_pickle_" + std::to_string(::getpid()) + ".pth"))
                               .string();
  write_file_atomic(path, torch_save_bytes(tensors));
  const auto back = read_torch_state_dict(path);
  ASSERT_EQ(back.size(), tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(back[i].first, tensors[i].first);
    EXPECT_EQ(back[i].second.scalar_type(), tensors[i].second.scalar_type()) << tensors[i].first;
    EXPECT_EQ(back[i].second.sizes(), tensors[i].second.sizes()) << tensors[i].first;
    EXPECT_TRUE(torch::equal(back[i].second, tensors[i].second)) << tensors[i].first;
  }
  std::filesystem::remove(path);
}

// A torch.save archive with a hand-written data.pkl and float32 storages data/0, data/1, ...
std::string write_archive(const std::string& name, const std::string& pickle,
                          const std::vector<std::vector<float>>& storages = {}) {
  std::vector<char> bytes;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, std::size_t size) {
    bytes.insert(bytes.end(), static_cast<const char*>(data), static_cast<const char*>(data) + size);
    return size;
  });
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  for (std::size_t i = 0; i < storages.size(); ++i)
    writer.writeRecord("data/" + std::to_string(i), storages[i].data(), storages[i].size() * 4);
  writer.writeEndOfFile();
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("lgd_pickle_" + name + "_" + std::to_string(::getpid()) + ".pth"))
                               .string();
  write_file_atomic(path, bytes);
  return path;
}

std::string binint(std::int32_t v) {
  std::string s = "J";
  for (int i = 0; i < 4; ++i) s += static_cast<char>((static_cast<std::uint32_t>(v) >> (8 * i)) & 0xff);
  return s;
}
std::string unicode(const std::string& text) {
  return "X" + binint(static_cast<std::int32_t>(text.size())).substr(1) + text;
}
std::string ints(const std::vector<std::int32_t>& v) {
  std::string s = "(";
  for (auto x : v) s += binint(x);
  return s + "t";
}

// Protocol 2 pickle of {"w": _rebuild_tensor_v2(storage 0 of `numel` floats, offset, sizes,
// strides)}, the shape torch.save writes for a state dict.
std::string one_tensor_pickle(std::int32_t numel, std::int32_t offset,
                              const std::vector<std::int32_t>& sizes,
                              const std::vector<std::int32_t>& strides) {
  return std::string("\x80\x02}(") + unicode("w") + "ctorch._utils\n_rebuild_tensor_v2\n((" +
         unicode("storage") + "ctorch\nFloatStorage\n" + unicode("0") + unicode("cpu") +
         binint(numel) + "tQ" + binint(offset) + ints(sizes) + ints(strides) + "\x89}tRu.";
}

// Reads `path`, expecting one IoError line that starts with the path and mentions `what`.
void expect_refused(const std::string& path, const std::string& what) {
  try {
    const auto tensors = read_torch_state_dict(path);
    ADD_FAILURE() << path << ": read " << tensors.size() << " tensor(s), expected: " << what;
  } catch (const IoError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << message;
    EXPECT_NE(message.find(what), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
  std::filesystem::remove(path);
}

TEST(TorchPickle, HandWrittenStateDictReads) {
  // The builder itself, checked on a good file: 2x3 view at offset 1 of 7 floats.
  const auto path = write_archive("good", one_tensor_pickle(7, 1, {2, 3}, {3, 1}),
                                  {{0, 1, 2, 3, 4, 5, 6}});
  const auto tensors = read_torch_state_dict(path);
  ASSERT_EQ(tensors.size(), 1u);
  EXPECT_TRUE(torch::equal(tensors[0].second, torch::arange(1, 7, torch::kFloat32).reshape({2, 3})));
  std::filesystem::remove(path);
}

TEST(TorchPickle, MalformedPicklesAreRefusedNamingTheFile) {
  // Tuples built from a short stack (these crashed the reader).
  expect_refused(write_archive("tuple2", std::string("\x80\x02\x86.")), "TUPLE2 with 0 item(s)");
  expect_refused(write_archive("tuple3", std::string("\x80\x02K\x01\x87.")), "TUPLE3 with 1 item(s)");
  // Items below a MARK belong to the enclosing object.
  expect_refused(write_archive("below_mark", std::string("\x80\x02K\x01(\x85t.")), "TUPLE1 with 0");
  expect_refused(write_archive("setitem_below_mark", std::string("\x80\x02}(s.")), "stack underflow");
  expect_refused(write_archive("no_mark", std::string("\x80\x02]e.")), "mark missing");
  expect_refused(write_archive("memo", std::string("\x80\x02h\x05.")), "memo entry missing");
  expect_refused(write_archive("truncated", std::string("\x80\x02X\xff\0\0\0" "ab", 9)), "truncated");
  expect_refused(write_archive("empty", std::string()), "truncated");
  expect_refused(write_archive("opcode", std::string("\x80\x02\xfe.")), "unsupported pickle opcode 0xfe");
}

TEST(TorchPickle, TensorsOutsideTheirStorageAreRefused) {
  const std::vector<std::vector<float>> seven = {{0, 1, 2, 3, 4, 5, 6}};
  expect_refused(write_archive("neg_dim", one_tensor_pickle(7, 0, {-1, 3}, {3, 1}), seven),
                 "negative dimension -1");
  expect_refused(write_archive("neg_stride", one_tensor_pickle(7, 6, {2}, {-3}), seven),
                 "negative stride -3");
  expect_refused(write_archive("neg_offset", one_tensor_pickle(7, -1, {2}, {1}), seven),
                 "negative storage offset -1");
  expect_refused(write_archive("past_end", one_tensor_pickle(7, 2, {2, 3}, {3, 1}), seven),
                 "lies outside its storage of 7 element(s)");
  expect_refused(write_archive("huge_stride", one_tensor_pickle(7, 0, {3}, {2147483647}), seven),
                 "lies outside its storage");
  expect_refused(write_archive("rank", one_tensor_pickle(7, 0, {7}, {1, 1}), seven),
                 "1 sizes but 2 strides");
  expect_refused(write_archive("neg_numel", one_tensor_pickle(-7, 0, {0}, {1}), seven),
                 "negative element count -7");
  expect_refused(write_archive("numel_vs_record", one_tensor_pickle(2147483647, 0, {7}, {1}), seven),
                 "record data/0 has 28 bytes, expected 2147483647 element(s)");
  expect_refused(write_archive("no_record", one_tensor_pickle(7, 0, {7}, {1})), "record data/0 is missing");
}

TEST(TorchPickle, NonArchiveIsAnErrorNamingTheFile) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("lgd_not_zip_" + std::to_string(::getpid()) + ".pth"))
                               .string();
  write_file_atomic(path, std::string("definitely not a zip archive"));
  try {
    read_torch_state_dict(path);
    FAIL();
  } catch (const IoError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path + ": not a torch.save zip archive", 0), 0u)
        << e.what();
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace lgd::exporting
