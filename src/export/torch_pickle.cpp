#include "lgd/export/torch_pickle.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <unordered_map>

#include "lgd/core/errors.h"

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

class Unpickler {
 public:
  Unpickler(caffe2::serialize::PyTorchStreamReader& archive, const std::vector<char>& pickle,
            std::string source)
      : archive_(archive), data_(pickle), source_(std::move(source)) {}

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
    const std::string record = "data/" + key;
    if (!archive_.hasRecord(record)) fail("record " + record + " is missing");
    // The record's size bounds the allocation: the count is checked against it first.
    const std::size_t element_size = c10::elementSize(type->type);
    auto [ptr, size] = archive_.getRecord(record);
    if (size % element_size != 0 || static_cast<std::uint64_t>(numel) != size / element_size)
      fail("record " + record + " has " + std::to_string(size) + " bytes, expected " +
           std::to_string(numel) + " element(s) of " + std::to_string(element_size) + " bytes");
    auto storage = torch::empty({numel}, torch::TensorOptions().dtype(type->type));
    if (size) std::memcpy(storage.data_ptr(), ptr.get(), size);
    storages_[key] = storage;
    o->tensor = storage;
    return o;
  }

  caffe2::serialize::PyTorchStreamReader& archive_;
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

models::NamedTensors read_torch_state_dict(const std::string& path) {
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> archive;
  try {
    archive = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const c10::Error& e) {
    throw IoError(path + ": not a torch.save zip archive (" +
                  std::string(e.what_without_backtrace()).substr(0, 120) + ")");
  }
  PyRef root;
  try {
    if (archive->hasRecord("byteorder")) {
      auto [ptr, size] = archive->getRecord("byteorder");
      if (std::string(static_cast<const char*>(ptr.get()), size) != "little")
        throw IoError(path + ": big-endian torch.save archives are not supported");
    }
    if (!archive->hasRecord("data.pkl"))
      throw IoError(path + ": torch.save archive without data.pkl");
    auto [ptr, size] = archive->getRecord("data.pkl");
    const std::vector<char> pickle(static_cast<const char*>(ptr.get()),
                                   static_cast<const char*>(ptr.get()) + size);
    root = Unpickler(*archive, pickle, path).run();

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
  } catch (const c10::Error& e) {  // the archive's own checks (CRC, record offsets)
    throw IoError(path + ": corrupt torch.save archive (" +
                  std::string(e.what_without_backtrace()).substr(0, 160) + ")");
  }
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

}  // namespace lgd::exporting
