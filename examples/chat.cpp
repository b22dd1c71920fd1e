// edgespec-chat: an interactive multi-turn chat in the terminal (llama-cli's conversation mode), target-only or
// speculative. Each reply streams as tokens are accepted; the KV caches are kept between turns, so a turn only
// prefills its own new tokens.
//
//   edgespec-chat --model FILE [--system TEXT] [--chat-template NAME] [-n N] [--ctx N] [--threads N]
//                 [--temp T ...] [--draft FILE | --draft-skip L,... | --draft-quant T | --draft-ngram N]
//                 [--draft-len N | --adaptive]
//
// Turn k's new tokens: the template applied to the whole conversation (with the assistant's generation prompt)
// minus the text the caches already hold (the previous formatted prompt and the reply as generated, its
// end-of-generation token included), tokenized with special tokens parsed, as llama.cpp's
// common_chat_format_single does. When the formatted history does not extend that text (a template that
// rewrites earlier turns), the conversation is prefilled again from the start.
//
// With --draft-ngram the lookup runs over the pipeline's whole sequence, i.e. the whole conversation so far
// (system message, every turn and reply): a reply that quotes an earlier turn is drafted from it.
#include <unistd.h>

#include <iostream>
#include <thread>
#include <utility>

#include "cli.hpp"
#include "speculation.hpp"

namespace {

constexpr const char* kUsage = R"(usage: edgespec-chat --model FILE [--tokenizer FILE] [--system TEXT] [--chat-template NAME]
                     [-n N] [--ctx N] [--threads N] [--temp T] [--top-k K] [--top-p P] [--seed S]
                     [speculative options]

Reads one user message per line from standard input and answers it, streaming the reply. Commands:
  /reset   start a new conversation (the system message is kept)
  /exit    quit (as does end of input)

  --model FILE       an instruct model (GGUF with a chat template)
  -n N               tokens per reply at most (default 512)
  --ctx N            context length in tokens (default: the model's, at most 4096)
  --threads N        CPU threads (default: all cores)
  --temp T, --top-k K, --top-p P, --seed S    sampling (default greedy)

)";

using namespace edgespec;

// One conversation's state on top of either a target-only model or a speculative pipeline.
class Conversation {
 public:
  Conversation(std::shared_ptr<const LlamaWeights> w, const Tokenizer& tok, ChatTemplate tmpl, ThreadPool& pool,
               std::unique_ptr<cli::SpeculativeSession> spec, const SamplingParams& sp, int ctx, std::string system)
      : tok_(tok), tmpl_(tmpl), spec_(std::move(spec)), system_(std::move(system)), sampler_(sp), ctx_(ctx) {
    if (!spec_) model_.emplace(w, pool, ctx);
    reset();
  }

  void reset() {
    messages_.clear();
    if (!system_.empty()) messages_.push_back({"system", system_});
    held_.clear();
    pending_ = -1;
  }

  // Answers one user message; on_piece receives the reply's text as it is generated. Returns the stats line.
  std::string answer(const std::string& user, int max_tokens, const std::function<void(const std::string&)>& on_piece) {
    messages_.push_back({"user", user});
    const std::string formatted = apply_chat_template(tmpl_, messages_, /*add_generation_prompt=*/true);
    const bool extends = !held_.empty() && formatted.compare(0, held_.size(), held_) == 0;
    const std::string fresh = extends ? formatted.substr(held_.size()) : formatted;
    const std::vector<std::int32_t> tokens = cli::chat_tokens(tok_, fresh, /*first=*/!extends);
    ES_CHECK(!tokens.empty() || extends, "the formatted conversation has no tokens");

    std::vector<std::int32_t> reply;
    auto on_token = [&](std::int32_t t) {
      reply.push_back(t);
      if (!tok_.is_eog(t)) on_piece(tok_.token_to_piece(t));
      return true;
    };
    std::string line;
    if (spec_) {
      if (extends) spec_->extend(tokens);
      else spec_->begin(tokens);
      const SpeculativeResult r = spec_->run(max_tokens, on_token);
      line = cli::speculative_stats_line(r.stats, spec_->drafter());
    } else {
      std::vector<std::int32_t> prompt;
      if (extends) prompt.push_back(pending_);  // the previous reply's last token was never fed
      prompt.insert(prompt.end(), tokens.begin(), tokens.end());
      GenerationOptions opt;
      const int room = ctx_ - (extends ? model_->position() : 0) - static_cast<int>(prompt.size());
      ES_CHECK(room > 0, "the conversation fills the context of ", ctx_, " tokens");
      opt.n_tokens = std::min(max_tokens, room);
      opt.append = extends;
      opt.stop_at_eos = true;
      opt.eos_id = tok_.eos();
      opt.eog_ids = tok_.eog_ids();
      opt.on_token = on_token;
      const GenerationResult r = generate(*model_, prompt, sampler_, opt);
      line = cli::generation_stats_line(r.stats);
    }
    pending_ = reply.empty() ? -1 : reply.back();
    // What the caches now hold, as text: the formatted prompt and the reply with its special tokens.
    held_ = formatted + tok_.decode(reply, /*special=*/true);
    std::vector<std::int32_t> text_ids;
    for (const std::int32_t t : reply)
      if (!tok_.is_eog(t)) text_ids.push_back(t);
    messages_.push_back({"assistant", tok_.decode(text_ids)});
    return line;
  }

 private:
  const Tokenizer& tok_;
  ChatTemplate tmpl_;
  std::unique_ptr<cli::SpeculativeSession> spec_;
  std::optional<Transformer<AnyLlama>> model_;
  std::string system_;
  Sampler sampler_;
  int ctx_;
  std::vector<ChatMessage> messages_;
  std::string held_;          // the conversation as text, exactly what the caches hold (empty: nothing yet)
  std::int32_t pending_ = -1;  // target-only: the last generated token, not yet fed
};

}  // namespace

int main(int argc, char** argv) {
  return cli::guarded_main([&] {
    std::set<std::string> with_value = {"model", "tokenizer", "n", "temp", "top-k", "top-p", "seed", "threads",
                                        "ctx", "system", "chat-template"};
    with_value.insert(cli::kSpeculativeOptions.begin(), cli::kSpeculativeOptions.end());
    const cli::Args args(argc, argv, with_value, {"help"});
    if (args.has("help")) {
      std::cout << kUsage << cli::kChatUsage << "\n" << cli::kSpeculativeUsage;
      return 0;
    }
    ES_CHECK(args.positional().empty(), "unexpected argument '", args.positional().empty() ? "" : args.positional()[0],
             "' (see --help)");
    const int max_tokens = args.num<int>("n", 512, 1, 1 << 20);
    const int threads = cli::thread_count(args);
    const SamplingParams sp = cli::sampling_params(args);
    const auto [weights, tok] = cli::open_model(args);
    const ChatTemplate tmpl = cli::chat_template_for(*weights, args);
    const int ctx = args.num<int>("ctx", std::min(weights->config.max_seq, 4096), 16, 1 << 24);

    ThreadPool pool(threads);
    PipelineOptions po;
    po.sampling = sp;
    po.max_seq = ctx;
    po.stop_at_eos = true;
    po.eos_id = tok.eos();
    po.eog_ids = tok.eog_ids();
    auto spec = cli::SpeculativeSession::from_args(args, weights, tok, pool, po);
    ES_CHECK(spec || (!cli::on_gpu(args, "target-device") && !args.has("target-split") && !args.has("lm-head-device")),
             "edgespec-chat runs a target alone on the CPU; --target-device gpu, --target-split and --lm-head-device "
             "need a drafter here (edgespec-generate places a target alone)");
    const std::string mode = spec ? "speculative, drafter " + spec->drafter() : std::string("target only");
    Conversation conv(weights, tok, tmpl, pool, std::move(spec), sp, ctx, args.str("system"));

    const bool tty = isatty(STDIN_FILENO) != 0;
    std::cerr << "edgespec-chat: " << args.str("model") << ", template " << chat_template_name(tmpl) << ", "
              << mode << ", " << threads << " threads, context " << ctx << " tokens"
              << (tty ? " (/reset: new conversation, /exit or Ctrl-D: quit)" : "") << "\n";
    std::string line;
    for (;;) {
      if (tty) std::cout << "> " << std::flush;
      if (!std::getline(std::cin, line) || line == "/exit") break;
      if (line.empty()) continue;
      if (line == "/reset") {
        conv.reset();
        std::cout << "[new conversation]\n";
        continue;
      }
      try {
        const std::string stats =
            conv.answer(line, max_tokens, [](const std::string& piece) { std::cout << piece << std::flush; });
        std::cout << "\n[" << stats << "]\n" << std::flush;
      } catch (const Error& e) {  // e.g. the context is full: say so, keep the session
        std::cout << "\n";
        std::cerr << "error: " << e.what() << " (/reset starts a new conversation)\n";
        conv.reset();
      }
    }
    return 0;
  });
}
