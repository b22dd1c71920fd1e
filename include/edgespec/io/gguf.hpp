// GGUF reader (versions 2 and 3), memory-mapped and zero-copy for tensor data.
//
// Byte layout (all little-endian):
//   u32 magic = "GGUF"   u32 version   u64 n_tensors   u64 n_kv
//   n_kv x { string key; u32 value_type; value }
//   n_tensors x { string name; u32 n_dims; u64 ne[n_dims]; u32 ggml_type; u64 offset }
//   padding to `general.alignment` (default 32)
//   tensor data: tensor i starts at data_start + offset_i (offsets aligned too)
// where string = { u64 len; char bytes[len] } and an array value = { u32 elem_type; u64 n; elems... }.
// ne[0] is the contiguous (innermost) dimension: a matrix W (rows, cols) is stored as ne = {cols, rows}.
//
// Every count, length and offset is checked against the file size before use: a malformed file gives an
// edgespec::Error naming the file and the field, never an out-of-bounds read.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "edgespec/core/dtype.hpp"
#include "edgespec/core/error.hpp"
#include "edgespec/io/mapped_file.hpp"

namespace edgespec {

namespace gguf {

inline constexpr std::uint32_t kMagic = 0x46554747u;  // "GGUF" read as little-endian u32
inline constexpr std::uint32_t kDefaultAlignment = 32;
inline constexpr int kMaxDims = 4;

enum class ValueType : std::uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7,
  String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
};

[[nodiscard]] constexpr std::string_view value_type_name(ValueType t) noexcept {
  constexpr std::string_view names[] = {"u8",  "i8",    "u16",   "i16", "u32", "i32", "f32",
                                        "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<std::uint32_t>(t);
  return i < std::size(names) ? names[i] : std::string_view("invalid");
}
[[nodiscard]] constexpr bool is_integer(ValueType t) noexcept {
  return t == ValueType::U8 || t == ValueType::I8 || t == ValueType::U16 || t == ValueType::I16 ||
         t == ValueType::U32 || t == ValueType::I32 || t == ValueType::U64 || t == ValueType::I64;
}
[[nodiscard]] constexpr bool is_float(ValueType t) noexcept { return t == ValueType::F32 || t == ValueType::F64; }
// Encoded size of a scalar (0 for string/array, which are variable).
[[nodiscard]] constexpr std::size_t scalar_size(ValueType t) noexcept {
  switch (t) {
    case ValueType::U8: case ValueType::I8: case ValueType::Bool: return 1;
    case ValueType::U16: case ValueType::I16: return 2;
    case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
    case ValueType::U64: case ValueType::I64: case ValueType::F64: return 8;
    default: return 0;
  }
}

// One metadata value. Scalars keep their exact value (integers as i64, or u64 when they do not fit);
// arrays of scalars and of strings are kept element-wise.
struct Value {
  ValueType type = ValueType::U8;
  ValueType elem_type = ValueType::U8;  // arrays only
  std::int64_t i = 0;                   // integer scalars (u64 above i64 max: see `u`)
  std::uint64_t u = 0;
  double f = 0.0;                       // f32/f64 scalars
  bool b = false;
  std::string s;
  std::uint64_t array_size = 0;
  std::vector<std::int64_t> ints;       // integer / bool arrays
  std::vector<double> floats;           // f32 / f64 arrays
  std::vector<std::string> strings;     // string arrays
};

struct TensorInfo {
  std::string name;
  int n_dims = 0;
  std::array<std::int64_t, kMaxDims> ne{1, 1, 1, 1};  // ne[0] contiguous
  DType type = DType::F32;
  std::uint64_t offset = 0;  // relative to the data section
  std::uint64_t n_bytes = 0;
  const std::byte* data = nullptr;  // into the mapping

  [[nodiscard]] std::int64_t n_elements() const noexcept { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

}  // namespace gguf

class GgufFile {
 public:
  explicit GgufFile(std::string path) : file_(std::make_shared<MappedFile>(std::move(path))) { parse(); }

  [[nodiscard]] const std::string& path() const noexcept { return file_->path(); }
  [[nodiscard]] std::uint32_t version() const noexcept { return version_; }
  [[nodiscard]] std::uint32_t alignment() const noexcept { return alignment_; }
  [[nodiscard]] const std::shared_ptr<MappedFile>& mapping() const noexcept { return file_; }
  [[nodiscard]] const std::map<std::string, gguf::Value, std::less<>>& metadata() const noexcept { return kv_; }
  [[nodiscard]] const std::vector<gguf::TensorInfo>& tensors() const noexcept { return tensors_; }

  [[nodiscard]] bool has(std::string_view key) const { return kv_.find(key) != kv_.end(); }
  [[nodiscard]] const gguf::Value* find(std::string_view key) const {
    const auto it = kv_.find(key);
    return it == kv_.end() ? nullptr : &it->second;
  }
  [[nodiscard]] const gguf::Value& get(std::string_view key) const {
    const gguf::Value* v = find(key);
    ES_CHECK(v != nullptr, path(), ": required metadata key '", key, "' is missing");
    return *v;
  }

  [[nodiscard]] std::optional<std::string> find_string(std::string_view key) const {
    const gguf::Value* v = find(key);
    if (v == nullptr) return std::nullopt;
    expect(key, *v, gguf::ValueType::String);
    return v->s;
  }
  [[nodiscard]] std::string get_string(std::string_view key) const {
    const auto v = find_string(key);
    ES_CHECK(v.has_value(), path(), ": required metadata key '", key, "' is missing");
    return *v;
  }
  [[nodiscard]] std::optional<std::int64_t> find_int(std::string_view key) const {
    const gguf::Value* v = find(key);
    if (v == nullptr) return std::nullopt;
    ES_CHECK(gguf::is_integer(v->type), path(), ": metadata '", key, "' has type ", gguf::value_type_name(v->type),
             ", expected an integer");
    ES_CHECK(v->u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()), path(), ": metadata '",
             key, "' = ", v->u, " is out of range");
    return v->i;
  }
  [[nodiscard]] std::int64_t get_int(std::string_view key) const {
    const auto v = find_int(key);
    ES_CHECK(v.has_value(), path(), ": required metadata key '", key, "' is missing");
    return *v;
  }
  // Floats must be finite: NaN/inf metadata is rejected here, with the key named.
  [[nodiscard]] std::optional<double> find_float(std::string_view key) const {
    const gguf::Value* v = find(key);
    if (v == nullptr) return std::nullopt;
    double x;
    if (gguf::is_float(v->type)) x = v->f;
    else if (gguf::is_integer(v->type)) x = static_cast<double>(v->i);
    else throw_error(path(), ": metadata '", key, "' has type ", gguf::value_type_name(v->type), ", expected a number");
    ES_CHECK(std::isfinite(x), path(), ": metadata '", key, "' is not a finite number (", x, ")");
    return x;
  }
  [[nodiscard]] double get_float(std::string_view key) const {
    const auto v = find_float(key);
    ES_CHECK(v.has_value(), path(), ": required metadata key '", key, "' is missing");
    return *v;
  }
  [[nodiscard]] std::optional<bool> find_bool(std::string_view key) const {
    const gguf::Value* v = find(key);
    if (v == nullptr) return std::nullopt;
    expect(key, *v, gguf::ValueType::Bool);
    return v->b;
  }
  [[nodiscard]] std::vector<std::string> get_string_array(std::string_view key) const {
    const gguf::Value& v = get(key);
    expect_array(key, v, gguf::ValueType::String);
    return v.strings;
  }
  [[nodiscard]] std::vector<float> get_float_array(std::string_view key) const {
    const gguf::Value& v = get(key);
    ES_CHECK(v.type == gguf::ValueType::Array && (gguf::is_float(v.elem_type) || gguf::is_integer(v.elem_type)), path(),
             ": metadata '", key, "' is not an array of numbers");
    std::vector<float> out;
    out.reserve(v.array_size);
    if (gguf::is_float(v.elem_type))
      for (double x : v.floats) out.push_back(static_cast<float>(x));
    else
      for (std::int64_t x : v.ints) out.push_back(static_cast<float>(x));
    return out;
  }
  [[nodiscard]] std::vector<std::int32_t> get_int_array(std::string_view key) const {
    const gguf::Value& v = get(key);
    ES_CHECK(v.type == gguf::ValueType::Array && gguf::is_integer(v.elem_type), path(), ": metadata '", key,
             "' is not an array of integers");
    std::vector<std::int32_t> out;
    out.reserve(v.array_size);
    for (std::int64_t x : v.ints) {
      ES_CHECK(x >= std::numeric_limits<std::int32_t>::min() && x <= std::numeric_limits<std::int32_t>::max(),
               path(), ": metadata '", key, "' has element ", x, " outside the int32 range");
      out.push_back(static_cast<std::int32_t>(x));
    }
    return out;
  }

  [[nodiscard]] const gguf::TensorInfo* find_tensor(std::string_view name) const {
    const auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
  }
  [[nodiscard]] const gguf::TensorInfo& tensor(std::string_view name) const {
    const gguf::TensorInfo* t = find_tensor(name);
    ES_CHECK(t != nullptr, path(), ": tensor '", name, "' is missing");
    return *t;
  }

 private:
  void expect(std::string_view key, const gguf::Value& v, gguf::ValueType t) const {
    ES_CHECK(v.type == t, path(), ": metadata '", key, "' has type ", gguf::value_type_name(v.type), ", expected ",
             gguf::value_type_name(t));
  }
  void expect_array(std::string_view key, const gguf::Value& v, gguf::ValueType elem) const {
    ES_CHECK(v.type == gguf::ValueType::Array && v.elem_type == elem, path(), ": metadata '", key,
             "' is not an array of ", gguf::value_type_name(elem));
  }

  static std::string read_gguf_string(ByteReader& r, std::string_view what) {
    const auto len = r.read<std::uint64_t>(what);
    ES_CHECK(len <= r.remaining(), r.source(), ": ", what, " length ", len, " exceeds the ", r.remaining(),
             " bytes left in the file");
    return r.read_string(static_cast<std::size_t>(len), what);
  }

  static void read_scalar(ByteReader& r, gguf::ValueType t, gguf::Value& v, const std::string& key) {
    using gguf::ValueType;
    const std::string what = "value of '" + key + "'";
    switch (t) {
      case ValueType::U8: v.i = r.read<std::uint8_t>(what); break;
      case ValueType::I8: v.i = r.read<std::int8_t>(what); break;
      case ValueType::U16: v.i = r.read<std::uint16_t>(what); break;
      case ValueType::I16: v.i = r.read<std::int16_t>(what); break;
      case ValueType::U32: v.i = r.read<std::uint32_t>(what); break;
      case ValueType::I32: v.i = r.read<std::int32_t>(what); break;
      case ValueType::U64: {
        v.u = r.read<std::uint64_t>(what);
        v.i = static_cast<std::int64_t>(v.u);
        return;
      }
      case ValueType::I64: v.i = r.read<std::int64_t>(what); break;
      case ValueType::F32: v.f = r.read<float>(what); return;
      case ValueType::F64: v.f = r.read<double>(what); return;
      case ValueType::Bool: {
        const auto b = r.read<std::uint8_t>(what);
        ES_CHECK(b <= 1, r.source(), ": ", what, " is a bool with invalid byte ", int(b));
        v.b = b != 0;
        v.i = b;
        return;
      }
      default: throw_error(r.source(), ": ", what, " has invalid type ", static_cast<std::uint32_t>(t));
    }
    v.u = v.i < 0 ? 0 : static_cast<std::uint64_t>(v.i);
  }

  static void read_value(ByteReader& r, gguf::ValueType t, gguf::Value& v, const std::string& key, int depth) {
    using gguf::ValueType;
    v.type = t;
    if (t == ValueType::String) {
      v.s = read_gguf_string(r, "string value of '" + key + "'");
      return;
    }
    if (t != ValueType::Array) {
      read_scalar(r, t, v, key);
      return;
    }
    const auto et_raw = r.read<std::uint32_t>("array element type of '" + key + "'");
    ES_CHECK(et_raw <= 12, r.source(), ": array '", key, "' has invalid element type ", et_raw);
    const auto et = static_cast<ValueType>(et_raw);
    const auto n = r.read<std::uint64_t>("array length of '" + key + "'");
    // Every element takes at least one byte (a string at least 8): bound the count by what is left.
    const std::size_t min_elem = et == ValueType::String ? 8 : et == ValueType::Array ? 12 : scalar_size(et);
    ES_CHECK(n <= r.remaining() / min_elem, r.source(), ": array '", key, "' claims ", n,
             " elements, more than the file can hold");
    v.elem_type = et;
    v.array_size = n;
    if (et == ValueType::String) {
      v.strings.reserve(n);
      for (std::uint64_t k = 0; k < n; ++k) v.strings.push_back(read_gguf_string(r, "element of '" + key + "'"));
    } else if (et == ValueType::Array) {
      ES_CHECK(depth < 4, r.source(), ": array '", key, "' nests arrays too deeply");
      gguf::Value inner;  // nested arrays are validated and skipped: no llama key uses them
      for (std::uint64_t k = 0; k < n; ++k) read_value(r, ValueType::Array, inner, key, depth + 1);
    } else if (is_float(et)) {
      v.floats.reserve(n);
      gguf::Value e;
      for (std::uint64_t k = 0; k < n; ++k) {
        read_scalar(r, et, e, key);
        v.floats.push_back(e.f);
      }
    } else {
      v.ints.reserve(n);
      gguf::Value e;
      for (std::uint64_t k = 0; k < n; ++k) {
        read_scalar(r, et, e, key);
        v.ints.push_back(e.i);
      }
    }
  }

  void parse() {
    ByteReader r(file_->data(), file_->size(), file_->path());
    const auto magic = r.read<std::uint32_t>("magic");
    ES_CHECK(magic == gguf::kMagic, path(), ": not a GGUF file (bad magic 0x", std::hex, magic, ")");
    version_ = r.read<std::uint32_t>("version");
    ES_CHECK(version_ == 2 || version_ == 3, path(), ": GGUF version ", version_, " is not supported (expected 2 or 3)");
    const auto n_tensors = r.read<std::uint64_t>("tensor count");
    const auto n_kv = r.read<std::uint64_t>("metadata count");
    // A key/value pair takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info at least 8+4+4+8.
    ES_CHECK(n_kv <= r.remaining() / 13, path(), ": metadata count ", n_kv, " is larger than the file can hold");
    ES_CHECK(n_tensors <= r.remaining() / 24, path(), ": tensor count ", n_tensors, " is larger than the file can hold");

    for (std::uint64_t k = 0; k < n_kv; ++k) {
      std::string key = read_gguf_string(r, "metadata key");
      const auto t = r.read<std::uint32_t>("type of metadata '" + key + "'");
      ES_CHECK(t <= 12, path(), ": metadata '", key, "' has invalid value type ", t);
      gguf::Value v;
      read_value(r, static_cast<gguf::ValueType>(t), v, key, 0);
      ES_CHECK(kv_.find(key) == kv_.end(), path(), ": metadata key '", key, "' appears twice");
      kv_.emplace(std::move(key), std::move(v));
    }

    alignment_ = gguf::kDefaultAlignment;
    if (const gguf::Value* a = find("general.alignment")) {
      ES_CHECK(gguf::is_integer(a->type), path(), ": general.alignment must be an integer");
      ES_CHECK(a->i > 0 && a->i <= 65536 && (a->i & (a->i - 1)) == 0, path(), ": general.alignment ", a->i,
               " is not a power of two in [1, 65536]");
      alignment_ = static_cast<std::uint32_t>(a->i);
    }

    tensors_.reserve(n_tensors);
    for (std::uint64_t k = 0; k < n_tensors; ++k) {
      gguf::TensorInfo t;
      t.name = read_gguf_string(r, "tensor name");
      const std::string what = "tensor '" + t.name + "'";
      const auto n_dims = r.read<std::uint32_t>(what + " dimension count");
      ES_CHECK(n_dims >= 1 && n_dims <= gguf::kMaxDims, path(), ": ", what, " has ", n_dims,
               " dimensions (expected 1..4)");
      t.n_dims = static_cast<int>(n_dims);
      std::uint64_t n_elem = 1;
      for (std::uint32_t d = 0; d < n_dims; ++d) {
        const auto ne = r.read<std::uint64_t>(what + " shape");
        ES_CHECK(ne >= 1 && ne <= (std::uint64_t{1} << 40), path(), ": ", what, " has dimension ", d, " = ", ne);
        ES_CHECK(n_elem <= (std::uint64_t{1} << 42) / ne, path(), ": ", what, " has an absurd element count");
        n_elem *= ne;
        t.ne[d] = static_cast<std::int64_t>(ne);
      }
      const auto type = r.read<std::uint32_t>(what + " type");
      ES_CHECK(is_supported(type), path(), ": ", what, " has type ", ggml_type_name(type), " (", type,
               "), which edgespec does not support (supported: F32, F16, BF16, Q8_0, Q4_0)");
      t.type = static_cast<DType>(type);
      ES_CHECK(t.ne[0] % block_values(t.type) == 0, path(), ": ", what, " of type ", name(t.type), " has row length ",
               t.ne[0], ", not a multiple of the block size ", block_values(t.type));
      t.n_bytes = static_cast<std::uint64_t>(row_bytes(t.type, t.ne[0])) * (n_elem / static_cast<std::uint64_t>(t.ne[0]));
      t.offset = r.read<std::uint64_t>(what + " offset");
      ES_CHECK(t.offset % alignment_ == 0, path(), ": ", what, " offset ", t.offset, " is not aligned to ", alignment_);
      ES_CHECK(tensor_index_.find(t.name) == tensor_index_.end(), path(), ": tensor '", t.name, "' appears twice");
      tensor_index_.emplace(t.name, tensors_.size());
      tensors_.push_back(std::move(t));
    }

    const std::size_t data_start = (r.pos() + alignment_ - 1) / alignment_ * alignment_;
    const std::size_t data_size = data_start <= file_->size() ? file_->size() - data_start : 0;
    for (gguf::TensorInfo& t : tensors_) {
      ES_CHECK(t.offset <= data_size && t.n_bytes <= data_size - t.offset, path(), ": tensor '", t.name,
               "' (offset ", t.offset, ", ", t.n_bytes, " bytes) extends past the end of the file (data section is ",
               data_size, " bytes)");
      t.data = file_->data() + data_start + t.offset;
    }
  }

  std::shared_ptr<MappedFile> file_;
  std::uint32_t version_ = 0;
  std::uint32_t alignment_ = gguf::kDefaultAlignment;
  std::map<std::string, gguf::Value, std::less<>> kv_;
  std::vector<gguf::TensorInfo> tensors_;
  std::map<std::string, std::size_t, std::less<>> tensor_index_;
};

}  // namespace edgespec
