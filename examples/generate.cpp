// edgespec-generate: text generation with a Llama-family model on the CPU, target-only or speculative.
//
//   edgespec-generate --model FILE [--tokenizer FILE] --prompt TEXT -n N [--temp T] [--top-k K] [--top-p P]
//                     [--seed S] [--threads N] [--ctx N] [--stop-at-eos] [--json]
//                     [--draft FILE | --draft-skip 1,3 | --draft-quant q8_0] [--draft-len N | --adaptive MIN:MAX]
//                     [--early-stop P] [--draft-device cpu|gpu] [--target-device cpu|gpu]
#include <iostream>
#include <thread>
#include <utility>

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

speculative decoding (output = the target's: token for token when greedy, in distribution otherwise):
  --draft FILE       a draft model sharing the target's vocabulary (GGUF or llama2.c .bin)
  --draft-skip L,..  self-speculative: the target itself with these layers skipped (no extra memory)
  --draft-quant T    the draft is a copy of the target's weights in type T (any --type of edgespec-convert:
                     q8_0, q4_0, q4_k, f16, ...)
  --draft-len N      draft tokens per round, 1..16 (default 4)
  --adaptive MIN:MAX adapt the draft length to the running acceptance rate within [MIN, MAX]
  --early-stop P     stop drafting when the draft's top probability falls below P (0..1)
  --draft-device D, --target-device D
                     cpu (gpu needs the OpenCL backend, not part of this build)
)";

using Speculative = edgespec::Pipeline<edgespec::Draft<>, edgespec::Target<>, edgespec::AdaptiveDraftLen<1, 16>>;
using SelfSpeculative =
    edgespec::Pipeline<edgespec::Draft<edgespec::SkipLayers<>>, edgespec::Target<>, edgespec::AdaptiveDraftLen<1, 16>>;

std::vector<int> parse_int_list(const std::string& s, const char* option) {
  std::vector<int> out;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    const std::size_t comma = std::min(s.find(',', pos), s.size());
    const std::string item = s.substr(pos, comma - pos);
    int v = 0;
    const auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    ES_CHECK(!item.empty() && ec == std::errc() && p == item.data() + item.size(), "option --", option, ": '", item,
             "' is not a layer number");
    out.push_back(v);
    pos = comma + 1;
  }
  return out;
}

void check_device(const edgespec::cli::Args& args, const char* option) {
  const std::string d = args.str(option, "cpu");
  ES_CHECK(d == "cpu" || d == "gpu", "option --", option, ": '", d, "' is not a device (cpu, gpu)");
  ES_CHECK(d == "cpu", "option --", option, " gpu: no GPU device is available to this build (the OpenCL backend "
           "that runs models on a GPU is not part of it yet); use cpu");
}

// The "stats" fields every generation reports, target-only or speculative.
std::string generation_stats_json(const edgespec::GenerationStats& s) {
  using edgespec::cli::json_number;
  return "\"prompt_tokens\": " + std::to_string(s.prompt_tokens) +
         ", \"generated_tokens\": " + std::to_string(s.generated_tokens) +
         ", \"prefill_seconds\": " + json_number(s.prefill_seconds) +
         ", \"decode_seconds\": " + json_number(s.decode_seconds) +
         ", \"sample_seconds\": " + json_number(s.sample_seconds) +
         ", \"prefill_tokens_per_second\": " + json_number(s.prefill_tokens_per_second()) +
         ", \"decode_tokens_per_second\": " + json_number(s.decode_tokens_per_second()) +
         ", \"tokens_per_second\": " + json_number(s.decode_tokens_per_second());
}

std::string json_doubles(const std::vector<double>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + edgespec::cli::json_number(v[i]);
  return s + "]";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace edgespec;
  return cli::guarded_main([&] {
    const cli::Args args(argc, argv,
                         {"model", "tokenizer", "prompt", "n", "temp", "top-k", "top-p", "seed", "threads", "ctx", "draft",
                          "draft-skip", "draft-quant", "draft-len", "adaptive", "early-stop", "draft-device",
                          "target-device"},
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

    check_device(args, "target-device");
    check_device(args, "draft-device");
    const int drafters = int(args.has("draft")) + int(args.has("draft-skip")) + int(args.has("draft-quant"));
    ES_CHECK(drafters <= 1, "give at most one of --draft, --draft-skip and --draft-quant");
    ES_CHECK(drafters == 1 || (!args.has("draft-len") && !args.has("adaptive") && !args.has("early-stop")),
             "--draft-len, --adaptive and --early-stop need a drafter (--draft, --draft-skip or --draft-quant)");

    ThreadPool pool(threads);
    const bool json = args.has("json");
    bool prompt_shown = false;  // shown with the first token, once every option has been accepted
    auto print_token = [&](std::int32_t t) {
      if (!std::exchange(prompt_shown, true)) std::cout << tok.decode(prompt);
      std::cout << tok.token_to_piece(t) << std::flush;
      return true;
    };

    std::vector<std::int32_t> tokens;
    std::string stats_json, stats_line;
    if (drafters == 0) {
      Transformer<AnyLlama> model(weights, pool, ctx);
      Sampler sampler(sp);
      GenerationOptions opt;
      opt.n_tokens = n;
      opt.stop_at_eos = args.has("stop-at-eos");
      opt.eos_id = tok.eos();
      if (!json) opt.on_token = print_token;
      const GenerationResult r = generate(model, prompt, sampler, opt);
      tokens = r.tokens;
      const GenerationStats& s = r.stats;
      stats_json = generation_stats_json(s);
      stats_line = "[prompt " + std::to_string(s.prompt_tokens) + " tokens, " +
                   cli::json_number(s.prefill_tokens_per_second()) + " tok/s prefill | " +
                   std::to_string(s.generated_tokens) + " generated, " +
                   cli::json_number(s.decode_tokens_per_second()) + " tok/s decode";
    } else {
      PipelineOptions po;
      po.sampling = sp;
      po.max_seq = ctx + kMaxDraftLen + 1;  // room for the last round's draft
      po.stop_at_eos = args.has("stop-at-eos");
      po.eos_id = tok.eos();
      po.draft_len = args.num<int>("draft-len", 0, 1, kMaxDraftLen);
      if (args.has("adaptive")) {
        ES_CHECK(!args.has("draft-len"), "give --draft-len or --adaptive, not both");
        const std::string a = args.str("adaptive");
        const auto colon = a.find(':');
        ES_CHECK(colon != std::string::npos, "option --adaptive: expected MIN:MAX, got '", a, "'");
        const auto range = parse_int_list(a.substr(0, colon) + "," + a.substr(colon + 1), "adaptive");
        po.adaptive_min = range[0];
        po.adaptive_max = range[1];
        ES_CHECK(range[0] >= 1 && range[1] <= kMaxDraftLen && range[0] <= range[1], "option --adaptive: ", a,
                 " must satisfy 1 <= MIN <= MAX <= ", kMaxDraftLen);
      } else if (po.draft_len == 0) {
        po.draft_len = 4;
      }
      po.early_stop = args.num<float>("early-stop", -1.0f, 0.0f, 0.99f);
      SpeculativeResult r;
      auto on_token = json ? std::function<bool(std::int32_t)>{} : std::function<bool(std::int32_t)>(print_token);
      std::string drafter;
      if (args.has("draft-skip")) {
        po.skip_layers = parse_int_list(args.str("draft-skip"), "draft-skip");
        SelfSpeculative p(weights, pool, po);
        r = p.generate(prompt, n, on_token);
        drafter = "self (skip " + args.str("draft-skip") + ")";
      } else {
        std::shared_ptr<const LlamaWeights> draft;
        if (args.has("draft")) {
          draft = std::make_shared<const LlamaWeights>(load_weights(args.str("draft")));
          // The draft's vocabulary must be the target's: compare texts when the draft carries its own.
          if (draft->gguf) check_same_vocabulary(vocab_from_gguf(*draft->gguf), tok.vocab());
          drafter = args.str("draft");
        } else {
          draft = std::make_shared<const LlamaWeights>(requantize(weights, parse_dtype(args.str("draft-quant")), &pool));
          drafter = "target as " + std::string(name(parse_dtype(args.str("draft-quant"))));
        }
        Speculative p(weights, draft, pool, po);
        r = p.generate(prompt, n, on_token);
      }
      tokens = r.tokens;
      const SpeculativeStats& s = r.stats;
      stats_json = generation_stats_json(s.gen) + ", \"drafter\": " + cli::json_string(drafter) + ", \"rounds\": " + std::to_string(s.rounds) +
                   ", \"drafted\": " + std::to_string(s.drafted) + ", \"accepted\": " + std::to_string(s.accepted) +
                   ", \"alpha\": " + cli::json_number(s.acceptance_rate()) +
                   ", \"alpha_per_trial\": " + cli::json_number(s.acceptance_per_trial()) +
                   ", \"acceptance_by_position\": " + json_doubles(s.acceptance_by_position()) +
                   ", \"tokens_per_round\": " + cli::json_number(s.tokens_per_round()) +
                   ", \"draft_seconds\": " + cli::json_number(s.draft_seconds) +
                   ", \"verify_seconds\": " + cli::json_number(s.verify_seconds);
      stats_line = "[prompt " + std::to_string(s.gen.prompt_tokens) + " tokens | " +
                   std::to_string(s.gen.generated_tokens) + " generated, " +
                   cli::json_number(s.gen.decode_tokens_per_second()) + " tok/s | drafter " + drafter + ": " +
                   std::to_string(s.rounds) + " rounds, alpha " + cli::json_number(s.acceptance_rate()) + " (" +
                   std::to_string(s.accepted) + "/" + std::to_string(s.drafted) + "), " +
                   cli::json_number(s.tokens_per_round()) + " tokens/round; draft " +
                   cli::json_number(s.draft_seconds * 1e3) + " ms, verify " + cli::json_number(s.verify_seconds * 1e3) +
                   " ms, sample " + cli::json_number(s.sample_seconds * 1e3) + " ms";
    }
    if (json) {
      std::cout << "{\"prompt_tokens\": " << cli::json_array(prompt) << ", \"tokens\": " << cli::json_array(tokens)
                << ", \"text\": " << cli::json_string(tok.decode(tokens)) << ", \"stats\": {" << stats_json
                << ", \"threads\": " << threads << ", \"weight_type\": "
                << cli::json_string(name(weights->config.weight_type)) << "}}\n";
    } else {
      std::cout << "\n\n" << stats_line << " | " << threads << " threads, " << name(weights->config.weight_type)
                << "]\n";
    }
    return 0;
  });
}
