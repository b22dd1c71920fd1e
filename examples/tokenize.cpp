// edgespec-tokenize: print the token ids of a text, separated by spaces.
//
//   edgespec-tokenize --model FILE [--tokenizer FILE] --text TEXT [--no-bos] [--special] [--pieces]
// As llama-tokenize: BOS (and EOS) where the vocabulary asks for them unless --no-bos; --special parses special
// tokens written in the text (<|im_start|>, <s>, ...).
// --model may be a vocabulary-only GGUF; with a llama2.c tokenizer.bin, --model may be omitted when
// --vocab-size is given (default: the model's vocabulary size).
#include <iostream>

#include "cli.hpp"

int main(int argc, char** argv) {
  using namespace edgespec;
  return cli::guarded_main([&] {
    const cli::Args args(argc, argv, {"model", "tokenizer", "text", "vocab-size"}, {"no-bos", "special", "pieces", "help"});
    if (args.has("help")) {
      std::cout << "usage: edgespec-tokenize --model FILE [--tokenizer FILE] --text TEXT [--no-bos] [--special] [--pieces]\n"
                   "       edgespec-tokenize --tokenizer tokenizer.bin --vocab-size N --text TEXT\n";
      return 0;
    }
    const std::string text = args.required("text");
    std::optional<Tokenizer> tok;
    if (args.has("model")) {
      const std::string model = args.str("model");
      // A GGUF's vocabulary is read without loading tensors (vocabulary-only files have none).
      std::uint32_t magic = 0;
      {
        const MappedFile f(model);
        ES_CHECK(f.size() >= 4, model, ": file is too small to be a model");
        std::memcpy(&magic, f.data(), 4);
      }
      if (magic == gguf::kMagic && !args.has("tokenizer")) {
        tok.emplace(vocab_from_gguf(GgufFile(model)));
      } else {
        const LlamaWeights w = load_weights(model);
        tok.emplace(cli::open_tokenizer(w, args.str("tokenizer")));
      }
    } else {
      const int vs = args.num<int>("vocab-size", 0, 1, 1 << 22);
      ES_CHECK(vs > 0, "without --model, give --tokenizer FILE and --vocab-size N");
      tok.emplace(load_llama2c_tokenizer(args.required("tokenizer"), vs));
    }
    const auto ids = tok->encode(text, /*add_special=*/!args.has("no-bos"), /*parse_special=*/args.has("special"));
    for (std::size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
    std::cout << "\n";
    if (args.has("pieces"))
      for (auto id : ids) std::cout << id << "\t" << cli::json_string(tok->token_to_piece(id, /*special=*/true)) << "\n";
    return 0;
  });
}
