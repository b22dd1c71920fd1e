// edgespec-generate --server URL: the device side of SLED. Drafting runs here (a draft model, a requantized copy
// of a local target file, n-gram lookup, or nothing), verification on an edgespec-server (docs/server.md).
#pragma once

#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli.hpp"
#include "speculation.hpp"

#include <edgespec/serving/device_drafter.hpp>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace edgespec::cli {

inline const std::set<std::string> kRemoteOptions = {"server"};

inline constexpr const char* kRemoteUsage = R"(remote verification (SLED: drafting here, verification on an edgespec-server):
  --server URL       http://host:port of an edgespec-server; the target is the server's model. Drafter: --draft
                     FILE, --draft-quant T (a copy of --model FILE), --draft-ngram N, or none (the server decodes).
                     Tokenizer: --tokenizer FILE, else the draft's or --model's GGUF, else the server's.
                     --json adds server_wait_seconds, server_queue_seconds, server_compute_seconds, network_seconds.
)";

// An edgespec-server's sessions API over HTTP; every failure is an edgespec::Error naming the server.
class RemoteTarget {
 public:
  using json = nlohmann::json;

  explicit RemoteTarget(std::string url) : url_(std::move(url)), http_(url_) {
    ES_CHECK(http_.is_valid(), "--server ", url_, ": not an http://host:port address");
    http_.set_connection_timeout(5, 0);
    http_.set_read_timeout(600, 0);
    http_.set_write_timeout(60, 0);
    http_.set_keep_alive(true);
    http_.set_tcp_nodelay(true);  // one small request per round: no Nagle/delayed-ACK stalls
  }
  [[nodiscard]] const std::string& url() const noexcept { return url_; }
  [[nodiscard]] double wait_seconds() const noexcept { return wait_; }

  json post(const std::string& path, const json& body) { return call("POST", path, &body); }
  json get(const std::string& path) { return call("GET", path, nullptr); }
  void del(const std::string& path) { call("DELETE", path, nullptr); }

 private:
  json call(const char* method, const std::string& path, const json* body) {
    const auto t0 = std::chrono::steady_clock::now();
    httplib::Result r = std::string(method) == "POST"
                            ? http_.Post(path, body->dump(), "application/json")
                        : std::string(method) == "GET" ? http_.Get(path)
                                                       : http_.Delete(path);
    wait_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!r) throw_error("--server ", url_, ": ", method, " ", path, " failed: ", httplib::to_string(r.error()),
                        " (is edgespec-server running there?)");
    json j = r->body.empty() ? json::object() : json::parse(r->body, nullptr, false);
    if (r->status >= 400) {
      std::string message = r->body;
      if (!j.is_discarded() && j.contains("error")) message = j["error"].value("message", message);
      throw_error("--server ", url_, ": ", method, " ", path, ": HTTP ", r->status, ": ", message);
    }
    ES_CHECK(!j.is_discarded(), "--server ", url_, ": ", method, " ", path, ": the answer is not JSON");
    return j;
  }

  std::string url_;
  httplib::Client http_;
  double wait_ = 0.0;
};

// The whole of edgespec-generate --server: returns the process exit code.
inline int run_remote(const Args& args) {
  using json = nlohmann::json;
  for (const char* o : {"draft-skip", "adaptive", "early-stop", "draft-device", "target-device", "ctx"})
    ES_CHECK(!args.has(o), "--", o, " does not apply with --server (the server holds the target and its context)");
  const int drafters = int(args.has("draft")) + int(args.has("draft-quant")) + int(args.has("draft-ngram"));
  ES_CHECK(drafters <= 1, "give at most one of --draft, --draft-quant and --draft-ngram");
  ES_CHECK(!args.has("draft-quant") || args.has("model"), "--draft-quant with --server needs --model FILE (a local "
           "copy of the target to requantize)");
  ES_CHECK(drafters == 1 || !args.has("draft-len"), "--draft-len needs a drafter (--draft, --draft-quant or --draft-ngram)");
  const bool chat = args.has("chat");
  ES_CHECK(chat || (!args.has("system") && !args.has("chat-template")), "--system and --chat-template need --chat");
  ES_CHECK(!args.has("chat-template"), "--chat-template does not apply with --server: the server's model template is used");
  ES_CHECK(!(args.has("stop-at-eos") && args.has("ignore-eos")), "give --stop-at-eos or --ignore-eos, not both");
  const int n = args.num<int>("n", 64, 0, 1 << 20);
  const int draft_len = drafters == 1 ? args.num<int>("draft-len", 4, 1, kMaxDraftLen) : 0;
  const int ngram = args.num<int>("draft-ngram", 0, 1, 64);
  const int threads = thread_count(args);
  const SamplingParams sp = sampling_params(args);
  const bool stop = !args.has("ignore-eos") && (chat || args.has("stop-at-eos"));
  const bool json_out = args.has("json");

  RemoteTarget server(args.required("server"));
  ThreadPool pool(threads);

  // Local files: the draft model, the model to requantize, the tokenizer.
  std::shared_ptr<const LlamaWeights> local_model, draft;
  if (args.has("model")) local_model = std::make_shared<const LlamaWeights>(load_weights(args.str("model")));
  if (args.has("draft")) draft = std::make_shared<const LlamaWeights>(load_weights(args.str("draft")));
  if (args.has("draft-quant")) draft = std::make_shared<const LlamaWeights>(
      requantize(local_model, parse_dtype(args.str("draft-quant")), &pool));
  // The server's vocabulary size (a llama2.c tokenizer file needs it).
  const json models = server.get("/v1/models");
  ES_CHECK(models.contains("data") && !models["data"].empty(), "--server ", server.url(), ": no model in /v1/models");
  const int vocab = models["data"][0].at("vocab_size").get<int>();
  std::optional<Tokenizer> tok;
  if (args.has("tokenizer")) {
    const std::string t = args.str("tokenizer");
    if (t.size() >= 5 && t.substr(t.size() - 5) == ".gguf") tok = Tokenizer(vocab_from_gguf(GgufFile(t)));
    else tok = Tokenizer(load_llama2c_tokenizer(t, vocab));
  } else if (draft && draft->gguf) tok = Tokenizer(vocab_from_gguf(*draft->gguf));
  else if (local_model && local_model->gguf) tok = Tokenizer(vocab_from_gguf(*local_model->gguf));

  // The session: the prompt as tokens (local tokenizer), text, or chat messages (the server's template).
  json open = {{"temperature", sp.temperature}, {"top_k", sp.top_k}, {"top_p", sp.top_p}, {"seed", sp.seed}};
  if (chat) {
    json messages = json::array();
    if (args.has("system")) messages.push_back({{"role", "system"}, {"content", args.str("system")}});
    messages.push_back({{"role", "user"}, {"content", args.required("prompt")}});
    open["messages"] = messages;
  } else if (tok) {
    open["prompt_tokens"] = tok->encode(args.required("prompt"), true, args.has("special"));
  } else {
    ES_CHECK(!args.has("special"), "--special with --server needs a local tokenizer (--tokenizer FILE)");
    open["prompt"] = args.required("prompt");
  }
  const auto t_open = std::chrono::steady_clock::now();
  const json session = server.post("/v1/sessions", open);
  const std::int64_t id = session.at("session").get<std::int64_t>();
  const std::string path = "/v1/sessions/" + std::to_string(id);
  const std::vector<std::int32_t> prompt = session.at("prompt_tokens").get<std::vector<std::int32_t>>();
  const int ctx = session.at("ctx").get<int>();
  const std::vector<int> eog = session.at("eog_ids").get<std::vector<int>>();
  if (tok) ES_CHECK(tok->vocab().size() == vocab, "the local tokenizer has ", tok->vocab().size(),
                    " tokens but the server's model has ", vocab);

  serving::DeviceDrafter drafter = serving::DeviceDrafter::none();
  std::string drafter_name = "none (target-only on the server)";
  if (draft) {
    ES_CHECK(draft->config.vocab_size == vocab, "Draft and Target must share a vocabulary (draft: ",
             draft->config.vocab_size, ", the server's target: ", vocab, ")");
    drafter = serving::DeviceDrafter::model(draft, pool, ctx, sp);
    drafter_name = args.has("draft") ? args.str("draft") : "target as " + args.str("draft-quant");
  } else if (ngram > 0) {
    drafter = serving::DeviceDrafter::ngram(ngram);
    drafter_name = "n-gram lookup (n <= " + std::to_string(ngram) + ")";
  }
  drafter.begin(prompt);
  SpeculativeStats st;
  st.gen.prompt_tokens = static_cast<int>(prompt.size());
  st.gen.prefill_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_open).count();
  st.drafted_at.assign(kMaxDraftLen, 0);
  st.accepted_at.assign(kMaxDraftLen, 0);
  double queue_s = 0.0, compute_s = 0.0;

  std::vector<std::int32_t> seq = prompt, out, d;
  std::vector<serving::DraftDistribution> q;
  bool prompt_shown = false;
  auto show = [&](std::int32_t t) {
    if (json_out || !tok) return;
    if (!std::exchange(prompt_shown, true) && !chat) std::cout << tok->decode(prompt);
    std::cout << tok->token_to_piece(t) << std::flush;
  };
  const auto t_decode = std::chrono::steady_clock::now();
  bool done = n == 0;
  while (!done) {
    const int room = ctx - static_cast<int>(seq.size());
    ES_CHECK(room > 0, "the server's context of ", ctx, " tokens is full after ", out.size(), " tokens");
    d.clear();
    q.clear();
    const auto t0 = std::chrono::steady_clock::now();
    drafter.draft(seq, std::min(draft_len, room), d, q);
    st.draft_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    json body = {{"draft", d}};
    if (!q.empty()) {
      json qs = json::array();
      for (const auto& x : q) qs.push_back({{"ids", x.ids}, {"probs", x.probs}});
      body["q"] = qs;
    }
    const double wait0 = server.wait_seconds();
    const json r = server.post(path + "/verify", body);
    st.verify_seconds += server.wait_seconds() - wait0;
    queue_s += r.value("queue_ms", 0.0) / 1e3;
    compute_s += r.value("compute_ms", 0.0) / 1e3;
    const int k = r.at("accepted").get<int>();
    const auto next = r.at("next_token").get<std::int32_t>();
    ES_CHECK(k >= 0 && k <= static_cast<int>(d.size()), "--server: accepted ", k, " of ", d.size(), " drafts");
    ++st.rounds;
    st.drafted += static_cast<int>(d.size());
    st.accepted += k;
    if (k < static_cast<int>(d.size())) ++st.rejections;
    for (int i = 0; i < static_cast<int>(d.size()); ++i) {
      ++st.drafted_at[static_cast<std::size_t>(i)];
      if (i < k) ++st.accepted_at[static_cast<std::size_t>(i)];
    }
    std::vector<std::int32_t> emitted(d.begin(), d.begin() + k);
    emitted.push_back(next);
    seq.insert(seq.end(), emitted.begin(), emitted.end());
    drafter.accept(seq);
    for (const std::int32_t t : emitted) {
      out.push_back(t);
      show(t);
      if (static_cast<int>(out.size()) >= n || (stop && std::find(eog.begin(), eog.end(), t) != eog.end())) {
        done = true;
        break;
      }
    }
  }
  st.gen.decode_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_decode).count();
  st.gen.generated_tokens = static_cast<int>(out.size());
  try {
    server.del(path);
  } catch (const Error& e) {
    std::cerr << "warning: " << e.what() << "\n";
  }
  const std::string text = tok ? tok->decode(out) : server.post("/detokenize", {{"tokens", out}}).at("content").get<std::string>();
  const double wait = server.wait_seconds();
  if (json_out) {
    std::cout << "{\"prompt_tokens\": " << json_array(prompt) << ", \"tokens\": " << json_array(out)
              << ", \"text\": " << json_string(text) << ", \"stats\": {" << speculative_stats_json(st, drafter_name)
              << ", \"threads\": " << threads << ", \"server\": " << json_string(server.url())
              << ", \"server_wait_seconds\": " << json_number(wait) << ", \"server_queue_seconds\": "
              << json_number(queue_s) << ", \"server_compute_seconds\": " << json_number(compute_s)
              << ", \"network_seconds\": " << json_number(std::max(0.0, wait - queue_s - compute_s)) << "}}\n";
  } else {
    if (!tok) std::cout << text;
    std::cout << "\n\n[" << speculative_stats_line(st, drafter_name) << " | server " << server.url() << ": waited "
              << json_number(wait * 1e3) << " ms (queue " << json_number(queue_s * 1e3) << ", compute "
              << json_number(compute_s * 1e3) << ")]\n";
  }
  return 0;
}

}  // namespace edgespec::cli
