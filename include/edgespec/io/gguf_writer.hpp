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

  void write(const std::string& path, std::uint32_t alignment = gguf::kDefaultAlignment) const {
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
    for (const Tensor& t : tensors_) {
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
