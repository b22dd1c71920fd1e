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
// GGUF: tokenizer.ggml.{model, pre, tokens, scores, token_type, merges, bos_token_id, eos_token_id, eot_token_id,
// eom_token_id, unknown_token_id, padding_token_id, fim_{pre,suf,mid,pad,rep,sep}_token_id (and the older
// prefix/suffix/middle_token_id), add_bos_token, add_eos_token, add_space_prefix} and general.name.
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
  std::int32_t eot = -1, eom = -1;                    // end of turn / of message; -1: found by text (Tokenizer)
  std::int32_t fim_pre = -1, fim_suf = -1, fim_mid = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;  // fill-in-middle
  bool add_bos = true, add_eos = false;  // what encode(text, add_special = true) adds
  bool add_space_prefix = true;  // Spm: encode prepends ' ' to non-empty text; decode drops it again
  bool clean_spaces = false;     // Gpt2: detokenize() removes the space of " ?", " 's", ... (per pre-tokenizer)
  std::string pre;               // tokenizer.ggml.pre (Gpt2 pre-tokenizer name)
  std::string name;              // general.name (llama.cpp sets Phi-3's special tokens to strip spaces by it)

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
  check_id(v.eot, "eot");
  check_id(v.eom, "eom");
  for (const std::int32_t id : {v.fim_pre, v.fim_suf, v.fim_mid, v.fim_pad, v.fim_rep, v.fim_sep}) check_id(id, "fim");
  if (v.kind == Vocab::Kind::Gpt2)
    ES_CHECK(!v.merges.empty(), source, ": gpt2 tokenizer has no merges (tokenizer.ggml.merges)");
}

// Byte-level BPE pre-tokenizer types: one per distinct list of regexes in llama.cpp's llm_tokenizer_bpe (regexes:
// detail/pretokenizer.hpp). Several LLAMA_VOCAB_PRE_TYPE_* share a list (STARCODER, REFACT, COMMAND_R, SMOLLM,
// CODESHELL, EXAONE, MINERVA are all Starcoder here); they differ only in the flags of PreTokenizerName.
enum class BpePre : std::uint8_t {
  Unsupported, Default, Gpt2, Llama3, Qwen2, DeepseekLlm, DeepseekCoder, Deepseek3, Falcon, Starcoder, Bloom, Viking,
  Tekken, Chameleon, Gpt4o
};
inline constexpr std::size_t kBpePreCount = 15;
static_assert(static_cast<std::size_t>(BpePre::Gpt4o) + 1 == kBpePreCount, "kBpePreCount counts every BpePre");

// A tokenizer.ggml.pre value and what llama.cpp's llama_vocab::load does for it.
struct PreTokenizerName {
  std::string_view name;
  BpePre pre;
  bool ignore_merges = false;  // a word that is a token as a whole is emitted unmerged
  bool add_bos = false;        // default of tokenizer.ggml.add_bos_token
  bool clean_spaces = true;    // detokenize's clean_up_tokenization_spaces
  bool no_bos = false;         // default BOS id is none (chatglm-bpe)
};

// Every name of llama.cpp's chain (commit c392e50), plus the names a newer llama.cpp maps to the same regexes
// (falcon-h1, pixtral, midm-2.0, lfm2, jina-v5-nano; a.x-4.0, mellum, exaone4, trillion, granite-docling; kormo,
// hunyuan) and its gpt-4o / llama4 type. "" (key missing) is "default", as in llama.cpp.
inline constexpr PreTokenizerName kPreTokenizerNames[] = {
    {"default", BpePre::Default},
    {"llama3", BpePre::Llama3, true, true},
    {"llama-v3", BpePre::Llama3, true, true},
    {"llama-bpe", BpePre::Llama3, true, true},
    {"falcon3", BpePre::Llama3, true, true},
    {"falcon-h1", BpePre::Llama3, true, true},
    {"pixtral", BpePre::Llama3, true, true},
    {"midm-2.0", BpePre::Llama3, true, true},
    {"lfm2", BpePre::Llama3, true, true},
    {"jina-v5-nano", BpePre::Llama3, true, true},
    {"deepseek-llm", BpePre::DeepseekLlm, false, false, false},
    {"deepseek-coder", BpePre::DeepseekCoder, false, false, false},
    {"deepseek-v3", BpePre::Deepseek3, false, false, false},
    {"falcon", BpePre::Falcon},
    {"mpt", BpePre::Gpt2},
    {"starcoder", BpePre::Starcoder},
    {"gpt-2", BpePre::Gpt2},
    {"phi-2", BpePre::Gpt2},
    {"jina-es", BpePre::Gpt2},
    {"jina-de", BpePre::Gpt2},
    {"gigachat", BpePre::Gpt2},
    {"jina-v1-en", BpePre::Gpt2},
    {"jina-v2-es", BpePre::Gpt2},
    {"jina-v2-de", BpePre::Gpt2},
    {"jina-v2-code", BpePre::Gpt2},
    {"roberta-bpe", BpePre::Gpt2},
    {"a.x-4.0", BpePre::Gpt2},
    {"mellum", BpePre::Gpt2},
    {"exaone4", BpePre::Gpt2},
    {"trillion", BpePre::Gpt2, false, false, false},
    {"granite-docling", BpePre::Gpt2, false, false, false},
    {"refact", BpePre::Starcoder},
    {"command-r", BpePre::Starcoder, false, false, false},
    {"qwen2", BpePre::Qwen2, false, false, false},
    {"deepseek-r1-qwen", BpePre::Qwen2, false, false, false},
    {"kormo", BpePre::Qwen2, false, false, false},
    {"hunyuan", BpePre::Qwen2, false, false, false},
    {"stablelm2", BpePre::Qwen2},
    {"megrez", BpePre::Qwen2},
    {"olmo", BpePre::Gpt2},
    {"dbrx", BpePre::Llama3},
    {"smaug-bpe", BpePre::Llama3},
    {"poro-chat", BpePre::Bloom, false, false, false},
    {"chatglm-bpe", BpePre::Llama3, false, false, true, true},
    {"viking", BpePre::Viking, false, false, false},
    {"jais", BpePre::Gpt2},
    {"tekken", BpePre::Tekken, true, true, false},
    {"smollm", BpePre::Starcoder, false, false, false},
    {"codeshell", BpePre::Starcoder},
    {"bloom", BpePre::Bloom},
    {"gpt3-finnish", BpePre::Bloom},
    {"exaone", BpePre::Starcoder},
    {"chameleon", BpePre::Chameleon, false, true, false},
    {"minerva-7b", BpePre::Starcoder},
    {"gpt-4o", BpePre::Gpt4o, false, false, false},
    {"llama4", BpePre::Gpt4o, false, false, false},
};

// The entry for a tokenizer.ggml.pre value ("" = "default"), or nullptr when llama.cpp does not know it.
[[nodiscard]] inline const PreTokenizerName* find_pre_tokenizer(std::string_view pre) noexcept {
  if (pre.empty()) pre = "default";
  for (const PreTokenizerName& n : kPreTokenizerNames)
    if (n.name == pre) return &n;
  return nullptr;
}

[[nodiscard]] inline BpePre bpe_pre_from_name(std::string_view pre) noexcept {
  const PreTokenizerName* n = find_pre_tokenizer(pre);
  return n ? n->pre : BpePre::Unsupported;
}

// "'default', 'llama3', ..." for error messages.
[[nodiscard]] inline std::string supported_pre_tokenizers() {
  std::string s;
  for (const PreTokenizerName& n : kPreTokenizerNames) {
    if (!s.empty()) s += ", ";
    s += "'";
    s += n.name;
    s += "'";
  }
  return s;
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
  v.name = f.find_string("general.name").value_or("");
  if (v.kind == Vocab::Kind::Gpt2) {
    v.clean_spaces = true;
    if (const detail::PreTokenizerName* info = detail::find_pre_tokenizer(v.pre)) {  // llama.cpp's defaults per pre
      v.add_bos = info->add_bos;
      v.clean_spaces = info->clean_spaces;
      if (info->no_bos) v.bos = -1;
    }
  }
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
  special("tokenizer.ggml.eot_token_id", v.eot);
  special("tokenizer.ggml.eom_token_id", v.eom);
  special("tokenizer.ggml.unknown_token_id", v.unk);
  special("tokenizer.ggml.padding_token_id", v.pad);
  special("tokenizer.ggml.fim_pre_token_id", v.fim_pre);
  special("tokenizer.ggml.fim_suf_token_id", v.fim_suf);
  special("tokenizer.ggml.fim_mid_token_id", v.fim_mid);
  special("tokenizer.ggml.fim_pad_token_id", v.fim_pad);
  special("tokenizer.ggml.fim_rep_token_id", v.fim_rep);
  special("tokenizer.ggml.fim_sep_token_id", v.fim_sep);
  special("tokenizer.ggml.prefix_token_id", v.fim_pre);  // older names, read after the new ones as llama.cpp does
  special("tokenizer.ggml.suffix_token_id", v.fim_suf);
  special("tokenizer.ggml.middle_token_id", v.fim_mid);
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
