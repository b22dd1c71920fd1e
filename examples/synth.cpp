// edgespec-synth: a random-weight model in the shape of a ready-made architecture, with a synthetic vocabulary
// of the right size (Llama 2 family: SentencePiece; Llama 3: GPT-2 byte-level BPE). For benchmarks and tests
// of models too large to ship; the output is a llama.cpp-loadable GGUF.
//
//   edgespec-synth --shape NAME --type T --seed S -o OUT.gguf [--layers N] [--ctx N] [--threads N]
#include <chrono>
#include <filesystem>
#include <iostream>
#include <thread>

#include <edgespec/io/gguf_export.hpp>

#include "cli.hpp"

int main(int argc, char** argv) {
  using namespace edgespec;
  return cli::guarded_main([&] {
    const cli::Args args(argc, argv, {"shape", "type", "seed", "layers", "ctx", "threads"}, {"help"});
    if (args.has("help")) {
      std::cout << "usage: edgespec-synth --shape NAME [--type T] [--seed S] -o OUT.gguf [--layers N] [--ctx N] "
                   "[--threads N]\n\n  --shape NAME   one of:";
      for (const SynthShape& s : synth_shapes()) std::cout << " " << s.name;
      std::cout << "\n  --type T       matrix type: f32 (default), f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k,\n"
                   "                 q5_k, q6_k, iq4_nl (llama-quantize's fallbacks for rows that do not fit)\n"
                   "  --seed S       random seed (default 0); the file depends only on the options\n"
                   "  --layers N     override the layer count (small test files)\n"
                   "  --ctx N        override the context length (llama.context_length)\n"
                   "  --threads N    generator threads (default: all cores)\n";
      return 0;
    }
    SynthOptions o;
    o.shape = args.required("shape");
    (void)find_synth_shape(o.shape);  // unknown names fail before anything else
    o.type = parse_dtype(args.str("type", "f32"));
    o.seed = args.num<std::uint64_t>("seed", 0, 0, ~std::uint64_t{0});
    o.layers = args.num<int>("layers", 0, 1, 1024);
    o.ctx = args.num<int>("ctx", 0, 1, 1 << 24);
    const std::string out = args.required("o");
    ThreadPool pool(args.num<int>("threads", static_cast<int>(std::max(1u, std::thread::hardware_concurrency())), 1, 1024));
    o.pool = &pool;

    const auto t0 = std::chrono::steady_clock::now();
    synth_llama_gguf(out, o);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const ModelConfig c = synth_config(o);
    std::cout << "wrote " << out << ": " << find_synth_shape(o.shape).arch << " shape, " << c.n_layers
              << " layers, dim " << c.dim << ", vocab " << c.vocab_size << ", " << name(o.type) << ", "
              << c.n_params() << " parameters, " << std::filesystem::file_size(out) << " bytes in " << s << " s ("
              << pool.size() << " threads)\n";
    return 0;
  });
}
