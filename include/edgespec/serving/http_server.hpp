// HttpServer: the HTTP/1.1 + JSON face of a BatchVerifier (docs/server.md specifies every path and field).
// Needs cpp-httplib and nlohmann-json (Debian: libcpp-httplib-dev, nlohmann-json3-dev); not part of the
// umbrella header, include it explicitly.
//
//   GET    /health                     200 {"status": "ok"}
//   GET    /metrics                    Prometheus text: sessions, forwards, batched positions, emitted tokens, ...
//   GET    /v1/models                  OpenAI model list (one model)
//   POST   /tokenize, /detokenize      {"content": text} <-> {"tokens": [...]} (llama.cpp's server fields)
//   POST   /v1/sessions                {"prompt_tokens" | "prompt" | "messages", sampling} -> 201 {"session": id, ...}
//   GET    /v1/sessions/{id}           {"session", "tokens", "length"}
//   POST   /v1/sessions/{id}/verify    {"tokens", "draft", "q"} -> {"accepted", "next_token", "tokens", ...}
//   DELETE /v1/sessions/{id}           204
//   POST   /v1/completions             OpenAI-compatible; target-only or server-side n-gram speculation; SSE
//
// Every error is {"error": {"message": ..., "type": ..., "code": status}} with a 4xx/5xx status.
#pragma once

#include <atomic>
#include <chrono>
#include <charconv>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

// edgespec (and Eigen) before httplib: httplib pulls in <resolv.h>, whose `_res` macro breaks Eigen's headers.
#include "edgespec/serving/batch_verifier.hpp"
#include "edgespec/speculative/ngram.hpp"
#include "edgespec/tokenizer/chat_template.hpp"
#include "edgespec/tokenizer/tokenizer.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace edgespec::serving {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                         // 0: any free port (bind() returns it)
  int http_threads = 64;                   // connections served at once (keep-alive connections hold one each)
  int listen_backlog = 1024;               // connections the kernel queues before accept() (capped by somaxconn)
  std::size_t max_body = 8u << 20;         // bytes; larger requests get 413
  int max_completion_tokens = 4096;        // max_tokens of /v1/completions at most
  std::string model_name = "edgespec";     // "model" in OpenAI responses
};

namespace detail {

using json = nlohmann::json;

inline json error_body(int status, const std::string& type, const std::string& message) {
  return {{"error", {{"message", message}, {"type", type}, {"code", status}}}};
}

// Field `key` of `body` as T, with a 400 naming the field when it has the wrong type.
template <class T>
T field(const json& body, const char* key, T def) {
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) return def;
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    reject(400, "invalid_request_error", "field '", key, "' has the wrong type (", it->type_name(), ")");
  }
}

inline std::vector<std::int32_t> token_array(const json& body, const char* key) {
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) return {};
  if (!it->is_array()) reject(400, "invalid_request_error", "field '", key, "' must be an array of token ids");
  std::vector<std::int32_t> out;
  out.reserve(it->size());
  for (const json& v : *it) {
    if (!v.is_number_integer()) reject(400, "invalid_request_error", "field '", key, "' must hold integers (token ids)");
    const auto x = v.get<std::int64_t>();
    if (x < INT32_MIN || x > INT32_MAX) reject(400, "invalid_request_error", "'", key, "': ", x, " is not a token id");
    out.push_back(static_cast<std::int32_t>(x));
  }
  return out;
}

inline SamplingParams sampling_from(const json& body, float default_temperature) {
  SamplingParams sp;
  sp.temperature = field<float>(body, "temperature", default_temperature);
  sp.top_k = field<int>(body, "top_k", 0);
  sp.top_p = field<float>(body, "top_p", 1.0f);
  sp.seed = field<std::uint64_t>(body, "seed", 0);
  try {
    sp.validate();
  } catch (const Error& e) {
    reject(400, "invalid_request_error", e.what());
  }
  return sp;
}

// Bytes of `s` up to the last complete UTF-8 character (a stream never sends half a character).
inline std::size_t complete_utf8_prefix(const std::string& s) {
  std::size_t end = s.size(), back = 0;
  while (back < 4 && back < end && (static_cast<unsigned char>(s[end - 1 - back]) & 0xc0) == 0x80) ++back;
  if (back == end) return end;
  const auto lead = static_cast<unsigned char>(s[end - 1 - back]);
  const std::size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return back + 1 >= need ? end : end - 1 - back;
}

}  // namespace detail

class HttpServer {
  using json = nlohmann::json;

 public:
  HttpServer(BatchVerifier& verifier, Tokenizer tokenizer, std::optional<ChatTemplate> chat, HttpOptions opt = {})
      : v_(verifier), tok_(std::move(tokenizer)), chat_(chat), opt_(std::move(opt)) {
    ES_CHECK(opt_.http_threads >= 1 && opt_.http_threads <= 4096, "http threads ", opt_.http_threads,
             " out of range [1, 4096]");
    ES_CHECK(tok_.vocab().size() == v_.vocab_size(), "the tokenizer has ", tok_.vocab().size(),
             " tokens but the model's vocabulary has ", v_.vocab_size());
    ES_CHECK(opt_.listen_backlog >= 1 && opt_.listen_backlog <= 65535, "listen backlog ", opt_.listen_backlog,
             " out of range [1, 65535]");
    const int threads = opt_.http_threads;
    http_.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
    http_.set_payload_max_length(opt_.max_body);
    http_.set_read_timeout(30, 0);
    http_.set_write_timeout(30, 0);
    http_.set_keep_alive_timeout(5);
    http_.set_tcp_nodelay(true);  // small answers, one per round: no Nagle/delayed-ACK stalls
    // httplib's defaults (address reuse, so a restarted server gets its port back), and the socket it binds,
    // whose accept queue bind() enlarges.
    http_.set_socket_options([this](socket_t sock) {
      httplib::default_socket_options(sock);
      listen_socket_ = sock;
    });
    routes();
  }

  // Binds the listening socket; returns the port (the chosen one when HttpOptions::port is 0).
  int bind() {
    int port = opt_.port;
    if (port == 0) {
      port = http_.bind_to_any_port(opt_.host);
      ES_CHECK(port > 0, "cannot listen on ", opt_.host, " (any port)");
    } else {
      ES_CHECK(http_.bind_to_port(opt_.host, port), "cannot listen on ", opt_.host, ":", port,
               " (in use, or not an address of this machine)");
    }
    // Debian's httplib is a compiled library that listens with a queue of 5: a burst of clients overflows it,
    // and the kernel resets connections whose SYN cookies then fail (measured: 50 concurrent completions
    // under CPU load, 1-3 resets within 10 bursts; TcpExtListenOverflows counted them). Listening again
    // on a listening socket only changes its queue length.
    ES_CHECK(::listen(listen_socket_, opt_.listen_backlog) == 0, "cannot listen on ", opt_.host, ":", port,
             " with a queue of ", opt_.listen_backlog, " connections");
    return port;
  }
  // Serves until stop(); call bind() first.
  void serve() { http_.listen_after_bind(); }
  void stop() { http_.stop(); }

 private:
  // Wraps a handler: RequestError -> its status, edgespec::Error -> 400, anything else -> 500; JSON bodies.
  template <class F>
  httplib::Server::Handler guarded(F f) {
    return [this, f](const httplib::Request& req, httplib::Response& res) {
      try {
        f(req, res);
      } catch (const RequestError& e) {
        send_error(res, e.status(), e.type(), e.what());
      } catch (const Error& e) {
        send_error(res, 400, "invalid_request_error", e.what());
      } catch (const std::exception& e) {
        send_error(res, 500, "server_error", e.what());
      }
    };
  }
  static void send_error(httplib::Response& res, int status, const std::string& type, const std::string& message) {
    res.status = status;
    res.set_content(detail::error_body(status, type, message).dump(), "application/json");
  }
  static void send_json(httplib::Response& res, const json& j, int status = 200) {
    res.status = status;
    res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
  }
  static json parse(const httplib::Request& req) {
    json j = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) reject(400, "invalid_request_error", "the body is not valid JSON");
    if (!j.is_object()) reject(400, "invalid_request_error", "the body must be a JSON object");
    return j;
  }
  static std::int64_t session_id(const httplib::Request& req) {
    const std::string& s = req.matches[1].str();
    std::int64_t id = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), id);
    if (ec != std::errc() || p != s.data() + s.size()) reject(404, "not_found_error", "no session ", s);
    return id;
  }

  void routes() {
    http_.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req,
                                                                    httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      const int status = res.status;
      const std::string message =
          status == 404   ? "no such endpoint: " + req.method + " " + req.path
          : status == 413 ? "the request body is larger than the server accepts (--max-body)"
          : status == 405 ? "method not allowed"
                          : "HTTP error " + std::to_string(status);
      const std::string type = status == 404 ? "not_found_error" : status >= 500 ? "server_error" : "invalid_request_error";
      res.set_content(detail::error_body(status, type, message).dump(), "application/json");
      return httplib::Server::HandlerResponse::Handled;
    }));

    http_.Get("/health", guarded([](const httplib::Request&, httplib::Response& res) {
      send_json(res, {{"status", "ok"}});
    }));
    http_.Get("/metrics", guarded([this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics_text(), "text/plain; version=0.0.4");
    }));
    http_.Get("/v1/models", guarded([this](const httplib::Request&, httplib::Response& res) {
      send_json(res, {{"object", "list"},
                      {"data", json::array({{{"id", opt_.model_name}, {"object", "model"}, {"owned_by", "edgespec"},
                                             {"vocab_size", v_.vocab_size()}, {"ctx", v_.options().ctx}}})}});
    }));
    http_.Post("/tokenize", guarded([this](const httplib::Request& req, httplib::Response& res) {
      const json body = parse(req);
      const std::string text = detail::field<std::string>(body, "content", "");
      const bool add_special = detail::field<bool>(body, "add_special", false);
      const bool parse_special = detail::field<bool>(body, "parse_special", true);
      send_json(res, {{"tokens", tok_.encode(text, add_special, parse_special)}});
    }));
    http_.Post("/detokenize", guarded([this](const httplib::Request& req, httplib::Response& res) {
      const json body = parse(req);
      const auto ids = detail::token_array(body, "tokens");
      check_ids(ids, "tokens");
      send_json(res, {{"content", tok_.decode(ids)}});
    }));
    http_.Post("/v1/sessions", guarded([this](const httplib::Request& req, httplib::Response& res) {
      const json body = parse(req);
      const SessionInfo s = v_.open(prompt_of(body), detail::sampling_from(body, 0.0f));
      send_json(res, session_json(s.id, s.prompt_tokens), 201);
    }));
    http_.Get(R"(/v1/sessions/(\d+))", guarded([this](const httplib::Request& req, httplib::Response& res) {
      const std::int64_t id = session_id(req);
      const auto seq = v_.sequence(id);
      send_json(res, {{"session", id}, {"tokens", seq}, {"length", seq.size()}});
    }));
    http_.Delete(R"(/v1/sessions/(\d+))", guarded([this](const httplib::Request& req, httplib::Response& res) {
      v_.close(session_id(req));
      res.status = 204;
    }));
    http_.Post(R"(/v1/sessions/(\d+)/verify)", guarded([this](const httplib::Request& req, httplib::Response& res) {
      const std::int64_t id = session_id(req);
      const json body = parse(req);
      VerifyRequest vr;
      vr.tokens = detail::token_array(body, "tokens");
      vr.draft = detail::token_array(body, "draft");
      if (const auto q = body.find("q"); q != body.end() && !q->is_null()) {
        if (!q->is_array()) reject(400, "invalid_request_error", "field 'q' must be an array of distributions");
        for (const json& d : *q) {
          if (!d.is_object()) reject(400, "invalid_request_error", "each 'q' entry must be {\"ids\": [...], \"probs\": [...]}");
          DraftDistribution dd;
          dd.ids = detail::token_array(d, "ids");
          dd.probs = detail::field<std::vector<float>>(d, "probs", {});
          vr.q.push_back(std::move(dd));
        }
      }
      const VerifyReply r = v_.verify(id, vr);
      std::vector<std::int32_t> out(vr.draft.begin(), vr.draft.begin() + r.accepted);
      out.push_back(r.next_token);
      send_json(res, {{"accepted", r.accepted},
                      {"next_token", r.next_token},
                      {"tokens", out},
                      {"length", r.length},
                      {"batch_sessions", r.batch_sessions},
                      {"batch_positions", r.batch_positions},
                      {"queue_ms", r.queue_seconds * 1e3},
                      {"compute_ms", r.compute_seconds * 1e3}});
    }));
    http_.Post("/v1/completions", guarded([this](const httplib::Request& req, httplib::Response& res) {
      completions(req, res);
    }));
  }

  void check_ids(const std::vector<std::int32_t>& ids, const char* field) const {
    for (std::size_t i = 0; i < ids.size(); ++i)
      if (ids[i] < 0 || ids[i] >= v_.vocab_size())
        reject(400, "invalid_request_error", "'", field, "'[", i, "] = ", ids[i], " is not a token id (vocabulary of ",
               v_.vocab_size(), ")");
  }

  // "prompt_tokens" (ids), "prompt" (text, or ids as OpenAI allows), or "messages" (chat, the model's template).
  std::vector<std::int32_t> prompt_of(const json& body) const {
    const int given = int(body.contains("prompt_tokens")) + int(body.contains("prompt")) + int(body.contains("messages"));
    if (given != 1) reject(400, "invalid_request_error", "give exactly one of 'prompt_tokens', 'prompt' and 'messages'");
    if (body.contains("prompt_tokens")) return detail::token_array(body, "prompt_tokens");
    if (body.contains("prompt")) {
      const json& p = body.at("prompt");
      if (p.is_array()) return detail::token_array(body, "prompt");
      if (!p.is_string()) reject(400, "invalid_request_error", "field 'prompt' must be a string or an array of token ids");
      return tok_.encode(p.get<std::string>(), /*add_special=*/true, /*parse_special=*/false);
    }
    const json& m = body.at("messages");
    if (!m.is_array() || m.empty()) reject(400, "invalid_request_error", "field 'messages' must be a non-empty array");
    if (!chat_) reject(400, "invalid_request_error", "this server's model has no chat template");
    std::vector<ChatMessage> messages;
    for (const json& x : m) {
      if (!x.is_object() || !x.contains("role") || !x.contains("content") || !x.at("role").is_string() ||
          !x.at("content").is_string())
        reject(400, "invalid_request_error", "each message must be {\"role\": string, \"content\": string}");
      messages.push_back({x.at("role").get<std::string>(), x.at("content").get<std::string>()});
    }
    return tok_.encode(apply_chat_template(*chat_, messages, /*add_assistant=*/true), /*add_special=*/true,
                       /*parse_special=*/true);
  }

  json session_json(std::int64_t id, int prompt_tokens) const {
    const auto seq = v_.sequence(id);
    return {{"session", id},
            {"prompt_tokens", seq},
            {"length", prompt_tokens},
            {"vocab_size", v_.vocab_size()},
            {"ctx", v_.options().ctx},
            {"max_draft", v_.options().max_draft},
            {"eos", tok_.eos()},
            {"eog_ids", tok_.eog_ids()}};
  }

  std::string metrics_text() const {
    const VerifierMetrics m = v_.metrics();
    std::string out;
    auto metric = [&](const char* name, const char* type, const char* help, auto value) {
      out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " ";
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g\n", static_cast<double>(value));
      out += buf;
    };
    metric("edgespec_server_sessions", "gauge", "Open sessions.", m.sessions);
    metric("edgespec_server_queue_depth", "gauge", "Requests waiting for a forward.", m.queue_depth);
    metric("edgespec_server_sessions_opened_total", "counter", "Sessions opened.", m.sessions_opened);
    metric("edgespec_server_sessions_expired_total", "counter", "Sessions closed for idleness.",
           m.sessions_expired);
    metric("edgespec_server_forwards_total", "counter", "Target forward passes.", m.forwards);
    metric("edgespec_server_batched_positions_total", "counter", "Positions run in target forwards (prefill included).",
           m.batched_positions);
    metric("edgespec_server_batched_sequences_total", "counter", "Sessions served by target forwards (sum over forwards).",
           m.batched_sequences);
    metric("edgespec_server_emitted_tokens_total", "counter", "Tokens emitted by verification.",
           m.emitted_tokens);
    metric("edgespec_server_drafted_tokens_total", "counter", "Draft tokens verified.", m.drafted_tokens);
    metric("edgespec_server_accepted_tokens_total", "counter", "Draft tokens accepted.",
           m.accepted_tokens);
    metric("edgespec_server_verify_requests_total", "counter", "Verification requests.",
           m.verify_requests);
    metric("edgespec_server_busy_seconds_total", "counter", "Seconds spent in forwards and verification.", m.busy_seconds);
    metric("edgespec_server_gather_waits_total", "counter", "Batches that waited for returning sessions.",
           m.gather_waits);
    metric("edgespec_server_gather_wait_seconds_total", "counter", "Seconds batches waited for returning sessions.",
           m.gather_wait_seconds);
    return out;
  }

  // /v1/completions: a session of its own, rounds of (n-gram draft, batched verification) until max_tokens, an
  // end-of-generation token or a stop string; the session is closed at the end or when the client goes away.
  void completions(const httplib::Request& req, httplib::Response& res) {
    const json body = parse(req);
    if (detail::field<int>(body, "n", 1) != 1) reject(400, "invalid_request_error", "only n = 1 is supported");
    if (detail::field<bool>(body, "echo", false)) reject(400, "invalid_request_error", "echo is not supported");
    auto job = std::make_shared<Completion>();
    job->prompt = prompt_of(body);
    job->sampling = detail::sampling_from(body, 1.0f);  // OpenAI's default temperature
    job->max_tokens = detail::field<int>(body, "max_tokens", 16);
    if (job->max_tokens < 0 || job->max_tokens > opt_.max_completion_tokens)
      reject(400, "invalid_request_error", "max_tokens ", job->max_tokens, " is out of range [0, ",
             opt_.max_completion_tokens, "]");
    job->ignore_eos = detail::field<bool>(body, "ignore_eos", false);
    job->ngram = detail::field<int>(body, "draft_ngram", 0);
    job->draft_len = detail::field<int>(body, "draft_len", 4);
    if (job->ngram < 0 || job->ngram > 64) reject(400, "invalid_request_error", "draft_ngram ", job->ngram, " is out of range [0, 64]");
    if (job->draft_len < 1 || job->draft_len > v_.options().max_draft)
      reject(400, "invalid_request_error", "draft_len ", job->draft_len, " is out of range [1, ", v_.options().max_draft, "]");
    if (const auto it = body.find("stop"); it != body.end() && !it->is_null()) {
      if (it->is_string()) job->stops.push_back(it->get<std::string>());
      else job->stops = detail::field<std::vector<std::string>>(body, "stop", {});
    }
    const bool stream = detail::field<bool>(body, "stream", false);
    job->id = "cmpl-" + std::to_string(next_completion_.fetch_add(1));
    job->created = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
    job->session = v_.open(job->prompt, job->sampling).id;  // errors (429, 400) answered before any stream

    if (!stream) {
      const CloseOnExit guard{v_, job->session};
      while (step(*job, nullptr)) {
      }
      json choice = {{"text", job->text}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", job->finish}};
      send_json(res, {{"id", job->id},
                      {"object", "text_completion"},
                      {"created", job->created},
                      {"model", opt_.model_name},
                      {"choices", json::array({choice})},
                      {"usage", usage(*job)},
                      {"edgespec", edgespec_stats(*job)}});
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, job](std::size_t, httplib::DataSink& sink) {
          const CloseOnExit guard{v_, job->session};
          auto send = [&](const json& j) {
            const std::string event = "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
            return sink.write(event.data(), event.size());
          };
          try {
            bool more = true;
            while (more) {
              std::string delta;
              more = step(*job, &delta);
              json choice = {{"text", delta}, {"index", 0}, {"logprobs", nullptr},
                             {"finish_reason", more ? json(nullptr) : json(job->finish)}};
              json chunk = {{"id", job->id}, {"object", "text_completion"}, {"created", job->created},
                            {"model", opt_.model_name}, {"choices", json::array({choice})}};
              if (!more) chunk["usage"] = usage(*job);
              if ((more && delta.empty()) ) continue;
              if (!send(chunk)) return false;  // the client went away: the guard closes the session
            }
            const std::string done = "data: [DONE]\n\n";
            sink.write(done.data(), done.size());
          } catch (const std::exception& e) {
            send(detail::error_body(500, "server_error", e.what()));
          }
          sink.done();
          return true;
        });
  }

  struct Completion {
    std::string id;
    std::int64_t created = 0;
    std::int64_t session = 0;
    std::vector<std::int32_t> prompt, out;  // out: generated tokens (no end-of-generation token)
    SamplingParams sampling;
    int max_tokens = 16, ngram = 0, draft_len = 4;
    bool ignore_eos = false;
    std::vector<std::string> stops;
    std::string text;        // decoded `out`, cut at a stop string
    std::size_t sent = 0;    // bytes of `text` already streamed
    std::string finish = "length";
    bool done = false;
    int rounds = 0, drafted = 0, accepted = 0;
  };

  struct CloseOnExit {
    BatchVerifier& v;
    std::int64_t id;
    ~CloseOnExit() {
      try {
        v.close(id);
      } catch (...) {  // already closed (expired)
      }
    }
  };

  json usage(const Completion& c) const {
    return {{"prompt_tokens", c.prompt.size()},
            {"completion_tokens", c.out.size()},
            {"total_tokens", c.prompt.size() + c.out.size()}};
  }
  static json edgespec_stats(const Completion& c) {
    return {{"tokens", c.out}, {"rounds", c.rounds}, {"drafted", c.drafted}, {"accepted", c.accepted}};
  }

  // One round; appends the newly streamable text to *delta. Returns false when the completion is finished.
  bool step(Completion& c, std::string* delta) {
    if (c.done) return false;
    const int ctx = v_.options().ctx;
    const int length = static_cast<int>(c.prompt.size() + c.out.size());
    if (static_cast<int>(c.out.size()) >= c.max_tokens || length >= ctx) {
      c.finish = "length";
      return finish(c, delta);
    }
    VerifyRequest rq;
    if (c.ngram > 0) {
      std::vector<std::int32_t> seq(c.prompt);
      seq.insert(seq.end(), c.out.begin(), c.out.end());
      const int room = std::min({c.draft_len, ctx - length, c.max_tokens - static_cast<int>(c.out.size()) - 1});
      NGramLookup{c.ngram, 1}.draft(seq, room, rq.draft);
    }
    const std::vector<std::int32_t> draft = rq.draft;
    const VerifyReply r = v_.verify(c.session, std::move(rq));
    ++c.rounds;
    c.drafted += static_cast<int>(draft.size());
    c.accepted += r.accepted;
    std::vector<std::int32_t> emitted(draft.begin(), draft.begin() + r.accepted);
    emitted.push_back(r.next_token);
    for (const std::int32_t t : emitted) {
      if (!c.ignore_eos && tok_.is_eog(t)) {
        c.finish = "stop";
        return finish(c, delta);
      }
      c.out.push_back(t);
      c.text = tok_.decode(c.out);
      for (const std::string& s : c.stops)
        if (const auto at = s.empty() ? std::string::npos : c.text.find(s); at != std::string::npos) {
          c.text.resize(at);
          c.finish = "stop";
          return finish(c, delta);
        }
      if (static_cast<int>(c.out.size()) >= c.max_tokens) {
        c.finish = "length";
        return finish(c, delta);
      }
    }
    if (delta != nullptr) {
      // Hold back what a stop string could still claim, and any incomplete UTF-8 character.
      std::size_t hold = 0;
      for (const std::string& s : c.stops) hold = std::max(hold, s.size() > 0 ? s.size() - 1 : 0);
      std::size_t upto = detail::complete_utf8_prefix(c.text);
      upto = upto > hold ? upto - hold : 0;
      if (upto > c.sent) {
        *delta = c.text.substr(c.sent, upto - c.sent);
        c.sent = upto;
      }
    }
    return true;
  }
  static bool finish(Completion& c, std::string* delta) {
    c.done = true;
    if (delta != nullptr && c.text.size() > c.sent) {
      *delta = c.text.substr(c.sent);
      c.sent = c.text.size();
    }
    return false;
  }

  BatchVerifier& v_;
  Tokenizer tok_;
  std::optional<ChatTemplate> chat_;
  HttpOptions opt_;
  httplib::Server http_;
  socket_t listen_socket_ = INVALID_SOCKET;  // the socket bind() bound, set by httplib's socket-options hook
  std::atomic<std::int64_t> next_completion_{1};
};

}  // namespace edgespec::serving
