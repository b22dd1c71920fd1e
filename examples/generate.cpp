// edgespec-generate: text generation with a Llama-family model on the CPU.
//
//   edgespec-generate --model FILE [--tokenizer FILE] --prompt TEXT -n N [--temp T] [--top-k K] [--top-p P]
//                     [--seed S] [--threads N] [--ctx N] [--stop-at-eos] [--json]
#include <iostream>
#include <thread>

#include "cli.hpp"

namespace {

constexpr const char* kUsage = R"(usage: edgespec-generate --model FILE [--tokenizer FILE] --prompt TEXT [-n N]
                         [--temp T] [--top-k K] [--top-p P] [--seed S] [--threads N] [--ctx N]
                         [--stop-at-eos] [--json]

  --model FILE       GGUF (llama architecture) or llama2.c .bin (fp32 or int8 'ak42')
  --tokenizer FILE   llama2.c tokenizer.bin (required for .bin models; GGUF files carry their vocabulary)
  --prompt TEXT      prompt, tokenized with BOS first as llama.cpp does
  -n N               tokens to generate (default 64)
  --temp T           temperature; 0 = greedy (default 0)
  --top-k K          keep the K most likely tokens (0 = off)
  --top-p P          nucleus sampling mass (1 = off)
  --seed S           random seed (default 0)
  --threads N        CPU threads (default: all cores)
  --ctx N            KV-cache length (default: prompt + n)
  --stop-at-eos      stop when the model emits end-of-sequence
  --json             print one JSON object: prompt_tokens, tokens, text, stats
)";

}  // namespace

int main(int argc, char** argv) {
  using namespace edgespec;
  return cli::guarded_main([&] {
    const cli::Args args(argc, argv,
                         {"model", "tokenizer", "prompt", "n", "temp", "top-k", "top-p", "seed", "threads", "ctx"},
                         {"json", "stop-at-eos", "help"});
    if (args.has("help")) {
      std::cout << kUsage;
      return 0;
    }
    const auto hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const int n = args.num<int>("n", 64, 0, 1 << 20);
    const int threads = args.num<int>("threads", hw, 1, 1024);
    SamplingParams sp;
    sp.temperature = args.num<float>("temp", 0.0f, 0.0f, 100.0f);
    sp.top_k = args.num<int>("top-k", 0, 0, 1 << 24);
    sp.top_p = args.num<float>("top-p", 1.0f, 1e-6f, 1.0f);
    sp.seed = args.num<std::uint64_t>("seed", 0, 0, ~std::uint64_t{0});

    auto weights = std::make_shared<const LlamaWeights>(load_weights(args.required("model")));
    const Tokenizer tok = cli::open_tokenizer(*weights, args.str("tokenizer"));
    ES_CHECK(tok.vocab().size() == weights->config.vocab_size, "tokenizer has ", tok.vocab().size(),
             " tokens but the model's vocabulary has ", weights->config.vocab_size);
    const std::vector<std::int32_t> prompt = tok.encode(args.required("prompt"), true);
    const int ctx = args.num<int>("ctx", static_cast<int>(prompt.size()) + n, 1, 1 << 24);

    ThreadPool pool(threads);
    Transformer<AnyLlama> model(weights, pool, ctx);
    Sampler sampler(sp);
    GenerationOptions opt;
    opt.n_tokens = n;
    opt.stop_at_eos = args.has("stop-at-eos");
    opt.eos_id = tok.eos();
    const bool json = args.has("json");
    if (!json) {
      std::cout << tok.decode(prompt) << std::flush;
      opt.on_token = [&](std::int32_t t) {
        std::cout << tok.token_to_piece(t) << std::flush;
        return true;
      };
    }
    const GenerationResult r = generate(model, prompt, sampler, opt);
    const GenerationStats& s = r.stats;
    if (json) {
      std::cout << "{\"prompt_tokens\": " << cli::json_array(prompt) << ", \"tokens\": " << cli::json_array(r.tokens)
                << ", \"text\": " << cli::json_string(tok.decode(r.tokens)) << ", \"stats\": {"
                << "\"prompt_tokens\": " << s.prompt_tokens << ", \"generated_tokens\": " << s.generated_tokens
                << ", \"prefill_seconds\": " << cli::json_number(s.prefill_seconds)
                << ", \"decode_seconds\": " << cli::json_number(s.decode_seconds)
                << ", \"sample_seconds\": " << cli::json_number(s.sample_seconds)
                << ", \"prefill_tokens_per_second\": " << cli::json_number(s.prefill_tokens_per_second())
                << ", \"decode_tokens_per_second\": " << cli::json_number(s.decode_tokens_per_second())
                << ", \"tokens_per_second\": " << cli::json_number(s.decode_tokens_per_second())
                << ", \"threads\": " << threads << ", \"weight_type\": " << cli::json_string(name(weights->config.weight_type))
                << "}}\n";
    } else {
      std::cout << "\n\n[prompt " << s.prompt_tokens << " tokens, " << s.prefill_tokens_per_second()
                << " tok/s prefill | " << s.generated_tokens << " generated, " << s.decode_tokens_per_second()
                << " tok/s decode | " << threads << " threads, " << name(weights->config.weight_type) << "]\n";
    }
    return 0;
  });
}
