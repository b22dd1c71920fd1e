// Tokenizer vocabularies and their two on-disk sources.
//
// llama2.c tokenizer.bin (little endian; karpathy/llama2.c tokenizer.py export):
//
//   int32 max_token_length
//   vocab_size times: { float32 score; int32 len; uint8 bytes[len]; }
//
// Pieces are SentencePiece pieces with U+2581 '▁' written as ' ', ids 1/2 stored as "\n<s>\n" / "\n</s>\n",
// byte pieces as "<0x0A>". The loader converts them to what llama.cpp's llama2.c converter writes into a GGUF
// (' ' -> '▁', ids 0/1/2 -> <unk>/<s>/</s>), so both sources of one model give identical Vocabs and tokens.
//
// GGUF: tokenizer.ggml.{model, pre, tokens, scores, token_type, merges, bos_token_id, eos_token_id,
// unknown_token_id, padding_token_id, add_bos_token, add_eos_token, add_space_prefix}.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "edgespec/core/error.hpp"
#include "edgespec/io/gguf.hpp"
#include "edgespec/io/mapped_file.hpp"

namespace edgespec {

// GGUF tokenizer.ggml.token_type values (llama.cpp's LLAMA_TOKEN_TYPE_*).
namespace token_type {
inline constexpr std::int32_t normal = 1;
inline constexpr std::int32_t unknown = 2;
inline constexpr std::int32_t control = 3;
inline constexpr std::int32_t user_defined = 4;
inline constexpr std::int32_t unused = 5;
inline constexpr std::int32_t byte = 6;
}  // namespace token_type

struct Vocab {
  // Spm: llama.cpp "llama" (SentencePiece BPE by scores, byte fallback). Gpt2: byte-level BPE by merge rank.
  enum class Kind { Spm, Gpt2 };

  Kind kind = Kind::Spm;
  std::vector<std::string> tokens;
  std::vector<float> scores;        // Spm merge priority (higher merges first); may be all zero for Gpt2
  std::vector<std::int32_t> types;  // token_type:: values
  std::vector<std::string> merges;  // Gpt2: "left right", index = rank (lower merges first)
  std::int32_t bos = 1, eos = 2, unk = 0, pad = -1;  // -1: none
  bool add_bos = true, add_eos = false;
  bool add_space_prefix = true;  // Spm: encode prepends ' ' to non-empty text; decode drops it again
  std::string pre;               // tokenizer.ggml.pre (Gpt2 pre-tokenizer name)

  [[nodiscard]] int size() const noexcept { return static_cast<int>(tokens.size()); }
};

namespace detail {

inline const char* vocab_kind_name(Vocab::Kind k) { return k == Vocab::Kind::Spm ? "llama (SPM)" : "gpt2 (BPE)"; }

// Sizes agree and special ids are in range; `source` names the file (or "Vocab") in the message.
inline void validate_vocab(const Vocab& v, std::string_view source) {
  const std::size_t n = v.tokens.size();
  ES_CHECK(n > 0, source, ": tokenizer vocabulary is empty");
  ES_CHECK(n <= static_cast<std::size_t>(INT32_MAX), source, ": tokenizer vocabulary has ", n, " tokens (too many)");
  ES_CHECK(v.scores.size() == n, source, ": tokenizer scores has ", v.scores.size(), " entries, expected ", n,
           " (one per token)");
  ES_CHECK(v.types.size() == n, source, ": tokenizer token_type has ", v.types.size(), " entries, expected ", n,
           " (one per token)");
  const auto check_id = [&](std::int32_t id, const char* what) {
    ES_CHECK(id >= -1 && id < static_cast<std::int64_t>(n), source, ": ", what, " token id ", id,
             " is outside the vocabulary (", n, " tokens; -1 means none)");
  };
  check_id(v.bos, "bos");
  check_id(v.eos, "eos");
  check_id(v.unk, "unknown");
  check_id(v.pad, "padding");
  if (v.kind == Vocab::Kind::Gpt2)
    ES_CHECK(!v.merges.empty(), source, ": gpt2 tokenizer has no merges (tokenizer.ggml.merges)");
}

// Byte-level BPE pre-tokenizers, chosen by tokenizer.ggml.pre as llama.cpp's llama_vocab::load does
// (LLAMA_VOCAB_PRE_TYPE_GPT2 / LLAMA3 / QWEN2 and the names it maps to each). Regexes: detail/bpe.hpp.
enum class BpePre : std::uint8_t { Unsupported, Gpt2, Llama3, Qwen2 };

[[nodiscard]] inline BpePre bpe_pre_from_name(std::string_view pre) noexcept {
  const auto any_of = [&](std::initializer_list<std::string_view> names) {
    for (const std::string_view n : names)
      if (pre == n) return true;
    return false;
  };
  if (any_of({"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v1-en", "jina-v2-es", "jina-v2-de",
              "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais", "a.x-4.0", "mellum", "exaone4", "trillion",
              "granite-docling"}))
    return BpePre::Gpt2;
  if (any_of({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "dbrx",
              "smaug-bpe", "jina-v5-nano"}))
    return BpePre::Llama3;
  if (any_of({"qwen2", "deepseek-r1-qwen", "kormo", "megrez", "stablelm2", "hunyuan"})) return BpePre::Qwen2;
  return BpePre::Unsupported;
}

// llama.cpp's LLAMA3 group (not dbrx / smaug, which only share its regex) sets ignore_merges and add_bos.
[[nodiscard]] inline bool is_llama3_group(std::string_view pre) noexcept {
  return bpe_pre_from_name(pre) == BpePre::Llama3 && pre != "dbrx" && pre != "smaug-bpe";
}

// "<0xAB>" -> 0xAB, else -1.
inline int parse_byte_piece(std::string_view s) {
  if (s.size() != 6 || s.substr(0, 3) != "<0x" || s[5] != '>') return -1;
  int v = 0;
  for (const char c : s.substr(3, 2)) {
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else return -1;
  }
  return v;
}

}  // namespace detail

// Reads a llama2.c tokenizer.bin with `vocab_size` tokens (the model header's vocab_size). Every count and length
// is checked against the file size; a file with more or fewer tokens than vocab_size is an error.
inline Vocab load_llama2c_tokenizer(const std::string& path, int vocab_size) {
  ES_CHECK(vocab_size > 0, path, ": llama2.c tokenizer: vocab_size must be positive, got ", vocab_size);
  const MappedFile file(path);
  ByteReader r(file.data(), file.size(), path);
  const auto max_len = r.read<std::int32_t>("max_token_length");
  ES_CHECK(max_len >= 0, path, ": llama2.c tokenizer: max_token_length is negative (", max_len, ")");

  Vocab v;
  v.kind = Vocab::Kind::Spm;
  v.tokens.reserve(static_cast<std::size_t>(vocab_size));
  v.scores.reserve(static_cast<std::size_t>(vocab_size));
  v.types.reserve(static_cast<std::size_t>(vocab_size));
  for (int i = 0; i < vocab_size; ++i) {
    ES_CHECK(r.remaining() >= 8, path, ": llama2.c tokenizer is truncated: token ", i, " of ", vocab_size,
             " starts at byte ", r.pos(), " but only ", r.remaining(), " bytes are left (wrong vocab_size?)");
    const auto score = r.read<float>("token score");
    const auto len = r.read<std::int32_t>("token length");
    ES_CHECK(len >= 0, path, ": llama2.c tokenizer: token ", i, " has negative length ", len, " at byte ",
             r.pos() - 4);
    ES_CHECK(static_cast<std::size_t>(len) <= r.remaining(), path, ": llama2.c tokenizer: token ", i, " length ",
             len, " runs past the end of the file (", r.remaining(), " bytes left)");
    ES_CHECK(len <= max_len, path, ": llama2.c tokenizer: token ", i, " length ", len,
             " exceeds max_token_length ", max_len);
    std::string text = r.read_string(static_cast<std::size_t>(len), "token text");

    std::int32_t type = token_type::normal;
    if (i == 0) {
      text = "<unk>";
      type = token_type::unknown;
    } else if (i == 1 || i == 2) {
      text = i == 1 ? "<s>" : "</s>";
      type = token_type::control;
    } else if (detail::parse_byte_piece(text) >= 0) {
      type = token_type::byte;
    } else {
      std::string escaped;  // ' ' -> U+2581, as in the SentencePiece model the file came from
      escaped.reserve(text.size() + 8);
      for (const char c : text) {
        if (c == ' ') escaped += "\xE2\x96\x81";
        else escaped += c;
      }
      text = std::move(escaped);
    }
    v.tokens.push_back(std::move(text));
    v.scores.push_back(score);
    v.types.push_back(type);
  }
  ES_CHECK(r.remaining() == 0, path, ": llama2.c tokenizer has ", r.remaining(), " bytes after token ",
           vocab_size - 1, ": the file holds more tokens than vocab_size ", vocab_size, " (wrong tokenizer for this model?)");
  detail::validate_vocab(v, path);
  return v;
}

// Builds a Vocab from the tokenizer.ggml.* metadata of a GGUF file (llama.cpp's defaults for missing keys).
inline Vocab vocab_from_gguf(const GgufFile& f) {
  const std::string& path = f.path();
  const std::string model = f.get_string("tokenizer.ggml.model");
  Vocab v;
  if (model == "llama") {
    v.kind = Vocab::Kind::Spm;
  } else if (model == "gpt2") {
    v.kind = Vocab::Kind::Gpt2;
    // llama.cpp's defaults for BPE vocabularies; the keys below override them.
    v.bos = 11;
    v.eos = 11;
    v.unk = -1;
    v.add_bos = false;
    v.add_space_prefix = false;
  } else {
    throw_error(path, ": tokenizer.ggml.model is '", model,
                "', which is not supported (supported: 'llama' = SentencePiece BPE, 'gpt2' = byte-level BPE)");
  }
  v.pre = f.find_string("tokenizer.ggml.pre").value_or("");
  if (v.kind == Vocab::Kind::Gpt2 && detail::is_llama3_group(v.pre)) v.add_bos = true;  // llama.cpp's default
  v.tokens = f.get_string_array("tokenizer.ggml.tokens");
  const std::size_t n = v.tokens.size();
  if (f.has("tokenizer.ggml.scores")) {
    v.scores = f.get_float_array("tokenizer.ggml.scores");
    ES_CHECK(v.scores.size() == n, path, ": tokenizer.ggml.scores has ", v.scores.size(), " entries but ",
             "tokenizer.ggml.tokens has ", n);
  } else {
    v.scores.assign(n, 0.0f);
  }
  if (f.has("tokenizer.ggml.token_type")) {
    v.types = f.get_int_array("tokenizer.ggml.token_type");
    ES_CHECK(v.types.size() == n, path, ": tokenizer.ggml.token_type has ", v.types.size(), " entries but ",
             "tokenizer.ggml.tokens has ", n);
  } else {
    v.types.assign(n, token_type::normal);
  }
  if (v.kind == Vocab::Kind::Gpt2) {
    ES_CHECK(f.has("tokenizer.ggml.merges"), path, ": gpt2 tokenizer needs tokenizer.ggml.merges, which is missing");
    v.merges = f.get_string_array("tokenizer.ggml.merges");
  }
  // Special ids: like llama.cpp, an id outside the vocabulary (e.g. 0xFFFFFFFF = none) keeps the default.
  const auto special = [&](const char* key, std::int32_t& id) {
    if (const auto x = f.find_int(key); x && *x >= 0 && *x < static_cast<std::int64_t>(n))
      id = static_cast<std::int32_t>(*x);
  };
  special("tokenizer.ggml.bos_token_id", v.bos);
  special("tokenizer.ggml.eos_token_id", v.eos);
  special("tokenizer.ggml.unknown_token_id", v.unk);
  special("tokenizer.ggml.padding_token_id", v.pad);
  if (const auto b = f.find_bool("tokenizer.ggml.add_bos_token")) v.add_bos = *b;
  if (const auto b = f.find_bool("tokenizer.ggml.add_eos_token")) v.add_eos = *b;
  if (const auto b = f.find_bool("tokenizer.ggml.add_space_prefix")) v.add_space_prefix = *b;
  // Defaults that point past a small vocabulary (gpt2's 11) become "none".
  for (std::int32_t* id : {&v.bos, &v.eos, &v.unk, &v.pad})
    if (*id >= static_cast<std::int64_t>(n)) *id = -1;
  detail::validate_vocab(v, path);
  return v;
}

}  // namespace edgespec
