// Robustness of every file reader against malformed input: real small files, mutated deterministically
// (truncation at every header field boundary, huge counts/lengths/offsets, NaN and infinite floats, bad magic and
// versions, random byte flips), each fed to the readers. Every mutant must load or throw edgespec::Error; any
// other exception is a failure, and a crash or out-of-bounds access fails under ASan/UBSan (build-asan-fuzz).
// Loaded weights are checked to lie inside the mapping or owned buffers, and every value is read once.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "edgespec/io/gguf.hpp"
#include "edgespec/io/gguf_export.hpp"
#include "edgespec/model/transformer.hpp"
#include "edgespec/model/weights.hpp"
#include "edgespec/tokenizer/tokenizer.hpp"
#include "edgespec/tokenizer/vocab.hpp"
#include "test_util.hpp"

using namespace edgespec;
namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<unsigned char>;

Bytes read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE(f.good());
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("edgespec-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// A field of the original file: where it is and what it holds.
enum class Field { U32, U64, I32, F32 };
struct FieldAt {
  std::size_t offset;
  Field kind;
  std::string name;
};

// Walks a valid GGUF file's header and lists its fields (offsets are field starts: the truncation points).
std::vector<FieldAt> gguf_fields(const Bytes& b) {
  std::vector<FieldAt> out;
  std::size_t p = 0;
  auto u32 = [&] { std::uint32_t v; std::memcpy(&v, &b[p], 4); return v; };
  auto u64 = [&] { std::uint64_t v; std::memcpy(&v, &b[p], 8); return v; };
  auto field = [&](Field k, std::string n, std::size_t size) {
    out.push_back({p, k, std::move(n)});
    p += size;
  };
  field(Field::U32, "magic", 4);
  field(Field::U32, "version", 4);
  const std::uint64_t n_tensors = u64();
  field(Field::U64, "tensor count", 8);
  const std::uint64_t n_kv = u64();
  field(Field::U64, "metadata count", 8);
  auto string_field = [&](const std::string& what) {
    const std::uint64_t len = u64();
    field(Field::U64, what + " length", 8);
    p += len;
  };
  constexpr std::size_t scalar[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  for (std::uint64_t k = 0; k < n_kv; ++k) {
    const std::uint64_t klen = u64();
    const std::string key(reinterpret_cast<const char*>(&b[p + 8]), klen);
    string_field("key");
    const std::uint32_t t = u32();
    field(Field::U32, key + " type", 4);
    if (t == 8) {
      string_field(key);
    } else if (t == 9) {
      const std::uint32_t et = u32();
      field(Field::U32, key + " element type", 4);
      const std::uint64_t n = u64();
      field(Field::U64, key + " count", 8);
      for (std::uint64_t i = 0; i < n; ++i) {
        if (et == 8) string_field(key + "[" + std::to_string(i) + "]");
        else if (et == 6) field(Field::F32, key + "[" + std::to_string(i) + "]", 4);
        else if (et == 5 || et == 4) field(Field::I32, key + "[" + std::to_string(i) + "]", 4);
        else p += scalar[et];
      }
    } else {
      field(t == 6 ? Field::F32 : t == 4 ? Field::U32 : t == 5 ? Field::I32 : Field::U64, key, scalar[t]);
    }
  }
  for (std::uint64_t k = 0; k < n_tensors; ++k) {
    const std::uint64_t nlen = u64();
    const std::string name(reinterpret_cast<const char*>(&b[p + 8]), nlen);
    string_field("tensor name");
    const std::uint32_t nd = u32();
    field(Field::U32, name + " n_dims", 4);
    for (std::uint32_t d = 0; d < nd; ++d) field(Field::U64, name + " ne", 8);
    field(Field::U32, name + " type", 4);
    field(Field::U64, name + " offset", 8);
  }
  out.push_back({p, Field::U32, "end of header"});
  return out;
}

// The fields of a llama2.c checkpoint header (fp32: 7 x i32; int8: magic, version, 7 x i32, u8, i32 group).
std::vector<FieldAt> llama2c_fields(bool int8) {
  std::vector<FieldAt> out;
  std::size_t p = 0;
  if (int8) {
    out.push_back({0, Field::U32, "magic"});
    out.push_back({4, Field::I32, "version"});
    p = 8;
  }
  for (const char* n : {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"}) {
    out.push_back({p, Field::I32, n});
    p += 4;
  }
  if (int8) {
    out.push_back({p, Field::U32, "shared_classifier (u8)"});
    out.push_back({p + 1, Field::I32, "group_size"});
    out.push_back({p + 5, Field::U32, "padding"});
  }
  return out;
}

// tokenizer.bin: i32 max_len, then { f32 score; i32 len; bytes } per token.
std::vector<FieldAt> tokenizer_fields(const Bytes& b) {
  std::vector<FieldAt> out{{0, Field::I32, "max_token_length"}};
  for (std::size_t p = 4, i = 0; p + 8 <= b.size(); ++i) {
    out.push_back({p, Field::F32, "score " + std::to_string(i)});
    out.push_back({p + 4, Field::I32, "length " + std::to_string(i)});
    std::int32_t len;
    std::memcpy(&len, &b[p + 4], 4);
    p += 8 + static_cast<std::size_t>(len);
  }
  return out;
}

struct Mutant {
  std::string what;
  Bytes data;
};

template <class T>
Bytes with(const Bytes& b, std::size_t off, T v) {
  Bytes m = b;
  if (off + sizeof v <= m.size()) std::memcpy(&m[off], &v, sizeof v);
  return m;
}

// Deterministic mutants of `orig` (at most `budget`), guided by its fields.
std::vector<Mutant> mutants(const Bytes& orig, const std::vector<FieldAt>& all_fields, std::size_t budget,
                            std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  // Large vocabularies have tens of thousands of fields: keep the first 150, the last 150 and a sample.
  std::vector<FieldAt> fields;
  for (std::size_t i = 0; i < all_fields.size(); ++i)
    if (i < 150 || i + 150 >= all_fields.size() || rng() % (all_fields.size() / 64 + 1) == 0)
      fields.push_back(all_fields[i]);
  const std::size_t header_end = all_fields.back().offset;

  std::vector<Mutant> out;
  auto add = [&](std::string what, Bytes b) { out.push_back({std::move(what), std::move(b)}); };
  const auto trunc = [&](std::size_t n) { return Bytes(orig.begin(), orig.begin() + static_cast<long>(std::min(n, orig.size()))); };

  add("empty file", {});
  add("bad magic", with<std::uint32_t>(orig, 0, 0x12345678u));
  // Always kept: versions 1 and 4, and NaN / inf in every scalar float (e.g. layer_norm_rms_epsilon).
  if (!all_fields.empty() && all_fields[0].name == "magic" && all_fields.size() > 1 && all_fields[1].name == "version")
    for (const std::uint32_t v : {1u, 4u}) add("version " + std::to_string(v), with(orig, 4, v));
  for (const FieldAt& f : all_fields)
    if (f.kind == Field::F32 && f.name.find('[') == std::string::npos && f.name.find("score") == std::string::npos)
      for (const float v : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()})
        add("f32 " + std::to_string(v) + " in " + f.name, with(orig, f.offset, v));
  const std::size_t must = out.size();
  for (std::size_t n : {std::size_t{1}, std::size_t{3}, std::size_t{27}, orig.size() - 1, orig.size() / 2})
    add("truncated to " + std::to_string(n), trunc(n));
  for (const FieldAt& f : fields) {
    add("truncated at " + f.name + " (byte " + std::to_string(f.offset) + ")", trunc(f.offset));
    if (f.offset + 1 < orig.size()) add("truncated inside " + f.name, trunc(f.offset + 1));
    const std::string at = " in " + f.name + " (byte " + std::to_string(f.offset) + ")";
    switch (f.kind) {
      case Field::U64:
        for (const std::uint64_t v : {~std::uint64_t{0}, std::uint64_t{1} << 63, std::uint64_t{1} << 40,
                                      static_cast<std::uint64_t>(orig.size()), std::uint64_t{0}})
          add("u64 " + std::to_string(v) + at, with(orig, f.offset, v));
        break;
      case Field::U32:
        for (const std::uint32_t v : {0xFFFFFFFFu, 13u, 1u, 4u, 0u, 31u})
          add("u32 " + std::to_string(v) + at, with(orig, f.offset, v));
        break;
      case Field::I32:
        for (const std::int32_t v : {std::numeric_limits<std::int32_t>::min(), -1, 0, 1, 3,
                                     std::numeric_limits<std::int32_t>::max(), 1 << 20})
          add("i32 " + std::to_string(v) + at, with(orig, f.offset, v));
        break;
      case Field::F32:
        for (const float v : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                              -1.0f, 0.0f, 1e30f})
          add("f32 " + std::to_string(v) + at, with(orig, f.offset, v));
        break;
    }
  }
  // Random byte flips, mostly in the header.
  for (int k = 0; k < 120; ++k) {
    Bytes m = orig;
    const int n = 1 + static_cast<int>(rng() % 8);
    std::string what = "flipped bytes";
    for (int j = 0; j < n && !m.empty(); ++j) {
      const std::size_t region = (rng() % 5 != 0 && header_end > 0) ? header_end : m.size();
      const std::size_t at = rng() % region;
      m[at] ^= static_cast<unsigned char>(1u + rng() % 255u);
      what += ' ';
      what += std::to_string(at);
    }
    add(what, std::move(m));
  }
  // Keep a deterministic spread when over budget.
  if (out.size() > budget && budget > must) {
    std::vector<Mutant> kept(std::make_move_iterator(out.begin()), std::make_move_iterator(out.begin() + static_cast<long>(must)));
    const double step = static_cast<double>(out.size() - must) / static_cast<double>(budget - must);
    for (std::size_t i = 0; i < budget - must; ++i)
      kept.push_back(std::move(out[must + static_cast<std::size_t>(static_cast<double>(i) * step)]));
    out = std::move(kept);
  }
  return out;
}

// [p, p + n) lies inside the mapping or one owned buffer; reading every byte lets ASan check owned memory.
void check_span(const LlamaWeights& w, const void* ptr, std::size_t n, const char* what) {
  const auto* p = static_cast<const std::byte*>(ptr);
  INFO(what);
  REQUIRE(p != nullptr);
  bool ok = false;
  if (w.mapping && p >= w.mapping->data() && p <= w.mapping->data() + w.mapping->size())
    ok = n <= static_cast<std::size_t>(w.mapping->data() + w.mapping->size() - p);
  if (w.gguf && p >= w.gguf->mapping()->data() && p <= w.gguf->mapping()->data() + w.gguf->mapping()->size())
    ok = ok || n <= static_cast<std::size_t>(w.gguf->mapping()->data() + w.gguf->mapping()->size() - p);
  for (const auto& o : w.owned)
    if (p >= o.data() && p <= o.data() + o.size()) ok = ok || n <= static_cast<std::size_t>(o.data() + o.size() - p);
  REQUIRE(ok);
  unsigned acc = 0;
  for (std::size_t i = 0; i < n; i += 61) acc += static_cast<unsigned>(p[i]);
  if (n > 0) acc += static_cast<unsigned>(p[n - 1]);
  (void)acc;
}

void check_weights(const LlamaWeights& w) {
  const ModelConfig& c = w.config;
  auto mat = [&](const MatrixView& m, std::int64_t rows, std::int64_t cols, const char* what) {
    REQUIRE(m.rows == rows);
    REQUIRE(m.cols == cols);
    check_span(w, m.data, static_cast<std::size_t>(row_bytes(m.type, cols) * rows), what);
  };
  const std::size_t dn = static_cast<std::size_t>(c.dim) * sizeof(float);
  mat(w.tok_embd, c.vocab_size, c.dim, "tok_embd");
  mat(w.output, c.vocab_size, c.dim, "output");
  check_span(w, w.output_norm, dn, "output_norm");
  REQUIRE(w.layers.size() == static_cast<std::size_t>(c.n_layers));
  for (const LayerWeights& L : w.layers) {
    check_span(w, L.attn_norm, dn, "attn_norm");
    check_span(w, L.ffn_norm, dn, "ffn_norm");
    mat(L.wq, c.dim, c.dim, "wq");
    mat(L.wk, c.kv_dim(), c.dim, "wk");
    mat(L.wv, c.kv_dim(), c.dim, "wv");
    mat(L.wo, c.dim, c.dim, "wo");
    mat(L.w1, c.ffn_dim, c.dim, "w1");
    mat(L.w2, c.dim, c.ffn_dim, "w2");
    mat(L.w3, c.ffn_dim, c.dim, "w3");
  }
}

void exercise_tokenizer(const Vocab& v) {
  const Tokenizer tok(v);
  const auto ids = tok.encode("Once upon a time, \xE2\x96\x81 \xC3\xA9 <0x41> 123\n", tok.vocab().bos >= 0);
  (void)tok.decode(ids);
}

struct Stats {
  int loaded = 0, rejected = 0;
  std::vector<std::string> samples;  // a few error messages, for docs/formats.md
};

// Runs `f` on every mutant of `file`; only edgespec::Error may escape it.
void fuzz(const std::string& file, const std::vector<FieldAt>& fields, std::size_t budget, std::uint64_t seed,
          const std::function<void(const std::string&)>& f, Stats& stats) {
  TempDir dir;
  const Bytes orig = read_file(file);
  const std::string path = (dir.path / fs::path(file).filename()).string();
  for (const Mutant& m : mutants(orig, fields, budget, seed)) {
    {
      std::ofstream o(path, std::ios::binary | std::ios::trunc);
      o.write(reinterpret_cast<const char*>(m.data.data()), static_cast<std::streamsize>(m.data.size()));
    }
    INFO(fs::path(file).filename().string() << ": " << m.what);
    try {
      f(path);
      ++stats.loaded;
    } catch (const Error& e) {
      ++stats.rejected;
      if (stats.samples.size() < 400) stats.samples.push_back(m.what + " -> " + e.what());
    } catch (const std::exception& e) {
      FAIL("non-edgespec exception " << typeid(e).name() << ": " << e.what());
    }
  }
}

void print_samples(const Stats& s, const char* file) {
  std::ostringstream os;
  os << file << ": " << s.loaded << " mutants loaded, " << s.rejected << " rejected with edgespec::Error; e.g.\n";
  for (std::size_t i = 0; i < std::min<std::size_t>(6, s.samples.size()); ++i) os << "  " << s.samples[i] << "\n";
  for (std::size_t i = 6; i < s.samples.size(); i += std::max<std::size_t>(1, s.samples.size() / 12))
    os << "  " << s.samples[i] << "\n";
  if (std::getenv("EDGESPEC_FUZZ_VERBOSE") != nullptr)
    for (const std::string& x : s.samples) os << "  * " << x << "\n";
  WARN(os.str());
}

void load_gguf_all(const std::string& path) {
  const GgufFile f(path);
  std::optional<Error> weights_error;  // the vocabulary is independent of the weights: try it either way
  try {
    check_weights(load_weights(path));
  } catch (const Error& e) {
    weights_error = e;
  }
  exercise_tokenizer(vocab_from_gguf(f));
  if (weights_error) throw *weights_error;
}

}  // namespace

TEST_CASE("fuzz: mutated GGUF model files load or throw edgespec::Error", "[fuzz]") {
  for (const char* rel : {"gguf/stories260K-f32.gguf", "gguf/llama2xs-q8_0.gguf"}) {
    const std::string file = test::model_path(rel);
    Stats s;
    fuzz(file, gguf_fields(read_file(file)), 600, 1, load_gguf_all, s);
    CHECK(s.rejected > 100);
    print_samples(s, rel);
  }
}

TEST_CASE("fuzz: mutated GGUF vocabulary loads or throws edgespec::Error", "[fuzz]") {
  const std::string file = test::model_path("vocab/ggml-vocab-llama-spm.gguf");
  Stats s;
  // A 32000-token tokenizer is built per mutant: fewer of them.
  fuzz(file, gguf_fields(read_file(file)), 90, 2,
       [](const std::string& p) {
         const GgufFile f(p);
         exercise_tokenizer(vocab_from_gguf(f));
       },
       s);
  CHECK(s.rejected > 20);
  print_samples(s, "vocab/ggml-vocab-llama-spm.gguf");
}

TEST_CASE("fuzz: mutated llama2.c checkpoints load or throw edgespec::Error", "[fuzz]") {
  for (const bool int8 : {false, true}) {
    const char* rel = int8 ? "llama2c/stories260K_q80.bin" : "llama2c/stories260K.bin";
    const std::string file = test::model_path(rel);
    std::vector<FieldAt> fields = llama2c_fields(int8);
    fields.push_back({int8 ? std::size_t{256} : std::size_t{28}, Field::F32, "first weight"});
    fields.push_back({int8 ? std::size_t{256} : std::size_t{28}, Field::U32, "end of header"});
    Stats s;
    fuzz(file, fields, 400, 3, [](const std::string& p) { check_weights(load_weights(p)); }, s);
    CHECK(s.rejected > 30);
    print_samples(s, rel);
  }
}

TEST_CASE("fuzz: mutated tokenizer.bin loads or throws edgespec::Error", "[fuzz]") {
  const std::string file = test::model_path("llama2c/tok512.bin");
  Stats s;
  fuzz(file, tokenizer_fields(read_file(file)), 700, 4,
       [](const std::string& p) { exercise_tokenizer(load_llama2c_tokenizer(p, 512)); }, s);
  CHECK(s.rejected > 50);
  print_samples(s, "llama2c/tok512.bin");
}

// Every weight type's blocks with malformed contents: NaN and infinite f16 scales (every 16-bit word of the first
// blocks of a tensor set to NaN or inf: that hits each type's d/m/dmin wherever its layout keeps them), random
// bytes in the tensor data, and tensors cut short by truncating the file inside the data section. Loading must
// succeed or throw edgespec::Error, and a forward pass over what loaded must not crash (NaN logits are fine);
// under ASan/UBSan this also checks the kernels and activation quantizers on NaN/inf inputs.
TEST_CASE("fuzz: malformed blocks of every weight type load or throw, and forward passes do not crash", "[fuzz]") {
  ModelConfig c;  // every row a multiple of 256, so each type is stored as itself (no fallback)
  c.dim = 256, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.ffn_dim = 512, c.vocab_size = 512, c.max_seq = 64;
  const Vocab vocab = make_synth_spm_vocab(c.vocab_size);
  TempDir dir;
  std::mt19937_64 rng(7);
  ThreadPool pool(2);
  for (const DType t : kWeightTypes) {
    if (t == DType::F32) continue;
    const std::string clean = (dir.path / ("clean-" + std::string(name(t)) + ".gguf")).string();
    c.weight_type = t;
    write_llama_gguf(clean, c, vocab, t, random_llama_weights(c, 3), "fuzz");
    const Bytes orig = read_file(clean);
    const GgufFile g(clean);
    const gguf::TensorInfo& q = g.tensor("blk.0.attn_q.weight");
    REQUIRE(q.type == t);
    const std::size_t q_off = static_cast<std::size_t>(q.data - g.mapping()->data());
    const std::size_t data_begin = static_cast<std::size_t>(g.tensor("token_embd.weight").data - g.mapping()->data());
    const std::size_t two_blocks = static_cast<std::size_t>(2 * block_bytes(t));
    std::vector<Mutant> mutants;
    for (const std::uint16_t bad : {std::uint16_t{0x7E00}, std::uint16_t{0x7C00}, std::uint16_t{0xFC00}}) {
      Bytes m = orig;
      for (std::size_t i = 0; i + 1 < two_blocks; i += 2) std::memcpy(&m[q_off + i], &bad, 2);
      mutants.push_back({"attn_q blocks 0-1: every 16-bit word " + std::to_string(bad), std::move(m)});
    }
    for (int k = 0; k < 6; ++k) {
      Bytes m = orig;
      for (int j = 0; j < 64; ++j) m[data_begin + rng() % (orig.size() - data_begin)] = static_cast<unsigned char>(rng());
      mutants.push_back({"random tensor bytes, seed step " + std::to_string(k), std::move(m)});
    }
    for (const std::size_t cut : {q_off + 1, q_off + two_blocks / 2, orig.size() - 1, data_begin + 7})
      mutants.push_back({"truncated at byte " + std::to_string(cut), Bytes(orig.begin(), orig.begin() + static_cast<long>(cut))});
    const std::string path = (dir.path / "mutant.gguf").string();
    int loaded = 0, rejected = 0;
    for (const Mutant& m : mutants) {
      {
        std::ofstream o(path, std::ios::binary | std::ios::trunc);
        o.write(reinterpret_cast<const char*>(m.data.data()), static_cast<std::streamsize>(m.data.size()));
      }
      INFO(name(t) << ": " << m.what);
      try {
        auto w = std::make_shared<const LlamaWeights>(load_weights(path));
        check_weights(*w);
        Transformer<AnyLlama> model(w, pool, 16);
        const std::vector<std::int32_t> toks{1, 300, 301, 302};
        (void)model.forward(toks, Logits::All);
        (void)model.forward(std::span<const std::int32_t>(toks.data(), 1));
        ++loaded;
      } catch (const Error&) {
        ++rejected;
      } catch (const std::exception& e) {
        FAIL("non-edgespec exception " << typeid(e).name() << ": " << e.what());
      }
    }
    INFO(name(t));
    CHECK(loaded >= 9);    // the NaN/inf and random-byte mutants load (their values are garbage, not their shape)
    CHECK(rejected >= 3);  // the truncated ones are refused
  }
}
