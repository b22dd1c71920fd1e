// edgespec-planned: the pipeline edgespec-plan chose, compiled from the header it wrote.
//
//   edgespec-plan --profile profile.json --emit-header plan.hpp
//   c++ ... -DEDGESPEC_PLAN_HEADER='"plan.hpp"' examples/planned.cpp     (tests/planning/consumer/CMakeLists.txt)
//   edgespec-planned --prompt TEXT [-n N] [--model FILE] [--json]
//
// The header gives `edgespec::plan::Pipeline` (drafter placement, target placement, draft length policy, early
// stop, schedule: all types) and how to make the drafter (a second file, a requantized copy, the target with the
// layers in the type skipped, or none: an n-gram lookup); this program only loads the weights and runs it.
#ifndef EDGESPEC_PLAN_HEADER
#error "compile with -DEDGESPEC_PLAN_HEADER='\"plan.hpp\"' (a header written by edgespec-plan --emit-header)"
#endif
#include EDGESPEC_PLAN_HEADER

#include <iostream>

#include "cli.hpp"

int main(int argc, char** argv) {
  using namespace edgespec;
  return cli::guarded_main([&] {
    const cli::Args args(argc, argv, {"model", "prompt", "n"}, {"json", "help"});
    if (args.has("help")) {
      std::cout << "usage: edgespec-planned --prompt TEXT [-n N] [--model FILE] [--json]\n  the pipeline: "
                << plan::drafter_kind << " drafter " << plan::drafter_spec << ", predicted "
                << plan::predicted_speedup << "x\n";
      return 0;
    }
    auto target = std::make_shared<const LlamaWeights>(load_weights(args.str("model", std::string(plan::target_file))));
    const Tokenizer tok = cli::open_tokenizer(*target, "");
    const std::vector<std::int32_t> prompt = tok.encode(args.required("prompt"), true, false);
    const int n = args.num<int>("n", 64, 1, 1 << 20);
    ThreadPool pool(plan::threads);
    PipelineOptions po;
    po.max_seq = static_cast<int>(prompt.size()) + n + kMaxDraftLen + 1;
    po.target_split = plan::target_split;  // a Target<Split<...>>'s cut; -1 otherwise
    std::unique_ptr<plan::Pipeline> pipeline;
    if constexpr (plan::Pipeline::self_speculative || plan::Pipeline::ngram_drafter) {  // no draft model to load
      pipeline = std::make_unique<plan::Pipeline>(target, pool, po);
    } else {
      auto draft = plan::drafter_kind == "quant"
                       ? std::make_shared<const LlamaWeights>(requantize(target, parse_dtype(std::string(plan::drafter_spec)), &pool))
                       : std::make_shared<const LlamaWeights>(load_weights(std::string(plan::drafter_spec)));
      pipeline = std::make_unique<plan::Pipeline>(target, draft, pool, po);
    }
    const SpeculativeResult r = pipeline->generate(prompt, n);
    if (args.has("json")) {
      std::cout << "{\"tokens\": " << cli::json_array(r.tokens) << ", \"text\": " << cli::json_string(tok.decode(r.tokens))
                << ", \"tokens_per_second\": " << cli::json_number(r.stats.gen.decode_tokens_per_second())
                << ", \"alpha\": " << cli::json_number(r.stats.acceptance_rate()) << "}\n";
    } else {
      std::cout << tok.decode(prompt) << tok.decode(r.tokens) << "\n\n[" << r.stats.gen.decode_tokens_per_second()
                << " tok/s, " << r.stats.tokens_per_round() << " tokens per round; predicted "
                << plan::predicted_tokens_per_second << " tok/s]\n";
    }
    return 0;
  });
}
