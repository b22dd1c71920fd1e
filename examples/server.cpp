// edgespec-server: one target model verifying the drafts of many devices, batched (SLED); docs/server.md.
//
//   edgespec-server --model FILE [--tokenizer FILE] [--host H] [--port P] [--threads N] [--max-sessions N]
//                   [--max-batch N] [--ctx N] [--idle-timeout S] ...
#include <atomic>
#include <csignal>
#include <iostream>
#include <pthread.h>
#include <thread>

#include "cli.hpp"
#include "speculation.hpp"

#include <edgespec/serving/http_server.hpp>

namespace {

constexpr const char* kUsage = R"(usage: edgespec-server --model FILE [--tokenizer FILE] [--host H] [--port P] [--threads N]
                       [--max-sessions N] [--max-batch N] [--ctx N] [--idle-timeout S] [--max-draft N]
                       [--http-threads N] [--max-body BYTES] [--chat-template NAME] [--name NAME]

  --model FILE        the target model (GGUF or llama2.c .bin, as edgespec-generate)
  --tokenizer FILE    llama2.c tokenizer.bin (for .bin models)
  --host H            address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)
  --port P            TCP port (default 8080; 0: any free port, printed)
  --threads N         CPU threads of the target's forwards (default: all cores)
  --max-sessions N    open sessions at most; more get 429 (default 16)
  --max-batch N       sessions verified in one forward at most (default 8; 1: no batching)
  --max-batch-positions N  positions in one forward at most (default 512)
  --ctx N             KV-cache length of each session (default 2048)
  --max-draft N       draft tokens per verification request at most (default 16)
  --prefill-chunk N   prompt tokens per forward for one session (default 256)
  --idle-timeout S    seconds after which an idle session is closed (default 300)
  --batch-wait-ms T   a batch that is not full waits up to T ms for the sessions the last forward answered,
                      when their clients answer faster than a forward takes (default 4; 0: never wait)
  --http-threads N    connections served at once (default 64)
  --max-body BYTES    largest request body (default 8388608); larger get 413
  --max-tokens N      largest max_tokens of /v1/completions (default 4096)
  --chat-template T   the chat template for "messages" (default: the model's)
  --name NAME         the model name in OpenAI responses (default: the file name)
  --session-id-start N, --session-id-step S
                      session ids N, N+S, N+2S, ... (default 1, 1): several servers behind one proxy get
                      disjoint ids (server i of S: start i, step S; docs/server.md)

Stops cleanly on SIGTERM or SIGINT.
)";

}  // namespace

int main(int argc, char** argv) {
  using namespace edgespec;
  return cli::guarded_main([&] {
    const cli::Args args(argc, argv,
                         {"model", "tokenizer", "host", "port", "threads", "max-sessions", "max-batch",
                          "max-batch-positions", "ctx", "max-draft", "prefill-chunk", "idle-timeout", "http-threads",
                          "max-body", "max-tokens", "chat-template", "name", "session-id-start", "session-id-step", "batch-wait-ms"},
                         {"help"});
    if (args.has("help")) {
      std::cout << kUsage;
      return 0;
    }
    ES_CHECK(args.positional().empty(), "unexpected argument '", args.positional().front(), "' (see --help)");
    serving::VerifierOptions vo;
    vo.max_sessions = args.num<int>("max-sessions", 16, 1, 4096);
    vo.max_batch = args.num<int>("max-batch", 8, 1, 1024);
    vo.max_batch_positions = args.num<int>("max-batch-positions", 512, 1, 1 << 20);
    vo.ctx = args.num<int>("ctx", 2048, 2, 1 << 24);
    vo.max_draft = args.num<int>("max-draft", kMaxDraftLen, 0, 64);
    vo.prefill_chunk = args.num<int>("prefill-chunk", 256, 1, 1 << 20);
    vo.idle_timeout = args.num<double>("idle-timeout", 300.0, 0.001, 1e9);
    vo.batch_wait = args.num<double>("batch-wait-ms", 4.0, 0.0, 10000.0) / 1e3;
    vo.id_start = args.num<std::int64_t>("session-id-start", 1, 0, std::int64_t{1} << 52);
    vo.id_step = args.num<std::int64_t>("session-id-step", 1, 1, 1 << 20);
    serving::HttpOptions ho;
    ho.host = args.str("host", "127.0.0.1");
    ho.port = args.num<int>("port", 8080, 0, 65535);
    ho.http_threads = args.num<int>("http-threads", 64, 1, 4096);
    ho.max_body = args.num<std::size_t>("max-body", 8u << 20, 1024, std::size_t{1} << 32);
    ho.max_completion_tokens = args.num<int>("max-tokens", 4096, 1, 1 << 24);
    const int threads = cli::thread_count(args);

    const auto [weights, tok] = cli::open_model(args);
    ho.model_name = args.str("name", std::filesystem::path(weights->path).filename().string());
    std::optional<ChatTemplate> chat;
    try {
      chat = cli::chat_template_for(*weights, args);
    } catch (const Error& e) {
      if (args.has("chat-template")) throw;
      std::cerr << "edgespec-server: no chat template (" << e.what() << "); \"messages\" will be refused\n";
    }

    // SIGTERM / SIGINT are blocked in every thread and taken by one waiting thread, which stops the server.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    ThreadPool pool(threads);
    serving::BatchVerifier verifier(weights, pool, vo);
    serving::HttpServer http(verifier, tok, chat, ho);
    const int port = http.bind();
    std::atomic<bool> signalled{false};
    std::thread signals([&] {
      int sig = 0;
      sigwait(&stop_signals, &sig);
      signalled = true;
      std::cerr << "edgespec-server: " << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << ", stopping\n";
      http.stop();
    });
    std::cout << "edgespec-server: listening on http://" << ho.host << ":" << port << " (model " << ho.model_name
              << ", " << threads << " threads, max " << vo.max_sessions << " sessions, batches of " << vo.max_batch
              << ", ctx " << vo.ctx << ")" << std::endl;
    http.serve();
    verifier.stop();
    // serve() also returns when no signal came (a listen error): wake the signal thread then.
    if (!signalled) pthread_kill(signals.native_handle(), SIGTERM);
    signals.join();
    const serving::VerifierMetrics m = verifier.metrics();
    std::cout << "edgespec-server: stopped after " << m.forwards << " forwards, " << m.emitted_tokens
              << " tokens emitted" << std::endl;
    return 0;
  });
}
