// edgespec-convert: llama2.c checkpoints (fp32 or int8 'ak42') to GGUF with the tokenizer embedded, or a GGUF
// re-typed (e.g. F32 -> Q4_0).
//
//   edgespec-convert IN [--tokenizer tok.bin] -o OUT.gguf [--type T] [--name NAME] [--verbose] [--quiet]
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <thread>

#include <unistd.h>

#include <edgespec/io/gguf_export.hpp>

#include "cli.hpp"

namespace {

constexpr const char* kUsage = R"(usage: edgespec-convert IN [--tokenizer FILE] -o OUT.gguf [--type T] [--name NAME] [--threads N] [--verbose]

  IN                 llama2.c .bin (fp32 legacy or int8 'ak42' export) or a GGUF (llama architecture)
  --tokenizer FILE   llama2.c tokenizer.bin (required for .bin inputs), or a GGUF to take the vocabulary from
  -o OUT.gguf        output file
  --type T           matrix type: f32 (default), f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k,
                     q5_k, q6_k, iq4_nl; norms stay f32. Rows that do not split into whole blocks fall back as
                     llama-quantize does: K-quants of rows not a multiple of 256 become q2_k/q3_k -> iq4_nl,
                     q4_k -> q5_0, q5_k -> q5_1, q6_k -> q8_0, and rows not a multiple of 32 become f16.
                     A GGUF input's other metadata (chat template, special token ids, ...) is carried over.
  --name NAME        general.name (default: the input's general.name, else the input file name)
  --threads N        threads for quantization (default: all cores)
  --verbose          list every tensor written
  --quiet            no progress line
)";

}  // namespace

int main(int argc, char** argv) {
  using namespace edgespec;
  return cli::guarded_main([&] {
    const cli::Args args(argc, argv, {"tokenizer", "type", "name", "threads"}, {"verbose", "quiet", "help"});
    if (args.has("help")) {
      std::cout << kUsage;
      return 0;
    }
    ES_CHECK(args.positional().size() == 1, "expected exactly one input file (see --help)");
    const std::string in = args.positional()[0];
    const std::string out = args.required("o");
    const DType type = parse_dtype(args.str("type", "f32"));
    const int threads = args.num<int>("threads", static_cast<int>(std::max(1u, std::thread::hardware_concurrency())), 1, 1024);

    const LlamaWeights w = load_weights(in);
    const std::string tok_path = args.str("tokenizer");
    Vocab vocab;
    if (!tok_path.empty()) {
      const bool gguf_tok = tok_path.size() >= 5 && tok_path.substr(tok_path.size() - 5) == ".gguf";
      vocab = gguf_tok ? vocab_from_gguf(GgufFile(tok_path)) : load_llama2c_tokenizer(tok_path, w.config.vocab_size);
    } else {
      ES_CHECK(w.gguf != nullptr, in, ": a ", format_name(w.format),
               " file has no vocabulary: pass --tokenizer FILE (the llama2.c tokenizer.bin the model was trained with)");
      vocab = vocab_from_gguf(*w.gguf);
    }
    std::string name = args.str("name");
    if (name.empty() && w.gguf != nullptr) name = w.gguf->find_string("general.name").value_or("");
    if (name.empty()) name = std::filesystem::path(in).stem().string();

    ThreadPool pool(threads);
    GgufExportOptions opt;
    opt.pool = &pool;
    opt.carry_tokenizer = tok_path.empty();  // the vocabulary is the input's own
    const bool tty = isatty(fileno(stderr)) != 0;
    if (!args.has("quiet"))
      opt.progress = [&](std::size_t i, std::size_t count, const std::string& tensor, DType t, std::uint64_t bytes) {
        // one line rewritten in place on a terminal, one line per tensor otherwise (logs)
        std::fprintf(stderr, "%s[%4zu/%zu] %-28s %-6s %10llu bytes%s", tty ? "\r" : "", i + 1, count, tensor.c_str(),
                     std::string(edgespec::name(t)).c_str(), static_cast<unsigned long long>(bytes),
                     tty ? "\033[K" : "\n");
      };
    convert_to_gguf(out, w, vocab, type, name, opt);
    if (!args.has("quiet") && tty) std::fprintf(stderr, "\n");
    const ModelConfig& c = w.config;

    // Report from the file itself: what a reader will see.
    const GgufFile g(out);
    std::map<std::string, std::pair<int, std::uint64_t>> by_type;
    for (const gguf::TensorInfo& t : g.tensors()) {
      auto& [n, b] = by_type[std::string(edgespec::name(t.type))];
      ++n;
      b += t.n_bytes;
      if (args.has("verbose"))
        std::cout << "  " << std::left << std::setw(28) << t.name << std::setw(6) << edgespec::name(t.type) << " ["
                  << t.ne[0] << (t.n_dims > 1 ? ", " + std::to_string(t.ne[1]) : std::string()) << "]  " << t.n_bytes
                  << " bytes\n";
    }
    std::cout << "wrote " << out << ": " << g.tensors().size() << " tensors, "
              << std::filesystem::file_size(out) << " bytes, type " << edgespec::name(type) << " (";
    bool first = true;
    for (const auto& [t, nb] : by_type) {
      std::cout << (first ? "" : ", ") << nb.first << " " << t << " = " << nb.second << " bytes";
      first = false;
    }
    std::cout << ")\n  from " << in << " (" << format_name(w.format) << "), dim " << c.dim << ", layers "
              << c.n_layers << ", heads " << c.n_heads << "/" << c.n_kv_heads << ", ffn " << c.ffn_dim << ", vocab "
              << vocab.size() << " (" << (vocab.kind == Vocab::Kind::Spm ? "llama" : "gpt2") << "), classifier "
              << (c.classifier == Classifier::Tied ? "tied" : "separate") << "\n";
    return 0;
  });
}
