// edgespec-generate: text generation with a Llama-family model on the CPU, target-only or speculative.
//
//   edgespec-generate --model FILE [--tokenizer FILE] --prompt TEXT [-n N] [--chat [--system TEXT]
//                     [--chat-template NAME]] [--special] [--temp T] [--top-k K] [--top-p P] [--seed S]
//                     [--threads N] [--ctx N] [--stop-at-eos | --ignore-eos] [--json]
//                     [--draft FILE | --draft-skip 1,3 | --draft-quant q8_0 | --draft-ngram 3]
//                     [--draft-len N | --adaptive MIN:MAX]
//                     [--early-stop P] [--draft-device cpu|gpu] [--target-device cpu|gpu]
//   edgespec-generate --server URL [--draft FILE | --draft-quant T --model FILE | --draft-ngram N] ...  (remote.hpp)
#include <iostream>
#include <thread>
#include <utility>

#include "cli.hpp"
#include "remote.hpp"
#include "speculation.hpp"

namespace {

constexpr const char* kUsage = R"(usage: edgespec-generate --model FILE [--tokenizer FILE] --prompt TEXT [-n N] [--chat]
                         [--temp T] [--top-k K] [--top-p P] [--seed S] [--threads N] [--ctx N]
                         [--stop-at-eos | --ignore-eos] [--special] [--json]

  --model FILE       GGUF (llama architecture; any weight type llama.cpp writes: F32, F16, BF16, Q8_0, Q4_0,
                     Q4_1, Q5_0, Q5_1, Q2_K..Q6_K, IQ4_NL) or llama2.c .bin (fp32 or int8 'ak42')
  --tokenizer FILE   llama2.c tokenizer.bin (required for .bin models; GGUF files carry their vocabulary)
  --prompt TEXT      the prompt, tokenized as llama.cpp does (BOS first when the vocabulary asks for it);
                     with --chat: one user message, wrapped by the model's chat template
  --chat             instruct models: wrap the prompt with the chat template (and the assistant's generation
                     prompt), parse its special tokens, stop at an end-of-generation token
  --special          parse special tokens written in the prompt (<|im_start|>, <|eot_id|>, ...) as those tokens
  -n N               tokens to generate at most (default 64)
  --temp T           temperature; 0 = greedy (default 0)
  --top-k K          keep the K most likely tokens (0 = off)
  --top-p P          nucleus sampling mass (1 = off)
  --seed S           random seed (default 0)
  --threads N        CPU threads (default: all cores)
  --ctx N            KV-cache length (default: prompt + n)
  --stop-at-eos      stop at an end-of-generation token (the default with --chat)
  --json             print one JSON object: prompt_tokens, tokens, text, stats

)";

}  // namespace

int main(int argc, char** argv) {
  using namespace edgespec;
  return cli::guarded_main([&] {
    std::set<std::string> with_value = {"model", "tokenizer", "prompt", "n", "temp", "top-k", "top-p", "seed",
                                        "threads", "ctx", "system", "chat-template"};
    with_value.insert(cli::kSpeculativeOptions.begin(), cli::kSpeculativeOptions.end());
    with_value.insert(cli::kRemoteOptions.begin(), cli::kRemoteOptions.end());
    const cli::Args args(argc, argv, with_value, {"json", "stop-at-eos", "ignore-eos", "chat", "special", "help"});
    if (args.has("help")) {
      std::cout << kUsage << cli::kChatUsage << "\n" << cli::kSpeculativeUsage << "\n" << cli::kRemoteUsage;
      return 0;
    }
    if (args.has("server")) return cli::run_remote(args);
    const bool chat = args.has("chat");
    ES_CHECK(chat || (!args.has("system") && !args.has("chat-template")), "--system and --chat-template need --chat");
    ES_CHECK(!(args.has("stop-at-eos") && args.has("ignore-eos")), "give --stop-at-eos or --ignore-eos, not both");
    const int n = args.num<int>("n", 64, 0, 1 << 20);
    const int threads = cli::thread_count(args);
    const SamplingParams sp = cli::sampling_params(args);
    const auto [weights, tok] = cli::open_model(args);
    std::vector<std::int32_t> prompt;
    if (chat) {
      std::vector<ChatMessage> messages;
      if (args.has("system")) messages.push_back({"system", args.str("system")});
      messages.push_back({"user", args.required("prompt")});
      prompt = cli::chat_tokens(tok, apply_chat_template(cli::chat_template_for(*weights, args), messages, true), true);
    } else {
      prompt = tok.encode(args.required("prompt"), /*add_special=*/true, /*parse_special=*/args.has("special"));
    }
    ES_CHECK(!prompt.empty(), "the prompt has no tokens (an empty prompt, and the vocabulary adds no BOS)");
    const int ctx = args.num<int>("ctx", static_cast<int>(prompt.size()) + n, 1, 1 << 24);
    const bool stop = !args.has("ignore-eos") && (chat || args.has("stop-at-eos"));

    ThreadPool pool(threads);
    PipelineOptions po;
    po.sampling = sp;
    po.max_seq = ctx + kMaxDraftLen + 1;  // room for the last round's draft
    po.stop_at_eos = stop;
    po.eos_id = tok.eos();
    po.eog_ids = tok.eog_ids();
    auto speculative = cli::SpeculativeSession::from_args(args, weights, tok, pool, po);

    const bool json = args.has("json");
    bool prompt_shown = false;  // shown with the first token, once every option has been accepted
    auto print_token = [&](std::int32_t t) {
      if (!std::exchange(prompt_shown, true) && !chat) std::cout << tok.decode(prompt);
      std::cout << tok.token_to_piece(t) << std::flush;
      return true;
    };
    const auto on_token = json ? std::function<bool(std::int32_t)>{} : std::function<bool(std::int32_t)>(print_token);

    std::vector<std::int32_t> tokens;
    std::string stats_json, stats_line;
    if (!speculative) {
      Sampler sampler(sp);
      GenerationOptions opt;
      opt.n_tokens = n;
      opt.stop_at_eos = stop;
      opt.eos_id = tok.eos();
      opt.eog_ids = tok.eog_ids();
      opt.on_token = on_token;
      PipelineOptions placement;
      const GenerationResult r =
          cli::with_target_placement(args, weights->config.n_layers, placement, [&]<class P>(P) {
            if constexpr (detail::is_split<P>) {
              PlacedModel<AnyLlama, P> model(weights, pool, ctx, KvType::F16, SplitPoint{placement.target_split});
              return generate(model, prompt, sampler, opt);
            } else {
              PlacedModel<AnyLlama, P> model(weights, pool, ctx);
              return generate(model, prompt, sampler, opt);
            }
          });
      tokens = r.tokens;
      stats_json = cli::generation_stats_json(r.stats);
      stats_line = cli::generation_stats_line(r.stats);
    } else {
      speculative->begin(prompt);
      const SpeculativeResult r = speculative->run(n, on_token);
      tokens = r.tokens;
      stats_json = cli::speculative_stats_json(r.stats, speculative->drafter());
      stats_line = cli::speculative_stats_line(r.stats, speculative->drafter());
    }
    if (json) {
      std::cout << "{\"prompt_tokens\": " << cli::json_array(prompt) << ", \"tokens\": " << cli::json_array(tokens)
                << ", \"text\": " << cli::json_string(tok.decode(tokens)) << ", \"stats\": {" << stats_json
                << ", \"threads\": " << threads << ", \"weight_type\": "
                << cli::json_string(name(weights->config.weight_type)) << "}}\n";
    } else {
      std::cout << "\n\n[" << stats_line << " | " << threads << " threads, " << name(weights->config.weight_type)
                << "]\n";
    }
    return 0;
  });
}
