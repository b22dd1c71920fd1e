// BatchVerifier: one target model verifying the drafts of many sessions, several sessions per forward pass
// (SLED, arXiv 2506.09397: edge devices draft, a shared server verifies). No networking here: the HTTP server
// (serving/http_server.hpp) and tests call it directly.
//
// A session is one sequence with its own KV cache. Invariant (as in Pipeline): the cache holds every token of
// the sequence but the newest, which is fed first by the session's next request.
//
//   open(prompt)       prefill prompt[0 .. n-1) (chunked), pending = prompt[n-1]
//   verify(u, d, q)    ONE forward over [pending, u_1..u_m, d_1..d_g]: the target's distributions p_1..p_{g+1}
//                      at the draft positions decide k accepted tokens and one more (verify.hpp); the sequence
//                      grows by u, d_1..d_k and that token, the cache is rolled back past d_k
//
// Scheduling (continuous batching, as llama.cpp's server and vLLM): requests wait in one FIFO queue; each
// forward takes the oldest waiting requests, up to max_batch sessions and max_batch_positions positions, and
// runs them as one batch (Transformer::forward_batch: one read of every weight matrix for all of them). A
// session has at most one request in flight, so a session is never overtaken by one that asked later: the
// wait is bounded by the requests ahead of it in the queue. Prefill is cut into chunks of prefill_chunk
// tokens that re-enter the queue, so a long prompt does not stall the sessions that verify meanwhile.
//
// Gather window: without one, sessions fall into cohorts (those answered by one forward send their next
// request while the next forward already runs for the others), and each forward serves only a part of the
// sessions. So a batch that is not full waits for the sessions the previous forward answered ("returning"),
// at most min(batch_wait, 2 x think, forward), where think is the running mean of the time clients take from
// an answer to their next request and forward the last forward's duration, and only when think < forward:
// waiting t to add k sessions saves a whole forward for them. Clients slower than a forward cost no wait.
//
// Output of every session is exactly that of its sequence alone: a batch's rows are bit-identical to a forward
// over one sequence (test_batch_forward), greedy verification picks the same tokens, and stochastic
// verification draws from the session's own random stream.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "edgespec/core/error.hpp"
#include "edgespec/model/transformer.hpp"
#include "edgespec/sampling/sampler.hpp"
#include "edgespec/speculative/properties.hpp"
#include "edgespec/speculative/verify.hpp"

namespace edgespec::serving {

// An error caused by a request, with the HTTP status and the OpenAI-style error type it is answered with.
class RequestError : public Error {
 public:
  RequestError(int status, std::string type, const std::string& message)
      : Error(message), status_(status), type_(std::move(type)) {}
  [[nodiscard]] int status() const noexcept { return status_; }
  [[nodiscard]] const std::string& type() const noexcept { return type_; }

 private:
  int status_;
  std::string type_;
};

template <class... Parts>
[[noreturn]] void reject(int status, const char* type, Parts&&... parts) {
  throw RequestError(status, type, detail::concat(std::forward<Parts>(parts)...));
}

struct VerifierOptions {
  int max_sessions = 16;          // open sessions at most; more are refused (429)
  int max_batch = 8;              // sessions per forward (1: one session per forward, no batching)
  int max_batch_positions = 512;  // positions per forward (a single request may exceed it: it then runs alone)
  int ctx = 2048;                 // KV-cache length of each session
  int max_draft = kMaxDraftLen;   // draft tokens per request at most
  int prefill_chunk = 256;        // prompt tokens per forward for one session
  double idle_timeout = 300.0;    // seconds; a session with no request for this long is closed
  // Gather window (seconds, 0: off): a batch that is not full waits up to this long for the sessions the last
  // forward answered, when their clients have been answering faster than a forward takes (see below).
  double batch_wait = 0.004;
  // Session ids are id_start, id_start + id_step, ...: servers behind one proxy get disjoint ids (docs/server.md).
  std::int64_t id_start = 1, id_step = 1;

  void validate() const {
    ES_CHECK(max_sessions >= 1 && max_sessions <= 4096, "max_sessions ", max_sessions, " is out of range [1, 4096]");
    ES_CHECK(max_batch >= 1 && max_batch <= 1024, "max_batch ", max_batch, " is out of range [1, 1024]");
    ES_CHECK(max_batch_positions >= 1, "max_batch_positions ", max_batch_positions, " must be >= 1");
    ES_CHECK(ctx >= 2 && ctx <= (1 << 24), "ctx ", ctx, " is out of range [2, 16777216]");
    ES_CHECK(max_draft >= 0 && max_draft <= 64, "max_draft ", max_draft, " is out of range [0, 64]");
    ES_CHECK(prefill_chunk >= 1, "prefill_chunk ", prefill_chunk, " must be >= 1");
    ES_CHECK(idle_timeout > 0.0, "idle_timeout ", idle_timeout, " must be > 0 seconds");
    ES_CHECK(batch_wait >= 0.0 && batch_wait <= 10.0, "batch_wait ", batch_wait, " is out of range [0, 10] seconds");
    ES_CHECK(id_start >= 0 && id_step >= 1, "session ids: start ", id_start, " must be >= 0 and step ", id_step,
             " >= 1");
  }
};

// A draft distribution q_i as sent by a device: sparse (ids, probs) over the tokens it could have drawn (top-k /
// top-p), or dense (probs over the whole vocabulary, ids empty).
struct DraftDistribution {
  std::vector<std::int32_t> ids;
  std::vector<float> probs;
};

struct VerifyRequest {
  std::vector<std::int32_t> tokens;  // appended before the draft (e.g. the next user turn); usually empty
  std::vector<std::int32_t> draft;   // d_1 .. d_g (g may be 0: one ordinary decode step)
  // Stochastic sessions: q_i for each draft token; empty: each d_i is a point mass (n-gram drafting).
  std::vector<DraftDistribution> q;
};

struct VerifyReply {
  int accepted = 0;              // k
  std::int32_t next_token = 0;   // correction (k < g) or bonus (k == g)
  int length = 0;                // sequence length after this round
  int batch_sessions = 0;        // sessions in the forward that served this request
  int batch_positions = 0;       // positions in that forward
  double queue_seconds = 0.0;    // waiting for a forward
  double compute_seconds = 0.0;  // the forward and the verification
};

struct SessionInfo {
  std::int64_t id = 0;
  int prompt_tokens = 0;
  int length = 0;
};

struct VerifierMetrics {
  int sessions = 0;
  std::int64_t sessions_opened = 0, sessions_expired = 0;
  std::int64_t forwards = 0;            // target forward passes
  std::int64_t batched_positions = 0;   // positions run in them (prefill included)
  std::int64_t batched_sequences = 0;   // sessions served by them (sum over forwards)
  std::int64_t emitted_tokens = 0;      // tokens verify() produced (accepted drafts + one per request)
  std::int64_t drafted_tokens = 0, accepted_tokens = 0;
  std::int64_t verify_requests = 0;
  std::int64_t queue_depth = 0;
  std::int64_t gather_waits = 0;       // batches that waited for returning sessions
  double gather_wait_seconds = 0.0;
  double busy_seconds = 0.0;            // time spent in forwards and verification
};

class BatchVerifier {
  using clock = std::chrono::steady_clock;

 public:
  BatchVerifier(std::shared_ptr<const LlamaWeights> weights, ThreadPool& pool, VerifierOptions opt = {})
      : opt_((opt.validate(), opt)), model_(std::move(weights), pool, /*max_seq=*/1), next_id_(opt_.id_start) {
    worker_ = std::thread([this] { work(); });
  }
  BatchVerifier(const BatchVerifier&) = delete;
  BatchVerifier& operator=(const BatchVerifier&) = delete;
  ~BatchVerifier() { stop(); }

  [[nodiscard]] const VerifierOptions& options() const noexcept { return opt_; }
  [[nodiscard]] const ModelConfig& config() const noexcept { return model_.config(); }
  [[nodiscard]] int vocab_size() const noexcept { return model_.vocab_size(); }

  // Opens a session and prefills its prompt; blocks until done. Throws RequestError: 429 when max_sessions are
  // open, 400 for an empty or too long prompt, token ids out of range or bad sampling parameters.
  SessionInfo open(std::vector<std::int32_t> prompt, SamplingParams sampling) {
    if (prompt.empty()) reject(400, "invalid_request_error", "the prompt has no tokens");
    check_ids(prompt, "prompt");
    if (static_cast<int>(prompt.size()) >= opt_.ctx)
      reject(400, "invalid_request_error", "the prompt (", prompt.size(), " tokens) does not fit the context of ",
             opt_.ctx, " tokens");
    try {
      sampling.validate();
    } catch (const Error& e) {
      reject(400, "invalid_request_error", e.what());
    }
    auto s = std::make_shared<Session>();
    s->sampling = sampling;
    s->rng = Rng(sampling.seed);
    s->prompt_tokens = static_cast<int>(prompt.size());
    s->seq = std::move(prompt);
    auto job = std::make_shared<Job>();
    {
      std::lock_guard lock(mu_);
      if (stopping_) reject(503, "server_error", "the server is stopping");
      if (static_cast<int>(sessions_.size()) >= opt_.max_sessions)
        reject(429, "rate_limit_error", "too many sessions: ", sessions_.size(), " of --max-sessions ",
               opt_.max_sessions, " are open; close one or retry later");
      try {
        s->cache = model_.make_cache(opt_.ctx);
      } catch (const Error& e) {
        reject(503, "server_error", e.what());
      }
      s->id = next_id_;
      next_id_ += opt_.id_step;
      s->busy = true;
      s->last_used = clock::now();
      sessions_[s->id] = s;
      ++metrics_.sessions_opened;
      job->session = s;
      job->prefill = true;
      job->feed.assign(s->seq.begin(), s->seq.end() - 1);
      if (job->feed.empty()) {  // a one-token prompt: nothing to prefill
        s->busy = false;
        return {s->id, s->prompt_tokens, static_cast<int>(s->seq.size())};
      }
      enqueue(job);
    }
    wait(*job);
    return {s->id, s->prompt_tokens, static_cast<int>(s->seq.size())};
  }

  // One verification round for session `id`; blocks until its forward has run. Throws RequestError: 404 unknown
  // session, 409 a request of this session is in flight, 400 bad tokens / draft / distributions or a full context.
  VerifyReply verify(std::int64_t id, VerifyRequest req) {
    const int g = static_cast<int>(req.draft.size());
    if (g > opt_.max_draft)
      reject(400, "invalid_request_error", "the draft has ", g, " tokens; at most ", opt_.max_draft, " per round");
    check_ids(req.tokens, "tokens");
    check_ids(req.draft, "draft");
    auto job = std::make_shared<Job>();
    {
      std::lock_guard lock(mu_);
      if (stopping_) reject(503, "server_error", "the server is stopping");
      const auto it = sessions_.find(id);
      if (it == sessions_.end()) reject(404, "not_found_error", "no session ", id, " (closed, expired or never opened)");
      Session& s = *it->second;
      if (s.busy) reject(409, "conflict_error", "session ", id, " already has a request in flight");
      const int need = s.cache.position() + 1 + static_cast<int>(req.tokens.size()) + g;
      if (need > opt_.ctx)
        reject(400, "context_length_exceeded", "session ", id, ": ", s.seq.size(), " tokens + ", req.tokens.size(),
               " new + ", g, " drafted exceed the context of ", opt_.ctx, " tokens");
      if (!s.sampling.greedy()) check_distributions(req, g);
      else if (!req.q.empty())
        reject(400, "invalid_request_error", "session ", id, " verifies greedily (temperature 0): send no 'q'");
      const auto now = clock::now();
      if (s.returning) {  // its client's think time: from our answer to this request
        const double think = std::chrono::duration<double>(now - s.last_used).count();
        think_ = think_ < 0.0 ? think : 0.8 * think_ + 0.2 * think;
        s.returning = false;
        --returning_;
      }
      s.busy = true;
      s.last_used = now;
      job->session = it->second;
      job->feed.assign(1, s.seq.back());
      job->feed.insert(job->feed.end(), req.tokens.begin(), req.tokens.end());
      job->feed.insert(job->feed.end(), req.draft.begin(), req.draft.end());
      job->request = std::move(req);
      ++metrics_.verify_requests;
      enqueue(job);
    }
    wait(*job);
    return job->reply;
  }

  // Closes a session (a request in flight still gets its answer). Throws RequestError 404 when unknown.
  void close(std::int64_t id) {
    std::lock_guard lock(mu_);
    const auto it = sessions_.find(id);
    if (it == sessions_.end()) reject(404, "not_found_error", "no session ", id, " (closed, expired or never opened)");
    forget(*it->second);
    sessions_.erase(it);
  }

  // The session's sequence: prompt, appended tokens and every emitted token.
  [[nodiscard]] std::vector<std::int32_t> sequence(std::int64_t id) const {
    std::lock_guard lock(mu_);
    const auto it = sessions_.find(id);
    if (it == sessions_.end()) reject(404, "not_found_error", "no session ", id, " (closed, expired or never opened)");
    if (it->second->busy) reject(409, "conflict_error", "session ", id, " has a request in flight");
    return it->second->seq;
  }

  [[nodiscard]] VerifierMetrics metrics() const {
    std::lock_guard lock(mu_);
    VerifierMetrics m = metrics_;
    m.sessions = static_cast<int>(sessions_.size());
    m.queue_depth = static_cast<std::int64_t>(queue_.size());
    return m;
  }

  // Stops the worker; waiting and later requests fail with 503.
  void stop() {
    {
      std::lock_guard lock(mu_);
      if (stopping_ && !worker_.joinable()) return;
      stopping_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

 private:
  struct Session {
    std::int64_t id = 0;
    KvCache cache;
    std::vector<std::int32_t> seq;  // every token; the cache holds all but the last
    SamplingParams sampling;
    Rng rng;
    int prompt_tokens = 0;
    bool busy = false;       // a request is queued or running
    bool returning = false;  // answered by the last forward, next request not yet here
    clock::time_point last_used;
  };

  struct Job {
    std::shared_ptr<Session> session;
    bool prefill = false;
    std::size_t prefill_done = 0;    // prefill: tokens of `feed` already run
    std::vector<std::int32_t> feed;  // prefill: prompt[0..n-1); verify: [pending, tokens, draft]
    VerifyRequest request;
    VerifyReply reply;
    clock::time_point queued = clock::now();
    double queue_seconds = 0.0;
    // completion
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::exception_ptr error;
  };

  void check_ids(const std::vector<std::int32_t>& ids, const char* field) const {
    for (std::size_t i = 0; i < ids.size(); ++i)
      if (ids[i] < 0 || ids[i] >= model_.vocab_size())
        reject(400, "invalid_request_error", "'", field, "'[", i, "] = ", ids[i], " is not a token id (vocabulary of ",
               model_.vocab_size(), ")");
  }

  // q: none (point masses) or one per draft token, each a distribution that gives its drafted token mass > 0.
  void check_distributions(const VerifyRequest& req, int g) const {
    if (req.q.empty()) return;
    if (static_cast<int>(req.q.size()) != g)
      reject(400, "invalid_request_error", "'q' has ", req.q.size(), " distributions for ", g, " draft tokens");
    const int vocab = model_.vocab_size();
    for (int i = 0; i < g; ++i) {
      const DraftDistribution& q = req.q[static_cast<std::size_t>(i)];
      const bool dense = q.ids.empty();
      if (dense ? static_cast<int>(q.probs.size()) != vocab : q.ids.size() != q.probs.size())
        reject(400, "invalid_request_error", "'q'[", i, "]: ",
               dense ? "a dense distribution needs one probability per token of the vocabulary ("
                     : "ids and probs differ in length (", dense ? vocab : static_cast<int>(q.ids.size()), ")");
      if (!dense) check_ids(q.ids, "q.ids");
      double sum = 0.0, at_draft = 0.0;
      for (std::size_t j = 0; j < q.probs.size(); ++j) {
        const float p = q.probs[j];
        if (!std::isfinite(p) || p < 0.0f) reject(400, "invalid_request_error", "'q'[", i, "]: probability ", p);
        sum += p;
        const std::int32_t tok = dense ? static_cast<std::int32_t>(j) : q.ids[j];
        if (tok == req.draft[static_cast<std::size_t>(i)]) at_draft += p;
      }
      if (std::fabs(sum - 1.0) > 1e-3)
        reject(400, "invalid_request_error", "'q'[", i, "] sums to ", sum, ", not 1");
      if (at_draft <= 0.0)
        reject(400, "invalid_request_error", "'q'[", i, "] gives the drafted token ", req.draft[static_cast<std::size_t>(i)],
               " no probability: it cannot have been drawn from it");
    }
  }

  // Caller holds mu_.
  void enqueue(const std::shared_ptr<Job>& job) {
    job->queued = clock::now();
    queue_.push_back(job);
    cv_.notify_all();
  }

  static void wait(Job& job) {
    std::unique_lock lock(job.mu);
    job.cv.wait(lock, [&] { return job.done; });
    if (job.error) std::rethrow_exception(job.error);
  }

  static void finish(Job& job, std::exception_ptr error = nullptr) {
    {
      std::lock_guard lock(job.mu);
      job.error = std::move(error);
      job.done = true;
    }
    job.cv.notify_all();
  }

  void work() {
    std::vector<std::shared_ptr<Job>> batch;
    for (;;) {
      batch.clear();
      {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, std::chrono::milliseconds(250), [&] { return stopping_ || !queue_.empty(); });
        expire_idle();
        if (stopping_) break;
        gather(lock);
        // The oldest requests, up to max_batch sessions and max_batch_positions positions (at least one).
        int positions = 0;
        while (!queue_.empty() && static_cast<int>(batch.size()) < opt_.max_batch) {
          const int n = positions_of(*queue_.front());
          if (!batch.empty() && positions + n > opt_.max_batch_positions) break;
          positions += n;
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      if (!batch.empty()) run(batch);
    }
    std::lock_guard lock(mu_);
    for (auto& job : queue_)
      finish(*job, std::make_exception_ptr(RequestError(503, "server_error", "the server is stopping")));
    queue_.clear();
  }

  // Caller holds mu_ (through lock): the gather window described at the top of the file.
  void gather(std::unique_lock<std::mutex>& lock) {
    if (opt_.batch_wait <= 0.0 || queue_.empty() || returning_ == 0 || think_ < 0.0 || think_ >= last_forward_) return;
    const std::size_t want = std::min<std::size_t>(static_cast<std::size_t>(opt_.max_batch),
                                                   queue_.size() + static_cast<std::size_t>(returning_));
    if (queue_.size() >= want) return;
    const double window = std::min({opt_.batch_wait, 2.0 * think_, last_forward_});
    const auto t0 = clock::now();
    cv_.wait_until(lock, t0 + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(window)),
                   [&] { return stopping_ || queue_.size() >= want || returning_ == 0; });
    ++metrics_.gather_waits;
    metrics_.gather_wait_seconds += std::chrono::duration<double>(clock::now() - t0).count();
  }

  // Caller holds mu_: a session that leaves is no longer awaited.
  void forget(Session& s) {
    if (s.returning) {
      s.returning = false;
      --returning_;
    }
  }

  [[nodiscard]] int positions_of(const Job& job) const {
    if (job.prefill)
      return static_cast<int>(std::min<std::size_t>(job.feed.size() - job.prefill_done,
                                                     static_cast<std::size_t>(opt_.prefill_chunk)));
    return static_cast<int>(job.feed.size());
  }

  // Caller holds mu_: closes sessions idle for longer than idle_timeout (none with a request in flight).
  void expire_idle() {
    const auto now = clock::now();
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      const Session& s = *it->second;
      if (!s.busy && std::chrono::duration<double>(now - s.last_used).count() > opt_.idle_timeout) {
        forget(*it->second);
        it = sessions_.erase(it);
        ++metrics_.sessions_expired;
      } else {
        ++it;
      }
    }
  }

  void run(std::vector<std::shared_ptr<Job>>& batch) {
    const auto t0 = clock::now();
    std::vector<SequenceInput> in;
    in.reserve(batch.size());
    int positions = 0;
    for (auto& job : batch) {
      job->queue_seconds += std::chrono::duration<double>(t0 - job->queued).count();
      const int n = positions_of(*job);
      positions += n;
      if (job->prefill) {
        in.push_back({&job->session->cache,
                      std::span<const std::int32_t>(job->feed).subspan(job->prefill_done, static_cast<std::size_t>(n)),
                      0});
      } else {
        in.push_back({&job->session->cache, job->feed, static_cast<int>(job->request.draft.size()) + 1});
      }
    }
    std::vector<std::shared_ptr<Job>> requeue;
    std::int64_t emitted = 0, drafted = 0, accepted = 0;
    try {
      std::span<const float> logits;
      if (positions > 0) logits = model_.forward_batch(in);
      const auto vocab = static_cast<std::size_t>(model_.vocab_size());
      std::size_t row = 0;
      for (std::size_t b = 0; b < batch.size(); ++b) {
        Job& job = *batch[b];
        Session& s = *job.session;
        if (job.prefill) {
          job.prefill_done += in[b].tokens.size();
          if (job.prefill_done < job.feed.size()) requeue.push_back(batch[b]);
          continue;
        }
        const auto rows = static_cast<std::size_t>(in[b].logit_rows);
        const VerifyResult vr = verify_one(job, logits.subspan(row * vocab, rows * vocab), vocab);
        row += rows;
        // Sequence: + appended tokens, d_1..d_k, next. Cache: everything but `next`.
        const VerifyRequest& rq = job.request;
        s.seq.insert(s.seq.end(), rq.tokens.begin(), rq.tokens.end());
        s.seq.insert(s.seq.end(), rq.draft.begin(), rq.draft.begin() + vr.accepted);
        s.seq.push_back(vr.next_token);
        s.cache.truncate(static_cast<int>(s.seq.size()) - 1);
        job.reply.accepted = vr.accepted;
        job.reply.next_token = vr.next_token;
        job.reply.length = static_cast<int>(s.seq.size());
        emitted += vr.accepted + 1;
        drafted += static_cast<std::int64_t>(rq.draft.size());
        accepted += vr.accepted;
      }
    } catch (...) {
      // A failure of the forward itself (out of memory): every request of the batch fails, its session is closed
      // (its cache may hold a partial round).
      const auto error = std::make_exception_ptr(
          RequestError(500, "server_error", std::string("the batch failed: ") + what(std::current_exception())));
      std::lock_guard lock(mu_);
      for (auto& job : batch) {
        sessions_.erase(job->session->id);
        job->session->busy = false;
        finish(*job, error);
      }
      return;
    }
    const auto t1 = clock::now();
    const double seconds = std::chrono::duration<double>(t1 - t0).count();
    std::lock_guard lock(mu_);
    last_forward_ = seconds;
    // Only the sessions this forward answers are awaited by the next gather: one that did not come back
    // during a whole forward is slower than waiting is worth.
    for (auto& w : awaited_) forget(*w);
    awaited_.clear();
    ++metrics_.forwards;
    metrics_.batched_positions += positions;
    metrics_.batched_sequences += static_cast<std::int64_t>(batch.size());
    metrics_.emitted_tokens += emitted;
    metrics_.drafted_tokens += drafted;
    metrics_.accepted_tokens += accepted;
    metrics_.busy_seconds += seconds;
    for (auto& job : batch) {
      if (std::find(requeue.begin(), requeue.end(), job) != requeue.end()) {
        enqueue(job);  // the rest of a long prompt: back of the queue
        continue;
      }
      job->reply.batch_sessions = static_cast<int>(batch.size());
      job->reply.batch_positions = positions;
      job->reply.queue_seconds = job->queue_seconds;
      job->reply.compute_seconds = seconds;
      job->session->busy = false;
      job->session->last_used = t1;
      if (!job->prefill && sessions_.count(job->session->id) != 0) {
        job->session->returning = true;
        ++returning_;
        awaited_.push_back(job->session);
      }
      finish(*job);
    }
  }

  // Greedy, or stochastic with the request's q (point masses when none were sent), from rows (g + 1, vocab).
  VerifyResult verify_one(Job& job, std::span<const float> logits, std::size_t vocab) {
    Session& s = *job.session;
    const VerifyRequest& rq = job.request;
    if (s.sampling.greedy()) return verify_greedy(rq.draft, logits, vocab);
    const std::size_t g = rq.draft.size();
    p_.resize((g + 1) * vocab);
    for (std::size_t i = 0; i <= g; ++i)
      distribution(logits.subspan(i * vocab, vocab), s.sampling, std::span<float>(p_).subspan(i * vocab, vocab), ids_);
    // A deterministic drafter (no q sent): each q_i is a point mass on d_i.
    if (rq.q.empty()) return verify_stochastic_point(rq.draft, p_, vocab, s.rng, residual_);
    q_.assign(g * vocab, 0.0f);
    for (std::size_t i = 0; i < g; ++i) {
      float* qi = q_.data() + i * vocab;
      const DraftDistribution& d = rq.q[i];
      if (d.ids.empty()) std::copy(d.probs.begin(), d.probs.end(), qi);
      else
        for (std::size_t j = 0; j < d.ids.size(); ++j) qi[static_cast<std::size_t>(d.ids[j])] += d.probs[j];
    }
    return verify_stochastic(rq.draft, p_, q_, vocab, s.rng, residual_);
  }

  static std::string what(const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      return x.what();
    } catch (...) {
      return "unknown error";
    }
  }

  VerifierOptions opt_;
  Transformer<> model_;  // its own cache (1 position) is unused: every session has one of opt_.ctx
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::map<std::int64_t, std::shared_ptr<Session>> sessions_;
  std::int64_t next_id_;
  int returning_ = 0;          // sessions answered by the last forward whose next request has not come yet
  std::vector<std::shared_ptr<Session>> awaited_;  // the sessions the last forward answered
  double think_ = -1.0;        // running mean of the clients' think time (s); < 0: none measured yet
  double last_forward_ = 0.0;  // duration of the last forward (s)
  bool stopping_ = false;
  VerifierMetrics metrics_;
  std::vector<float> p_, q_, residual_;  // worker only
  std::vector<std::int32_t> ids_;
  std::thread worker_;  // last: started after everything above exists
};

}  // namespace edgespec::serving
