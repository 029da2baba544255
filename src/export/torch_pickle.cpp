#include "lgd/export/torch_pickle.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <unordered_map>

#include "lgd/core/errors.h"
#include "lgd/core/file_io.h"

namespace lgd::exporting {
namespace {

// The subset of Python objects a state-dict pickle builds.
struct PyObject;
using PyRef = std::shared_ptr<PyObject>;
struct PyObject {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kTuple,
    kList,
    kDict,
    kGlobal,
    kTensor,
    kOpaque
  };
  Kind kind = Kind::kNone;
  std::int64_t integer = 0;
  double real = 0;
  std::string text;                              // kString; kGlobal and kOpaque: "module.name"
  std::vector<PyRef> items;                      // kTuple, kList
  std::vector<std::pair<PyRef, PyRef>> entries;  // kDict, in insertion order
  torch::Tensor tensor;                          // kTensor (also storages, 1-D)
};

PyRef make(PyObject::Kind kind) {
  auto o = std::make_shared<PyObject>();
  o->kind = kind;
  return o;
}

struct StorageType {
  const char* name;
  torch::ScalarType type;
};
constexpr StorageType kStorageTypes[] = {
    {"torch.FloatStorage", torch::kFloat32}, {"torch.DoubleStorage", torch::kFloat64},
    {"torch.HalfStorage", torch::kFloat16},  {"torch.BFloat16Storage", torch::kBFloat16},
    {"torch.LongStorage", torch::kInt64},    {"torch.IntStorage", torch::kInt32},
    {"torch.ShortStorage", torch::kInt16},   {"torch.CharStorage", torch::kInt8},
    {"torch.ByteStorage", torch::kUInt8},    {"torch.BoolStorage", torch::kBool},
};

// Where a pickle's storages come from: (key, element type, element count) -> a 1-D tensor of
// that many elements. The zip format reads record data/<key>; the legacy format allocates
// them here and fills them from the bytes after the pickles.
using StorageSource = std::function<torch::Tensor(const std::string& key, torch::ScalarType type, std::int64_t numel)>;

class Unpickler {
 public:
  // Unpickles data[start...] up to its STOP opcode; position() is then just past it.
  Unpickler(StorageSource storages, const std::vector<char>& data, std::string source, std::size_t start = 0)
      : storages_source_(std::move(storages)), data_(data), source_(std::move(source)), pos_(start) {}
  std::size_t position() const { return pos_; }

  PyRef run() {
    while (true) {
      const auto op = static_cast<unsigned char>(byte());
      switch (op) {
        case 0x80:
          byte();
          break;  // PROTO
        case 0x95:
          bytes(8);
          break;  // FRAME
        case '}':
          push(make(PyObject::Kind::kDict));
          break;
        case ']':
          push(make(PyObject::Kind::kList));
          break;
        case ')':
          push(make(PyObject::Kind::kTuple));
          break;
        case '(':
          marks_.push_back(stack_.size());
          break;
        case 't':
          push(tuple(pop_to_mark()));
          break;
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1..3
          const std::size_t n = op - 0x84;
          if (stack_.size() < n + floor())
            fail("TUPLE" + std::to_string(n) + " with " + std::to_string(stack_.size() - floor()) +
                 " item(s) on the pickle stack");
          std::vector<PyRef> items(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
          stack_.resize(stack_.size() - n);
          push(tuple(std::move(items)));
          break;
        }
        case 'q':
          memo_[static_cast<unsigned char>(byte())] = top();
          break;  // BINPUT
        case 'r':
          memo_[u32()] = top();
          break;  // LONG_BINPUT
        case 0x94:
          memo_[static_cast<std::uint32_t>(memo_.size())] = top();
          break;  // MEMOIZE
        case 'h':
          push(memo(static_cast<unsigned char>(byte())));
          break;  // BINGET
        case 'j':
          push(memo(u32()));
          break;     // LONG_BINGET
        case 'c': {  // GLOBAL
          std::string module = line(), name = line();
          push(global(module + "." + name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          auto name = pop(), module = pop();
          push(global(module->text + "." + name->text));
          break;
        }
        case 'X':
          push(string(bytes(u32())));
          break;  // BINUNICODE
        case 0x8c:
          push(string(bytes(static_cast<unsigned char>(byte()))));
          break;
        case 'B':
          push(string(bytes(u32())));
          break;  // BINBYTES
        case 'C':
          push(string(bytes(static_cast<unsigned char>(byte()))));
          break;
        case 'J':
          push(integer(static_cast<std::int32_t>(u32())));
          break;  // BININT
        case 'K':
          push(integer(static_cast<unsigned char>(byte())));
          break;     // BININT1
        case 'M': {  // BININT2
          const std::string b = bytes(2);
          push(integer(static_cast<unsigned char>(b[0]) | (static_cast<unsigned char>(b[1]) << 8)));
          break;
        }
        case 0x8a:
          push(integer(long1(static_cast<unsigned char>(byte()))));
          break;     // LONG1
        case 'G': {  // BINFLOAT
          const std::string b = bytes(8);
          std::uint64_t bits = 0;
          for (char c : b) bits = (bits << 8) | static_cast<unsigned char>(c);
          auto o = make(PyObject::Kind::kFloat);
          std::memcpy(&o->real, &bits, sizeof bits);
          push(o);
          break;
        }
        case 'N':
          push(make(PyObject::Kind::kNone));
          break;
        case 0x88:
        case 0x89: {
          auto o = make(PyObject::Kind::kBool);
          o->integer = op == 0x88;
          push(o);
          break;
        }
        case 'R':
        case 0x81: {  // REDUCE, NEWOBJ
          auto args = pop();
          auto callable = pop();
          push(call(callable, args));
          break;
        }
        case 'b':
          pop();
          break;     // BUILD: object state (OrderedDict._metadata etc.) is not needed
        case 's': {  // SETITEM
          auto value = pop(), key = pop();
          dict_of(top())->entries.emplace_back(key, value);
          break;
        }
        case 'u': {  // SETITEMS
          auto items = pop_to_mark();
          auto dict = dict_of(top());
          for (std::size_t i = 0; i + 1 < items.size(); i += 2)
            dict->entries.emplace_back(items[i], items[i + 1]);
          break;
        }
        case 'a': {  // APPEND
          auto value = pop();
          top()->items.push_back(value);
          break;
        }
        case 'e': {  // APPENDS
          auto items = pop_to_mark();
          for (auto& v : items) top()->items.push_back(v);
          break;
        }
        case 'Q':
          push(persistent(pop()));
          break;  // BINPERSID
        case '.':
          return pop();  // STOP
        default: {
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          fail(std::string("unsupported pickle opcode ") + hex + " at byte " +
               std::to_string(pos_ - 1));
        }
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw IoError(source_ + ": cannot read torch.save data: " + what);
  }
  char byte() {
    if (pos_ >= data_.size()) fail("truncated pickle");
    return data_[pos_++];
  }
  std::string bytes(std::size_t n) {
    if (n > data_.size() - pos_) fail("truncated pickle");
    std::string s(data_.data() + pos_, n);
    pos_ += n;
    return s;
  }
  std::uint32_t u32() {
    const std::string b = bytes(4);
    std::uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[i]);
    return v;
  }
  std::int64_t long1(std::size_t n) {
    if (n > 8) fail("integer wider than 64 bits");
    const std::string b = bytes(n);
    std::uint64_t v = 0;
    for (std::size_t i = n; i-- > 0;) v = (v << 8) | static_cast<unsigned char>(b[i]);
    if (n > 0 && n < 8 && (static_cast<unsigned char>(b[n - 1]) & 0x80)) v |= ~0ULL << (8 * n);
    return static_cast<std::int64_t>(v);
  }
  std::string line() {
    std::string s;
    for (char c = byte(); c != '\n'; c = byte()) s += c;
    return s;
  }
  void push(PyRef o) { stack_.push_back(std::move(o)); }
  // Items below the innermost MARK belong to an enclosing object: no opcode but those that
  // end the mark may take them.
  std::size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  PyRef top() {
    if (stack_.size() <= floor()) fail("pickle stack underflow at byte " + std::to_string(pos_ - 1));
    return stack_.back();
  }
  PyRef pop() {
    PyRef o = top();
    stack_.pop_back();
    return o;
  }
  std::vector<PyRef> pop_to_mark() {
    if (marks_.empty()) fail("pickle mark missing");
    const std::size_t mark = marks_.back();
    marks_.pop_back();
    if (mark > stack_.size()) fail("pickle mark beyond the stack");
    std::vector<PyRef> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }
  PyRef memo(std::uint32_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) fail("pickle memo entry missing");
    return it->second;
  }
  PyRef dict_of(const PyRef& o) {
    if (o->kind != PyObject::Kind::kDict) fail("items set on a non-dict object " + o->text);
    return o;
  }
  static PyRef tuple(std::vector<PyRef> items) {
    auto o = make(PyObject::Kind::kTuple);
    o->items = std::move(items);
    return o;
  }
  static PyRef string(std::string s) {
    auto o = make(PyObject::Kind::kString);
    o->text = std::move(s);
    return o;
  }
  static PyRef integer(std::int64_t v) {
    auto o = make(PyObject::Kind::kInt);
    o->integer = v;
    return o;
  }
  static PyRef global(std::string name) {
    auto o = make(PyObject::Kind::kGlobal);
    o->text = std::move(name);
    return o;
  }
  std::int64_t int_item(const PyRef& tuple_ref, std::size_t i) {
    if (tuple_ref->items.size() <= i || tuple_ref->items[i]->kind != PyObject::Kind::kInt)
      fail("malformed tensor description");
    return tuple_ref->items[i]->integer;
  }
  std::vector<std::int64_t> ints(const PyRef& t) {
    std::vector<std::int64_t> out;
    for (std::size_t i = 0; i < t->items.size(); ++i) out.push_back(int_item(t, i));
    return out;
  }

  PyRef call(const PyRef& callable, const PyRef& args) {
    const std::string& name = callable->text;
    if (name == "collections.OrderedDict") return make(PyObject::Kind::kDict);
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      // (storage, storage_offset, size, stride, ...)
      if (args->items.size() < 4 || args->items[0]->kind != PyObject::Kind::kTensor)
        fail("malformed " + name + " arguments");
      auto o = make(PyObject::Kind::kTensor);
      o->tensor = view(args->items[0]->tensor, ints(args->items[2]), ints(args->items[3]),
                       int_item(args, 1));
      return o;
    }
    if (name == "torch.jit._pickle.restore_type_tag") {  // (object, "Dict[str, Tensor]")
      if (args->items.empty()) fail("malformed " + name + " arguments");
      return args->items[0];
    }
    if (name == "torch._utils._rebuild_parameter" ||
        name == "torch._utils._rebuild_parameter_with_state") {
      if (args->items.empty()) fail("malformed " + name + " arguments");
      return args->items[0];
    }
    auto o = make(PyObject::Kind::kOpaque);  // e.g. argparse.Namespace in a full checkpoint
    o->text = name;
    return o;
  }

  // A tensor's view of its storage, checked so that no size, stride or offset reaches
  // LibTorch unless every element it addresses lies inside the storage.
  torch::Tensor view(const torch::Tensor& storage, const std::vector<std::int64_t>& sizes,
                     const std::vector<std::int64_t>& strides, std::int64_t offset) {
    if (sizes.size() != strides.size())
      fail("tensor with " + std::to_string(sizes.size()) + " sizes but " +
           std::to_string(strides.size()) + " strides");
    if (offset < 0) fail("negative storage offset " + std::to_string(offset));
    bool empty = false;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      if (sizes[i] < 0) fail("negative dimension " + std::to_string(sizes[i]));
      if (strides[i] < 0) fail("negative stride " + std::to_string(strides[i]));
      empty = empty || sizes[i] == 0;
    }
    const std::int64_t numel = storage.numel();
    if (!empty) {
      // The last element addressed: offset + sum((size - 1) * stride), without overflow.
      std::int64_t last = offset;
      for (std::size_t i = 0; i < sizes.size(); ++i) {
        if (strides[i] != 0 && sizes[i] - 1 > (numel - last) / strides[i])
          fail("tensor of size " + shape(sizes) + " and stride " + shape(strides) +
               " at offset " + std::to_string(offset) + " lies outside its storage of " +
               std::to_string(numel) + " element(s)");
        last += (sizes[i] - 1) * strides[i];
      }
      if (last >= numel)
        fail("tensor at offset " + std::to_string(offset) + " lies outside its storage of " +
             std::to_string(numel) + " element(s)");
    } else if (offset > numel) {
      fail("storage offset " + std::to_string(offset) + " beyond its storage of " +
           std::to_string(numel) + " element(s)");
    }
    return storage.as_strided(sizes, strides, offset);
  }
  static std::string shape(const std::vector<std::int64_t>& v) {
    std::string s = "(";
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
    return s + ")";
  }

  PyRef persistent(const PyRef& pid) {
    // ('storage', storage_type, key, location, numel)
    if (pid->items.size() < 5 || pid->items[0]->text != "storage") fail("unknown persistent id");
    const std::string type_name = pid->items[1]->text;
    const std::string key = pid->items[2]->text;
    auto o = make(PyObject::Kind::kTensor);
    if (auto it = storages_.find(key); it != storages_.end()) {
      o->tensor = it->second;
      return o;
    }
    const StorageType* type = nullptr;
    for (const auto& t : kStorageTypes)
      if (type_name == t.name) type = &t;
    if (!type) fail("unsupported storage type " + type_name);
    const std::int64_t numel = int_item(pid, 4);
    if (numel < 0) fail("storage " + key + " with a negative element count " + std::to_string(numel));
    if (!storages_source_) fail("a tensor where none is expected");
    auto storage = storages_source_(key, type->type, numel);
    storages_[key] = storage;
    o->tensor = storage;
    return o;
  }

  StorageSource storages_source_;
  const std::vector<char>& data_;
  std::string source_;
  std::size_t pos_ = 0;
  std::vector<PyRef> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint32_t, PyRef> memo_;
  std::map<std::string, torch::Tensor> storages_;
};

bool is_tensor_dict(const PyRef& o) {
  if (o->kind != PyObject::Kind::kDict || o->entries.empty()) return false;
  for (const auto& [k, v] : o->entries)
    if (k->kind != PyObject::Kind::kString || v->kind != PyObject::Kind::kTensor) return false;
  return true;
}

}  // namespace

bool looks_like_zip(const std::vector<char>& bytes) {
  return bytes.size() >= 4 && bytes[0] == 'P' && bytes[1] == 'K' && bytes[2] == 3 && bytes[3] == 4;
}

namespace {

// Pickle protocol 2 with only what Python's torch.save writes for a state dict:
// collections.OrderedDict, torch._utils._rebuild_tensor_v2 and the typed storage classes,
// so torch.load(weights_only=True) (the default since PyTorch 2.6) accepts it.
class PickleWriter {
 public:
  void op(char c) { out_.push_back(c); }
  void global(const std::string& module, const std::string& name) {
    op('c');
    out_.insert(out_.end(), module.begin(), module.end());
    op('\n');
    out_.insert(out_.end(), name.begin(), name.end());
    op('\n');
  }
  void string(const std::string& s) {  // BINUNICODE
    op('X');
    le32(static_cast<std::uint32_t>(s.size()));
    out_.insert(out_.end(), s.begin(), s.end());
  }
  void integer(std::int64_t v) {
    if (v >= INT32_MIN && v <= INT32_MAX) {  // BININT
      op('J');
      le32(static_cast<std::uint32_t>(static_cast<std::int32_t>(v)));
      return;
    }
    op(static_cast<char>(0x8a));  // LONG1: 8 bytes, little-endian two's complement
    op(8);
    for (int i = 0; i < 8; ++i) op(static_cast<char>((static_cast<std::uint64_t>(v) >> (8 * i)) & 0xff));
  }
  void int_tuple(c10::IntArrayRef values) {
    if (values.empty()) return op(')');  // EMPTY_TUPLE
    op('(');
    for (const auto v : values) integer(v);
    op('t');
  }
  void empty_ordered_dict() {
    global("collections", "OrderedDict");
    op(')');
    op('R');
  }
  std::vector<char> take() { return std::move(out_); }

 private:
  void le32(std::uint32_t v) {
    for (int i = 0; i < 4; ++i) op(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::vector<char> out_;
};

const char* storage_class(torch::ScalarType type) {
  for (const auto& s : kStorageTypes)
    if (s.type == type) return s.name + std::strlen("torch.");
  throw IoError(std::string("torch.save: no storage class for dtype ") + c10::toString(type));
}

}  // namespace

std::vector<char> torch_save_bytes(const models::NamedTensors& tensors) {
  std::vector<torch::Tensor> storages;
  PickleWriter p;
  p.op(static_cast<char>(0x80));  // PROTO 2
  p.op(2);
  p.empty_ordered_dict();
  p.op('(');  // MARK for SETITEMS
  for (const auto& [key, value] : tensors) {
    const torch::Tensor t = value.detach().to(torch::kCPU).contiguous();
    const std::string storage_key = std::to_string(storages.size());
    storages.push_back(t);
    p.string(key);
    p.global("torch._utils", "_rebuild_tensor_v2");
    p.op('(');
    p.op('(');  // persistent id: ('storage', <class>, key, 'cpu', numel)
    p.string("storage");
    p.global("torch", storage_class(t.scalar_type()));
    p.string(storage_key);
    p.string("cpu");
    p.integer(t.numel());
    p.op('t');
    p.op('Q');                                  // BINPERSID
    p.integer(0);                               // storage offset
    p.int_tuple(t.sizes());
    p.int_tuple(t.strides());
    p.op(static_cast<char>(0x89));              // NEWFALSE: requires_grad
    p.empty_ordered_dict();                     // backward hooks
    p.op('t');
    p.op('R');
  }
  p.op('u');  // SETITEMS
  p.op('.');  // STOP
  const std::vector<char> pickle = p.take();

  std::vector<char> archive;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, std::size_t size) {
    const auto* bytes = static_cast<const char*>(data);
    archive.insert(archive.end(), bytes, bytes + size);
    return size;
  });
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  writer.writeRecord("byteorder", "little", 6);
  for (std::size_t i = 0; i < storages.size(); ++i)
    writer.writeRecord("data/" + std::to_string(i), storages[i].data_ptr(),
                       storages[i].numel() * storages[i].element_size());
  writer.writeEndOfFile();
  return archive;
}

namespace {

[[noreturn]] void bad(const std::string& path, const std::string& what) {
  throw IoError(path + ": cannot read torch.save data: " + what);
}

// The state dict inside what a torch.save file holds: a dict of tensors, or a checkpoint
// holding one under "state_dict", "model" or "student"; a "module." on every key removed.
models::NamedTensors state_dict_of(PyRef root, const std::string& path) {
  if (!is_tensor_dict(root) && root->kind == PyObject::Kind::kDict) {
    for (const char* key : {"state_dict", "model", "student"}) {
      for (const auto& [k, v] : root->entries)
        if (k->kind == PyObject::Kind::kString && k->text == key && is_tensor_dict(v)) root = v;
      if (is_tensor_dict(root)) break;
    }
  }
  if (!is_tensor_dict(root))
    throw IoError(path +
                  ": expected a state dict (a dict of name -> tensor, or a checkpoint "
                  "with one under 'state_dict', 'model' or 'student')");
  models::NamedTensors out;
  bool all_module = true;
  for (const auto& [k, v] : root->entries) {
    out.emplace_back(k->text, v->tensor.contiguous());
    all_module = all_module && k->text.rfind("module.", 0) == 0;
  }
  if (all_module)
    for (auto& entry : out) entry.first = entry.first.substr(7);
  return out;
}

PyRef read_zip(const std::string& path) {
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> archive;
  try {
    archive = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const c10::Error& e) {
    throw IoError(path + ": not a torch.save zip archive (" +
                  std::string(e.what_without_backtrace()).substr(0, 120) + ")");
  }
  try {
    if (archive->hasRecord("byteorder")) {
      auto [ptr, size] = archive->getRecord("byteorder");
      if (std::string(static_cast<const char*>(ptr.get()), size) != "little")
        throw IoError(path + ": big-endian torch.save archives are not supported");
    }
    if (!archive->hasRecord("data.pkl")) throw IoError(path + ": torch.save archive without data.pkl");
    auto [ptr, size] = archive->getRecord("data.pkl");
    const std::vector<char> pickle(static_cast<const char*>(ptr.get()), static_cast<const char*>(ptr.get()) + size);
    auto storages = [&](const std::string& key, torch::ScalarType type, std::int64_t numel) {
      const std::string record = "data/" + key;
      if (!archive->hasRecord(record)) bad(path, "record " + record + " is missing");
      // The record's size bounds the allocation: the count is checked against it first.
      const std::size_t element_size = c10::elementSize(type);
      auto [data, bytes] = archive->getRecord(record);
      if (bytes % element_size != 0 || static_cast<std::uint64_t>(numel) != bytes / element_size)
        bad(path, "record " + record + " has " + std::to_string(bytes) + " bytes, expected " +
                      std::to_string(numel) + " element(s) of " + std::to_string(element_size) + " bytes");
      auto storage = torch::empty({numel}, torch::TensorOptions().dtype(type));
      if (bytes) std::memcpy(storage.data_ptr(), data.get(), bytes);
      return storage;
    };
    return Unpickler(storages, pickle, path).run();
  } catch (const c10::Error& e) {  // the archive's own checks (CRC, record offsets)
    throw IoError(path + ": corrupt torch.save archive (" + std::string(e.what_without_backtrace()).substr(0, 160) +
                  ")");
  }
}

// The legacy format (torch.save(..., _use_new_zipfile_serialization=False), and every
// torch.save before PyTorch 1.6): pickles of the magic number, the protocol version (1001)
// and the system's sizes, then the object (storages as persistent ids), then the sorted
// list of storage keys, then each storage: its element count (8 bytes, little-endian) and
// its bytes. Storages are allocated as the object is read, each bounded by the bytes left in
// the file, and filled afterwards.
constexpr unsigned char kLegacyMagic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                          0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};

PyRef read_legacy(const std::vector<char>& bytes, const std::string& path) {
  std::size_t pos = sizeof kLegacyMagic;
  auto next = [&](const StorageSource& storages) {
    Unpickler u(storages, bytes, path, pos);
    PyRef o = u.run();
    pos = u.position();
    return o;
  };
  const PyRef version = next(nullptr);
  if (version->kind != PyObject::Kind::kInt || version->integer != 1001)
    bad(path, "legacy torch.save protocol version is not 1001");
  const PyRef sys_info = next(nullptr);
  for (const auto& [k, v] : sys_info->entries)
    if (k->text == "little_endian" && v->kind == PyObject::Kind::kBool && !v->integer)
      throw IoError(path + ": big-endian torch.save files are not supported");
  std::map<std::string, torch::Tensor> storages;
  const PyRef root = next([&](const std::string& key, torch::ScalarType type, std::int64_t numel) {
    const std::uint64_t element_size = c10::elementSize(type);
    if (static_cast<std::uint64_t>(numel) > (bytes.size() - pos) / element_size)
      bad(path, "storage " + key + " of " + std::to_string(numel) + " element(s) is larger than the file");
    return storages[key] = torch::empty({numel}, torch::TensorOptions().dtype(type));
  });
  const PyRef keys = next(nullptr);
  if (keys->kind != PyObject::Kind::kList) bad(path, "legacy torch.save file without its list of storage keys");
  for (const auto& key : keys->items) {
    const auto it = storages.find(key->text);
    if (key->kind != PyObject::Kind::kString || it == storages.end())
      bad(path, "storage key '" + key->text + "' that no tensor uses");
    if (bytes.size() - pos < 8) bad(path, "truncated before storage " + key->text);
    std::uint64_t count = 0;
    for (int i = 7; i >= 0; --i) count = (count << 8) | static_cast<unsigned char>(bytes[pos + i]);
    pos += 8;
    torch::Tensor& storage = it->second;
    const std::uint64_t size = static_cast<std::uint64_t>(storage.numel()) * storage.element_size();
    if (count != static_cast<std::uint64_t>(storage.numel()) || size > bytes.size() - pos)
      bad(path, "storage " + key->text + " holds " + std::to_string(count) + " element(s) in " +
                    std::to_string(bytes.size() - pos) + " byte(s) left, expected " + std::to_string(storage.numel()));
    if (size) std::memcpy(storage.data_ptr(), bytes.data() + pos, size);
    pos += size;
  }
  return root;
}

}  // namespace

bool looks_like_legacy_torch_save(const std::vector<char>& bytes) {
  return bytes.size() >= sizeof kLegacyMagic && std::memcmp(bytes.data(), kLegacyMagic, sizeof kLegacyMagic) == 0;
}

models::NamedTensors read_torch_state_dict(const std::string& path) {
  std::vector<char> bytes;
  {
    std::ifstream in(path, std::ios::binary);
    char head[sizeof kLegacyMagic] = {0};
    in.read(head, sizeof head);
    bytes.assign(head, head + in.gcount());
  }
  if (looks_like_legacy_torch_save(bytes)) return state_dict_of(read_legacy(read_file(path), path), path);
  return state_dict_of(read_zip(path), path);
}

}  // namespace lgd::exporting
