// The smallest complete use of the library: a fixed-shape model type, a tokenizer, sampling, generation.
//
//   minimal MODEL_DIR        (MODEL_DIR holds llama2c/stories260K.bin and llama2c/tok512.bin)
#include <iostream>

#include <edgespec/edgespec.hpp>

int main(int argc, char** argv) {
  using namespace edgespec;
  const std::string dir = argc > 1 ? argv[1] : "../shared/models";
  try {
    auto weights = std::make_shared<const LlamaWeights>(load_weights(dir + "/llama2c/stories260K.bin"));
    ThreadPool pool(2);
    Transformer<Stories260K> model(weights, pool);  // throws if the file does not match the type
    const Tokenizer tok(load_llama2c_tokenizer(dir + "/llama2c/tok512.bin", weights->config.vocab_size));
    const std::vector<std::int32_t> prompt = tok.encode("Once upon a time", /*add_bos=*/true);
    Sampler sampler(SamplingParams{.temperature = 0.8f, .top_p = 0.95f, .seed = 1});
    GenerationOptions opt;
    opt.n_tokens = 64;
    const GenerationResult r = generate(model, prompt, sampler, opt);
    std::cout << tok.decode(prompt) << tok.decode(r.tokens) << "\n"
              << r.stats.decode_tokens_per_second() << " tok/s\n";
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
