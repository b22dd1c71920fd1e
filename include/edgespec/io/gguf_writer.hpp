// GGUF v3 writer: metadata plus tensors streamed one at a time (a 1B-parameter F32 model never has to be
// in memory at once). Layout as documented in gguf.hpp; keys as llama.cpp names them, so files load there too.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "edgespec/core/dtype.hpp"
#include "edgespec/core/error.hpp"
#include "edgespec/io/gguf.hpp"

namespace edgespec {

class GgufWriter {
 public:
  // fill(dst): writes exactly row_bytes(type, ne[0]) * rows bytes of tensor data into dst.
  using Filler = std::function<void(std::byte* dst)>;

  void set_u32(std::string key, std::uint32_t v) { scalar(std::move(key), gguf::ValueType::U32, &v, 4); }
  void set_i32(std::string key, std::int32_t v) { scalar(std::move(key), gguf::ValueType::I32, &v, 4); }
  void set_f32(std::string key, float v) { scalar(std::move(key), gguf::ValueType::F32, &v, 4); }
  void set_bool(std::string key, bool v) {
    const std::uint8_t b = v ? 1 : 0;
    scalar(std::move(key), gguf::ValueType::Bool, &b, 1);
  }
  void set_string(std::string key, std::string_view v) {
    Entry e{std::move(key), {}};
    put<std::uint32_t>(e.bytes, static_cast<std::uint32_t>(gguf::ValueType::String));
    put_string(e.bytes, v);
    kv_.push_back(std::move(e));
  }
  void set_strings(std::string key, std::span<const std::string> v) {
    Entry e = array_header(std::move(key), gguf::ValueType::String, v.size());
    for (const std::string& s : v) put_string(e.bytes, s);
    kv_.push_back(std::move(e));
  }
  void set_f32s(std::string key, std::span<const float> v) {
    Entry e = array_header(std::move(key), gguf::ValueType::F32, v.size());
    for (float x : v) put<float>(e.bytes, x);
    kv_.push_back(std::move(e));
  }
  void set_i32s(std::string key, std::span<const std::int32_t> v) {
    Entry e = array_header(std::move(key), gguf::ValueType::I32, v.size());
    for (std::int32_t x : v) put<std::int32_t>(e.bytes, x);
    kv_.push_back(std::move(e));
  }

  // A value read by GgufFile, re-encoded with its own type (nested arrays, which GgufFile does not keep, are refused).
  void set_value(std::string key, const gguf::Value& v) {
    using gguf::ValueType;
    if (v.type == ValueType::String) return set_string(std::move(key), v.s);
    if (v.type != ValueType::Array) {
      Entry e{std::move(key), {}};
      put<std::uint32_t>(e.bytes, static_cast<std::uint32_t>(v.type));
      put_scalar(e.bytes, v.type, v.i, v.u, v.f);
      kv_.push_back(std::move(e));
      return;
    }
    ES_CHECK(v.elem_type != ValueType::Array, "gguf writer: metadata '", key, "' is an array of arrays (not supported)");
    Entry e = array_header(std::move(key), v.elem_type, v.array_size);
    for (std::uint64_t k = 0; k < v.array_size; ++k) {
      if (v.elem_type == ValueType::String) {
        put_string(e.bytes, v.strings[k]);
      } else if (gguf::is_float(v.elem_type)) {
        put_scalar(e.bytes, v.elem_type, 0, 0, v.floats[k]);
      } else {
        const std::int64_t i = v.ints[k];
        put_scalar(e.bytes, v.elem_type, i, static_cast<std::uint64_t>(i), 0.0);
      }
    }
    kv_.push_back(std::move(e));
  }

  [[nodiscard]] bool has(std::string_view key) const {
    for (const Entry& e : kv_)
      if (e.key == key) return true;
    return false;
  }

  // ne[0] is the contiguous dimension (a matrix with `rows` rows of `cols` values: ne = {cols, rows}).
  void add_tensor(std::string name, std::vector<std::int64_t> ne, DType type, Filler fill) {
    ES_CHECK(!ne.empty() && ne.size() <= gguf::kMaxDims, "gguf writer: tensor '", name, "' needs 1..4 dimensions");
    ES_CHECK(ne[0] % block_values(type) == 0, "gguf writer: tensor '", name, "' row length ", ne[0],
             " is not a multiple of the ", edgespec::name(type), " block size ", block_values(type));
    std::uint64_t rows = 1;
    for (std::size_t d = 1; d < ne.size(); ++d) rows *= static_cast<std::uint64_t>(ne[d]);
    const std::uint64_t n_bytes = static_cast<std::uint64_t>(row_bytes(type, ne[0])) * rows;
    tensors_.push_back({std::move(name), std::move(ne), type, n_bytes, std::move(fill)});
  }

  // Called before each tensor is filled and written: (index, count, name, type, bytes).
  using Progress = std::function<void(std::size_t, std::size_t, const std::string&, DType, std::uint64_t)>;

  void write(const std::string& path, std::uint32_t alignment = gguf::kDefaultAlignment,
             const Progress& progress = {}) const {
    std::vector<std::byte> head;
    put<std::uint32_t>(head, gguf::kMagic);
    put<std::uint32_t>(head, 3);
    put<std::uint64_t>(head, tensors_.size());
    put<std::uint64_t>(head, kv_.size());
    for (const Entry& e : kv_) {
      put_string(head, e.key);
      head.insert(head.end(), e.bytes.begin(), e.bytes.end());
    }
    std::uint64_t offset = 0;
    for (const Tensor& t : tensors_) {
      put_string(head, t.name);
      put<std::uint32_t>(head, static_cast<std::uint32_t>(t.ne.size()));
      for (std::int64_t n : t.ne) put<std::uint64_t>(head, static_cast<std::uint64_t>(n));
      put<std::uint32_t>(head, static_cast<std::uint32_t>(t.type));
      put<std::uint64_t>(head, offset);
      offset += pad(t.n_bytes, alignment);
    }
    head.resize(pad(head.size(), alignment));

    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
    ES_CHECK(f != nullptr, path, ": cannot open for writing");
    auto write_bytes = [&](const void* p, std::size_t n) {
      ES_CHECK(std::fwrite(p, 1, n, f.get()) == n, path, ": write failed (disk full?)");
    };
    write_bytes(head.data(), head.size());
    std::vector<std::byte> buf;
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      const Tensor& t = tensors_[i];
      if (progress) progress(i, tensors_.size(), t.name, t.type, t.n_bytes);
      buf.assign(pad(t.n_bytes, alignment), std::byte{0});
      t.fill(buf.data());
      write_bytes(buf.data(), buf.size());
    }
    ES_CHECK(std::fflush(f.get()) == 0, path, ": write failed");
  }

 private:
  struct Entry {
    std::string key;
    std::vector<std::byte> bytes;  // type tag + encoded value
  };
  struct Tensor {
    std::string name;
    std::vector<std::int64_t> ne;
    DType type;
    std::uint64_t n_bytes;
    Filler fill;
  };

  static std::uint64_t pad(std::uint64_t n, std::uint64_t a) { return (n + a - 1) / a * a; }
  template <class T>
  static void put(std::vector<std::byte>& out, T v) {
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    out.insert(out.end(), p, p + sizeof(T));
  }
  static void put_string(std::vector<std::byte>& out, std::string_view s) {
    put<std::uint64_t>(out, s.size());
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    out.insert(out.end(), p, p + s.size());
  }
  static void put_scalar(std::vector<std::byte>& out, gguf::ValueType t, std::int64_t i, std::uint64_t u, double f) {
    using gguf::ValueType;
    switch (t) {
      case ValueType::U8: case ValueType::Bool: put<std::uint8_t>(out, static_cast<std::uint8_t>(i)); break;
      case ValueType::I8: put<std::int8_t>(out, static_cast<std::int8_t>(i)); break;
      case ValueType::U16: put<std::uint16_t>(out, static_cast<std::uint16_t>(i)); break;
      case ValueType::I16: put<std::int16_t>(out, static_cast<std::int16_t>(i)); break;
      case ValueType::U32: put<std::uint32_t>(out, static_cast<std::uint32_t>(i)); break;
      case ValueType::I32: put<std::int32_t>(out, static_cast<std::int32_t>(i)); break;
      case ValueType::U64: put<std::uint64_t>(out, u); break;
      case ValueType::I64: put<std::int64_t>(out, i); break;
      case ValueType::F32: put<float>(out, static_cast<float>(f)); break;
      case ValueType::F64: put<double>(out, f); break;
      default: throw_error("gguf writer: value type ", static_cast<std::uint32_t>(t), " is not a scalar");
    }
  }
  void scalar(std::string key, gguf::ValueType t, const void* v, std::size_t n) {
    Entry e{std::move(key), {}};
    put<std::uint32_t>(e.bytes, static_cast<std::uint32_t>(t));
    const auto* p = static_cast<const std::byte*>(v);
    e.bytes.insert(e.bytes.end(), p, p + n);
    kv_.push_back(std::move(e));
  }
  static Entry array_header(std::string key, gguf::ValueType elem, std::size_t n) {
    Entry e{std::move(key), {}};
    put<std::uint32_t>(e.bytes, static_cast<std::uint32_t>(gguf::ValueType::Array));
    put<std::uint32_t>(e.bytes, static_cast<std::uint32_t>(elem));
    put<std::uint64_t>(e.bytes, n);
    return e;
  }

  std::vector<Entry> kv_;
  std::vector<Tensor> tensors_;
};

}  // namespace edgespec
