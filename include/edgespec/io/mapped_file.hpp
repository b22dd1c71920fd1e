// Read-only memory-mapped file and a bounds-checked byte cursor over it.
// Weights are used in place (zero-copy): tensors are views into the mapping, so the mapping outlives them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edgespec/core/error.hpp"

namespace edgespec {

class MappedFile {
 public:
  explicit MappedFile(std::string path) : path_(std::move(path)) {
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    ES_CHECK(fd >= 0, path_, ": cannot open file: ", std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      throw_error(path_, ": not a regular file");
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        throw_error(path_, ": mmap failed: ", std::strerror(errno));
      }
      data_ = static_cast<const std::byte*>(p);
    }
    ::close(fd);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
  }

  [[nodiscard]] const std::byte* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// Little-endian cursor over [begin, begin + size). Every read is checked; a short read throws with the
// name of the source and the field being read.
class ByteReader {
 public:
  ByteReader(const std::byte* begin, std::size_t size, std::string source)
      : begin_(begin), size_(size), source_(std::move(source)) {}

  template <class T>
  T read(std::string_view what) {
    static_assert(std::is_trivially_copyable_v<T>);
    require(sizeof(T), what);
    T v;
    std::memcpy(&v, begin_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(std::size_t n, std::string_view what) {
    require(n, what);
    std::string s(reinterpret_cast<const char*>(begin_ + pos_), n);
    pos_ += n;
    return s;
  }
  void skip(std::size_t n, std::string_view what) {
    require(n, what);
    pos_ += n;
  }
  void require(std::size_t n, std::string_view what) const {
    ES_CHECK(n <= size_ - pos_, source_, ": truncated while reading ", what, " at byte ", pos_, " (need ", n,
             " bytes, ", size_ - pos_, " left)");
  }
  [[nodiscard]] std::size_t pos() const noexcept { return pos_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::size_t remaining() const noexcept { return size_ - pos_; }
  [[nodiscard]] const std::byte* here() const noexcept { return begin_ + pos_; }
  [[nodiscard]] const std::string& source() const noexcept { return source_; }
  void seek(std::size_t pos, std::string_view what) {
    ES_CHECK(pos <= size_, source_, ": ", what, " offset ", pos, " is past the end (size ", size_, ")");
    pos_ = pos;
  }

 private:
  const std::byte* begin_;
  std::size_t size_;
  std::size_t pos_ = 0;
  std::string source_;
};

}  // namespace edgespec
