// The OpenCL device a model placed OnGPU runs on: selection, context and queue, and program builds cached on
// disk. Needs the OpenCL C++ bindings and an ICD loader (Debian: opencl-clhpp-headers, ocl-icd-opencl-dev; a
// driver: the GPU vendor's, or pocl-opencl-icd for the CPU) and linking OpenCL::OpenCL.
//
// Device selection (EDGESPEC_OPENCL_DEVICE):
//   unset          the first GPU of any platform, else the first device of any type
//   "P:D"          device D of platform P (indices as `clinfo -l` lists them)
//   text           the first device whose "platform device" name contains it (case-insensitive), e.g. "pocl"
//
// Program cache: a built program's binary is stored in EDGESPEC_OPENCL_CACHE (default
// $XDG_CACHE_HOME/edgespec/opencl, else ~/.cache/edgespec/opencl), named by a hash of the source, the build
// options, and the device's name, version and driver version; a later start loads it instead of compiling
// (PoCL compiles through LLVM: seconds per program). EDGESPEC_OPENCL_CACHE=off disables it.
#pragma once

#ifndef CL_HPP_TARGET_OPENCL_VERSION
#define CL_HPP_TARGET_OPENCL_VERSION 300
#endif
#ifndef CL_HPP_MINIMUM_OPENCL_VERSION
#define CL_HPP_MINIMUM_OPENCL_VERSION 200
#endif
#ifndef CL_HPP_ENABLE_EXCEPTIONS
#define CL_HPP_ENABLE_EXCEPTIONS
#endif
#include <CL/opencl.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

#include "edgespec/core/error.hpp"

namespace edgespec::opencl {

struct DeviceInfo {
  int platform_index = 0, device_index = 0;
  std::string platform, name, version, driver, c_version;
  bool is_gpu = false;
  std::uint64_t global_memory = 0, max_alloc = 0;
  std::size_t max_work_group = 0;
};

namespace detail {

inline std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

inline std::uint64_t fnv1a(std::string_view s, std::uint64_t h = 1469598103934665603ull) {
  for (const unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

inline const char* cl_error_name(cl_int e) {
  switch (e) {
    case CL_DEVICE_NOT_FOUND: return "CL_DEVICE_NOT_FOUND";
    case CL_OUT_OF_RESOURCES: return "CL_OUT_OF_RESOURCES";
    case CL_OUT_OF_HOST_MEMORY: return "CL_OUT_OF_HOST_MEMORY";
    case CL_MEM_OBJECT_ALLOCATION_FAILURE: return "CL_MEM_OBJECT_ALLOCATION_FAILURE";
    case CL_BUILD_PROGRAM_FAILURE: return "CL_BUILD_PROGRAM_FAILURE";
    case CL_INVALID_VALUE: return "CL_INVALID_VALUE";
    case CL_INVALID_BUFFER_SIZE: return "CL_INVALID_BUFFER_SIZE";
    case CL_INVALID_KERNEL_ARGS: return "CL_INVALID_KERNEL_ARGS";
    case CL_INVALID_WORK_GROUP_SIZE: return "CL_INVALID_WORK_GROUP_SIZE";
    case CL_PLATFORM_NOT_FOUND_KHR: return "CL_PLATFORM_NOT_FOUND_KHR (no OpenCL driver installed)";
    default: return "OpenCL error";
  }
}

}  // namespace detail

// Throws edgespec::Error for an OpenCL call that failed, naming what was being done.
template <class F>
decltype(auto) cl_call(const char* what, F&& f) {
  try {
    return f();
  } catch (const cl::Error& e) {
    throw_error("OpenCL: ", what, ": ", e.what(), " failed with ", e.err(), " (", detail::cl_error_name(e.err()), ")");
  }
}

// Every OpenCL device of every platform.
[[nodiscard]] inline std::vector<std::pair<DeviceInfo, cl::Device>> list_devices() {
  std::vector<cl::Platform> platforms;
  try {
    cl::Platform::get(&platforms);
  } catch (const cl::Error&) {
    platforms.clear();
  }
  std::vector<std::pair<DeviceInfo, cl::Device>> out;
  for (std::size_t p = 0; p < platforms.size(); ++p) {
    std::vector<cl::Device> devices;
    try {
      platforms[p].getDevices(CL_DEVICE_TYPE_ALL, &devices);
    } catch (const cl::Error&) {
      continue;
    }
    for (std::size_t d = 0; d < devices.size(); ++d) {
      DeviceInfo i;
      i.platform_index = static_cast<int>(p);
      i.device_index = static_cast<int>(d);
      i.platform = platforms[p].getInfo<CL_PLATFORM_NAME>();
      i.name = devices[d].getInfo<CL_DEVICE_NAME>();
      i.version = devices[d].getInfo<CL_DEVICE_VERSION>();
      i.driver = devices[d].getInfo<CL_DRIVER_VERSION>();
      i.c_version = devices[d].getInfo<CL_DEVICE_OPENCL_C_VERSION>();
      i.is_gpu = (devices[d].getInfo<CL_DEVICE_TYPE>() & CL_DEVICE_TYPE_GPU) != 0;
      i.global_memory = devices[d].getInfo<CL_DEVICE_GLOBAL_MEM_SIZE>();
      i.max_alloc = devices[d].getInfo<CL_DEVICE_MAX_MEM_ALLOC_SIZE>();
      i.max_work_group = devices[d].getInfo<CL_DEVICE_MAX_WORK_GROUP_SIZE>();
      out.emplace_back(std::move(i), devices[d]);
    }
  }
  return out;
}

// A context and an in-order queue on one device, with its program cache.
class Device {
 public:
  // The device EDGESPEC_OPENCL_DEVICE names (see the top of this file); throws a clear Error when there is none.
  static std::shared_ptr<Device> open_default() {
    const char* env = std::getenv("EDGESPEC_OPENCL_DEVICE");
    return open(env != nullptr ? env : "");
  }
  static std::shared_ptr<Device> open(const std::string& selector) {
    const auto all = list_devices();
    ES_CHECK(!all.empty(), "OnGPU: no OpenCL device found (no platform or no device; install a driver: the GPU "
             "vendor's OpenCL ICD, or pocl-opencl-icd to run OpenCL on the CPU)");
    const std::pair<DeviceInfo, cl::Device>* pick = nullptr;
    if (selector.empty()) {
      for (const auto& d : all)
        if (d.first.is_gpu) {
          pick = &d;
          break;
        }
      if (pick == nullptr) pick = &all.front();
    } else if (const auto colon = selector.find(':'); colon != std::string::npos &&
               std::all_of(selector.begin(), selector.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == ':'; })) {
      const int p = std::atoi(selector.substr(0, colon).c_str()), d = std::atoi(selector.substr(colon + 1).c_str());
      for (const auto& x : all)
        if (x.first.platform_index == p && x.first.device_index == d) pick = &x;
      ES_CHECK(pick != nullptr, "EDGESPEC_OPENCL_DEVICE=", selector, ": no device ", d, " on platform ", p, " (",
               all.size(), " devices: ", names(all), ")");
    } else {
      for (const auto& x : all)
        if (detail::lower(x.first.platform + " " + x.first.name).find(detail::lower(selector)) != std::string::npos) {
          pick = &x;
          break;
        }
      ES_CHECK(pick != nullptr, "EDGESPEC_OPENCL_DEVICE=", selector, ": no device name contains it (devices: ",
               names(all), ")");
    }
    return std::shared_ptr<Device>(new Device(pick->first, pick->second));
  }

  [[nodiscard]] const DeviceInfo& info() const noexcept { return info_; }
  [[nodiscard]] const cl::Context& context() const noexcept { return ctx_; }
  [[nodiscard]] cl::CommandQueue& queue() noexcept { return queue_; }
  [[nodiscard]] const cl::Device& device() const noexcept { return dev_; }
  [[nodiscard]] std::string description() const {
    return info_.platform + " / " + info_.name + " (" + info_.version + ", driver " + info_.driver + ")";
  }

  // Builds `source` with `options` once per context; the binary is cached on disk (see the top of this file).
  cl::Program program(const std::string& source, const std::string& options) {
    std::lock_guard lock(mu_);
    const std::string key = source + '\0' + options;
    if (const auto it = programs_.find(key); it != programs_.end()) return it->second;
    cl::Program prog = build(source, options);
    programs_.emplace(key, prog);
    return prog;
  }

  // Where binaries are cached; empty when caching is off.
  [[nodiscard]] static std::filesystem::path cache_dir() {
    if (const char* e = std::getenv("EDGESPEC_OPENCL_CACHE"); e != nullptr && *e != '\0')
      return std::string(e) == "off" ? std::filesystem::path() : std::filesystem::path(e);
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x != '\0')
      return std::filesystem::path(x) / "edgespec" / "opencl";
    if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0')
      return std::filesystem::path(h) / ".cache" / "edgespec" / "opencl";
    return {};
  }

  // Programs built from source / loaded from the cache since this Device was opened (tests check the cache).
  [[nodiscard]] int compiled() const noexcept { return compiled_; }
  [[nodiscard]] int loaded_from_cache() const noexcept { return loaded_; }

 private:
  Device(DeviceInfo info, cl::Device dev) : info_(std::move(info)), dev_(std::move(dev)) {
    cl_call("creating a context and a queue", [&] {
      ctx_ = cl::Context(dev_);
      queue_ = cl::CommandQueue(ctx_, dev_);
      return 0;
    });
  }

  static std::string names(const std::vector<std::pair<DeviceInfo, cl::Device>>& all) {
    std::string s;
    for (const auto& d : all)
      s += (s.empty() ? "" : "; ") + std::to_string(d.first.platform_index) + ":" + std::to_string(d.first.device_index) +
           " " + d.first.platform + " / " + d.first.name;
    return s;
  }

  cl::Program build(const std::string& source, const std::string& options) {
    const std::filesystem::path dir = cache_dir();
    std::filesystem::path file;
    if (!dir.empty()) {
      std::uint64_t h = detail::fnv1a(source);
      h = detail::fnv1a(options, h);
      h = detail::fnv1a(info_.platform + '\0' + info_.name + '\0' + info_.version + '\0' + info_.driver, h);
      char name[32];
      std::snprintf(name, sizeof name, "%016llx.bin", static_cast<unsigned long long>(h));
      file = dir / name;
      if (auto prog = load_cached(file, options)) {
        ++loaded_;
        return *prog;
      }
    }
    cl::Program prog(ctx_, source);
    try {
      prog.build(std::vector<cl::Device>{dev_}, options.c_str());
    } catch (const cl::Error&) {
      std::string log;
      try {
        log = prog.getBuildInfo<CL_PROGRAM_BUILD_LOG>(dev_);
      } catch (const cl::Error&) {
      }
      throw_error("OpenCL: building a program for ", description(), " failed (options '", options, "'):\n", log);
    }
    ++compiled_;
    if (!file.empty()) store_cached(prog, file);
    return prog;
  }

  std::optional<cl::Program> load_cached(const std::filesystem::path& file, const std::string& options) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return std::nullopt;
    std::vector<unsigned char> bin((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bin.empty()) return std::nullopt;
    try {
      cl::Program prog(ctx_, std::vector<cl::Device>{dev_}, cl::Program::Binaries{bin});
      prog.build(std::vector<cl::Device>{dev_}, options.c_str());
      return prog;
    } catch (const cl::Error&) {
      return std::nullopt;  // stale or foreign binary: rebuild from source (and overwrite it)
    }
  }

  void store_cached(const cl::Program& prog, const std::filesystem::path& file) {
    try {
      const auto bins = prog.getInfo<CL_PROGRAM_BINARIES>();
      if (bins.empty() || bins.front().empty()) return;
      std::error_code ec;
      std::filesystem::create_directories(file.parent_path(), ec);
      const std::filesystem::path tmp = file.string() + "." + std::to_string(::getpid()) + ".tmp";
      {
        std::ofstream out(tmp, std::ios::binary);
        if (!out) return;
        out.write(reinterpret_cast<const char*>(bins.front().data()), static_cast<std::streamsize>(bins.front().size()));
        if (!out) return;
      }
      std::filesystem::rename(tmp, file, ec);
    } catch (...) {  // a cache that cannot be written costs a compile next time, nothing more
    }
  }

  DeviceInfo info_;
  cl::Device dev_;
  cl::Context ctx_;
  cl::CommandQueue queue_;
  std::mutex mu_;
  std::map<std::string, cl::Program> programs_;
  int compiled_ = 0, loaded_ = 0;
};

}  // namespace edgespec::opencl
