#!/usr/bin/env python3
"""End-to-end checks of edgespec-server and edgespec-generate --server, as separate processes over real HTTP.

    server_e2e.py golden    concurrent clients (every drafter kind) against stories260K: the golden tokens
    server_e2e.py smollm2   8 concurrent clients against SmolLM2, batched and --max-batch 1: the local output
    server_e2e.py faults    bad input (4xx, JSON errors), 50 concurrent connections, a client killed
                            mid-generation, a stream closed early, SIGTERM while clients run, a restart
    server_e2e.py nginx     two servers behind nginx routing by session id: outputs still exact

Environment: EDGESPEC_BIN_DIR (the tools), EDGESPEC_MODEL_DIR, EDGESPEC_GOLDEN_DIR; EDGESPEC_TEST_QUICK=1 (the
sanitizer pass) shortens the generations. Exit code 77 means skipped (ctest SKIP_RETURN_CODE).
"""
import concurrent.futures as futures
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

BIN = os.environ.get("EDGESPEC_BIN_DIR", "build/bin")
MODELS = os.environ.get("EDGESPEC_MODEL_DIR", "../shared/models")
GOLDEN = os.environ.get("EDGESPEC_GOLDEN_DIR", os.path.join(MODELS, "..", "golden"))
QUICK = bool(os.environ.get("EDGESPEC_TEST_QUICK"))
STORIES = os.path.join(MODELS, "llama2c", "stories260K.bin")
LLAMA2XS = os.path.join(MODELS, "llama2c", "llama2xs.bin")
TOK512 = os.path.join(MODELS, "llama2c", "tok512.bin")
SMOLLM2 = os.path.join(MODELS, "gguf", "smollm2-135m-instruct-q4_1.gguf")

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def golden(name):
    with open(os.path.join(GOLDEN, name)) as f:
        return [json.loads(line) for line in f if "{" in line]


class Server:
    """An edgespec-server process on a free port; stop() sends SIGTERM and returns the exit code."""

    def __init__(self, *args, port=0):
        self.args = [os.path.join(BIN, "edgespec-server"), "--port", str(port), "--threads", "1", *args]
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (http://[^ ]+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError("edgespec-server did not start: " + line + self.proc.stderr.read())
        self.url = m.group(1)
        self.port = int(self.url.rsplit(":", 1)[1])
        self.output = ""

    def stop(self, sig=signal.SIGTERM, timeout=30):
        self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            return None
        self.output = out + err
        return self.proc.returncode


def http(url, method="GET", body=None, raw=None, timeout=60):
    """(status, parsed JSON or text) of one request; raw: bytes sent as they are."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text) if text else None
    except json.JSONDecodeError:
        return status, text


def metric(url, name):
    _, text = http(url + "/metrics")
    m = re.search(r"^" + name + r" ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else None


def generate(*args, timeout=600):
    """edgespec-generate ... --json: (returncode, parsed JSON or None, stderr)."""
    p = subprocess.run([os.path.join(BIN, "edgespec-generate"), *args, "--json"], capture_output=True, text=True,
                       timeout=timeout)
    out = None
    if p.returncode == 0:
        out = json.loads(p.stdout)
    return p.returncode, out, p.stderr


def run_all(jobs, workers):
    with futures.ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(lambda job: job(), jobs))


# ---- golden: stories260K, every drafter kind, concurrent ----

def stories_clients(url, cases, n):
    drafters = [["--draft", LLAMA2XS, "--draft-len", "2"], ["--draft", LLAMA2XS, "--draft-len", "4"],
                ["--draft", LLAMA2XS, "--draft-len", "6"], ["--draft-ngram", "2", "--draft-len", "3"],
                ["--draft-ngram", "3", "--draft-len", "5"], [],
                ["--model", STORIES, "--draft-quant", "f16", "--draft-len", "3"],
                ["--draft", os.path.join(MODELS, "gguf", "llama2xs-q8_0.gguf"), "--draft-len", "4"],
                ["--draft-ngram", "1", "--draft-len", "8"], ["--draft", LLAMA2XS, "--draft-len", "1"]]
    jobs = []
    for i, d in enumerate(drafters):
        case = cases[i % len(cases)]
        args = ["--server", url, "--tokenizer", TOK512, "--prompt", case["prompt"], "-n", str(n), *d]
        jobs.append((case, d, lambda args=args: generate(*args)))
    return jobs


def test_golden():
    cases = golden("stories260K-greedy.jsonl")
    n = 24 if QUICK else 64
    server = Server("--model", STORIES, "--tokenizer", TOK512, "--max-batch", "8", "--ctx", "256")
    jobs = stories_clients(server.url, cases, n)
    results = run_all([j[2] for j in jobs], workers=len(jobs))
    for (case, d, _), (rc, out, err) in zip(jobs, results):
        what = "golden %r with drafter %s" % (case["prompt"][:24], " ".join(d) or "none")
        check(rc == 0 and out["tokens"] == case["greedy_tokens"][:n] and
              out["prompt_tokens"] == case["prompt_tokens"], what + ("" if rc == 0 else ": " + err.strip()))
    forwards = metric(server.url, "edgespec_server_forwards_total")
    sequences = metric(server.url, "edgespec_server_batched_sequences_total")
    print("forwards %d served %d session-rounds" % (forwards, sequences))
    check(sequences > forwards, "some forwards verified several sessions at once")
    check(metric(server.url, "edgespec_server_sessions") == 0, "every client closed its session")
    check(server.stop() == 0, "SIGTERM: the server stops cleanly (exit 0)")


# ---- smollm2: a real model, batched and unbatched, against local target-only decoding ----

def test_smollm2():
    cases = golden("smollm2-q4_1-greedy.jsonl")
    n = 12 if QUICK else 32
    chosen = cases[:8] if not QUICK else cases[:2] + [c for c in cases if c.get("chat")][:2]
    drafters = [["--draft-ngram", "3"], ["--model", SMOLLM2, "--draft-quant", "q8_0", "--draft-len", "3"], [],
                ["--draft-ngram", "2", "--draft-len", "6"]]

    def flags(case):
        return (["--chat"] if case.get("chat") else []) + ["--prompt", case["prompt"], "-n", str(n), "--ignore-eos"]

    local = run_all([lambda c=c: generate("--model", SMOLLM2, "--threads", "1", *flags(c)) for c in chosen], 2)
    for c, (rc, out, err) in zip(chosen, local):
        check(rc == 0, "local target-only reference for %r %s" % (c["prompt"][:24], err.strip()))
    walls = {}
    for batch in ["8", "1"]:
        server = Server("--model", SMOLLM2, "--max-batch", batch, "--ctx", "512", "--threads", "2")
        jobs = []
        for i, c in enumerate(chosen):
            d = drafters[i % len(drafters)]
            jobs.append(lambda c=c, d=d: generate("--server", server.url, *flags(c), *d))
        t0 = time.time()
        results = run_all(jobs, workers=len(jobs))
        walls[batch] = time.time() - t0
        for i, (c, (rc, out, err)) in enumerate(zip(chosen, results)):
            d = drafters[i % len(drafters)]
            ok = rc == 0 and local[i][1] is not None and out["tokens"] == local[i][1]["tokens"] and \
                out["prompt_tokens"] == local[i][1]["prompt_tokens"]
            check(ok, "max-batch %s: %r (%s) equals target-only decoding" % (batch, c["prompt"][:24],
                                                                             " ".join(d) or "no drafter") +
                  ("" if rc == 0 else ": " + err.strip()))
        check(server.stop() == 0, "max-batch %s: SIGTERM stops the server cleanly" % batch)
    print("wall time of %d concurrent clients: max-batch 8 %.2f s, max-batch 1 %.2f s (not a timing assertion; "
          "bench/server-batching measures it)" % (len(chosen), walls["8"], walls["1"]))


# ---- faults ----

def test_faults():
    server = Server("--model", STORIES, "--tokenizer", TOK512, "--max-sessions", "4", "--ctx", "64",
                    "--max-body", "4096", "--max-draft", "8", "--idle-timeout", "1")
    u = server.url

    def error(status_body, status, what):
        st, body = status_body
        ok = st == status and isinstance(body, dict) and isinstance(body.get("error"), dict) and \
            body["error"].get("message") and body["error"].get("type")
        check(ok, "%s -> %d with a JSON error (got %s %s)" % (what, status, st, str(body)[:120]))

    # The accept queue: 1024 (capped by the kernel's somaxconn), not the 5 Debian's cpp-httplib listens with, which
    # a burst of clients overflows (the kernel then resets connections). ss shows a listener's queue as Send-Q.
    if shutil.which("ss"):
        out = subprocess.run(["ss", "-Hltn", "sport = :%d" % server.port], capture_output=True, text=True).stdout
        with open("/proc/sys/net/core/somaxconn") as f:
            want = min(1024, int(f.read()))
        queues = [int(line.split()[2]) for line in out.splitlines() if line.strip()]
        check(queues and all(q == want for q in queues), "the accept queue holds %d connections (ss: %s)" % (
            want, out.strip()))
    else:
        print("skip the accept queue's length (no ss)")

    error(http(u + "/v1/sessions", "POST", raw=b"{not json"), 400, "malformed JSON")
    error(http(u + "/v1/sessions", "POST", raw=b"[1, 2]"), 400, "a body that is not an object")
    error(http(u + "/v1/sessions", "POST", {"prompt_tokens": "abc"}), 400, "prompt_tokens of the wrong type")
    error(http(u + "/v1/sessions", "POST", {"prompt_tokens": [1, 9999]}), 400, "a prompt token out of range")
    error(http(u + "/v1/sessions", "POST", {"prompt_tokens": []}), 400, "an empty prompt")
    error(http(u + "/v1/sessions", "POST", {"prompt_tokens": [1] * 64}), 400, "a prompt longer than the context")
    error(http(u + "/v1/sessions", "POST", {"prompt_tokens": [1], "temperature": -1}), 400, "a negative temperature")
    error(http(u + "/v1/sessions/12345/verify", "POST", {"draft": []}), 404, "an unknown session")
    error(http(u + "/v1/sessions/abc/verify", "POST", {"draft": []}), 404, "a session id that is not a number")
    error(http(u + "/v1/sessions/99999999999999999999999", "DELETE"), 404, "a session id out of range")
    error(http(u + "/v1/nothing"), 404, "an unknown path")
    error(http(u + "/v1/sessions", "POST", raw=b'{"prompt_tokens": [' + b"1, " * 3000 + b"1]}"), 413,
          "a body over --max-body")
    st, s = http(u + "/v1/sessions", "POST", {"prompt_tokens": [1, 403, 407]})
    check(st == 201 and "session" in s, "open a session")
    sid = s["session"]
    v = "%s/v1/sessions/%d/verify" % (u, sid)
    error(http(v, "POST", {"draft": list(range(9))}), 400, "a draft over --max-draft")
    error(http(v, "POST", {"draft": [512]}), 400, "a draft token out of range")
    error(http(v, "POST", {"draft": [5], "q": [{"ids": [5], "probs": [1.0]}]}), 400, "q for a greedy session")
    error(http(v, "POST", {"draft": [5], "q": "x"}), 400, "q of the wrong type")
    # 3 tokens in a context of 64: the cache holds 2, the round feeds 1 + 61 + 1 = 63 more, one too many.
    error(http(v, "POST", {"tokens": [7] * 61, "draft": [5]}), 400, "a round past the context")
    error(http(u + "/v1/completions", "POST", {"prompt": "Once", "max_tokens": -3}), 400, "max_tokens < 0")
    error(http(u + "/v1/completions", "POST", {"prompt": "Once", "n": 2}), 400, "n = 2")
    st, r = http(v, "POST", {"draft": [432, 383]})
    check(st == 200 and r["tokens"][:r["accepted"]] == [432, 383][:r["accepted"]], "the session still verifies")
    st, r = http(u + "/v1/sessions/%d" % sid)
    check(st == 200 and r["tokens"][:3] == [1, 403, 407], "GET the session's tokens")
    more = [http(u + "/v1/sessions", "POST", {"prompt_tokens": [1]}) for _ in range(3)]
    check(all(st == 201 for st, _ in more), "open sessions up to --max-sessions")
    error(http(u + "/v1/sessions", "POST", {"prompt_tokens": [1]}), 429, "one session over --max-sessions")
    for st, b in more:
        http("%s/v1/sessions/%d" % (u, b["session"]), "DELETE")
    check(http("%s/v1/sessions/%d" % (u, sid), "DELETE")[0] == 204, "DELETE -> 204")
    error(http("%s/v1/sessions/%d" % (u, sid), "DELETE"), 404, "DELETE twice")
    check(http(u + "/health") == (200, {"status": "ok"}), "healthy after all the bad input")

    # A client killed mid-generation: its session expires (--idle-timeout 1).
    p = subprocess.Popen([os.path.join(BIN, "edgespec-generate"), "--server", u, "--tokenizer", TOK512, "--prompt",
                          "Once upon a time", "-n", "60", "--draft-ngram", "2"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(0.05)
    p.kill()
    p.wait()
    deadline = time.time() + 10
    while time.time() < deadline and metric(u, "edgespec_server_sessions") != 0:
        time.sleep(0.2)
    check(metric(u, "edgespec_server_sessions") == 0, "a killed client's session is freed (idle timeout)")

    # A stream closed after its first event: the write fails and the session is closed at once.
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        body = json.dumps({"prompt": "Once upon a time", "max_tokens": 50, "temperature": 0, "stream": True})
        sock.sendall(("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\n\r\n%s" % (len(body), body)).encode())
        first = sock.recv(4096).decode(errors="replace")
        check("200" in first.split("\r\n")[0] and "text/event-stream" in first, "a streamed completion starts")
    deadline = time.time() + 10
    while time.time() < deadline and metric(u, "edgespec_server_sessions") != 0:
        time.sleep(0.1)
    check(metric(u, "edgespec_server_sessions") == 0, "a stream closed early frees its session")
    check(server.stop() == 0, "SIGTERM: clean stop, exit 0" + ("" if server.proc.returncode == 0 else server.output))

    # 50 concurrent connections, each a completion (and a health check): every one answered, the same text.
    server = Server("--model", STORIES, "--tokenizer", TOK512, "--max-sessions", "64", "--ctx", "2048")
    u = server.url
    n_conn = 50

    def one(i):
        try:
            st, r = http(u + "/v1/completions", "POST", {"prompt": "Once upon a time", "max_tokens": 12,
                                                          "temperature": 0, "draft_ngram": 2 if i % 2 else 0},
                         timeout=120)
            return st, r["choices"][0]["text"] if st == 200 else r, http(u + "/health")[0]
        except OSError as e:  # a reset or refused connection is a failure to report, not a crash of the test
            return None, repr(e), None

    results = run_all([lambda i=i: one(i) for i in range(n_conn)], workers=n_conn)
    texts = {r[1] for r in results if r[0] == 200}
    errors = [r[1] for r in results if r[0] != 200 or r[2] != 200]
    check(not errors and len(texts) == 1, "%d concurrent connections all answered, one text (%s)%s" % (
        n_conn, sorted(texts)[:2], "; %d failed: %s" % (len(errors), errors[:3]) if errors else ""))
    st, r = http(u + "/v1/completions", "POST", {"prompt": "Once upon a time", "max_tokens": 64, "temperature": 0})
    cases = golden("stories260K-greedy.jsonl")
    check(st == 200 and r["edgespec"]["tokens"] == cases[0]["greedy_tokens"][:64],
          "/v1/completions target-only equals the golden tokens")
    st, r = http(u + "/v1/completions", "POST", {"prompt": "Once upon a time", "max_tokens": 64, "temperature": 0,
                                                  "draft_ngram": 3, "draft_len": 6})
    check(st == 200 and r["edgespec"]["tokens"] == cases[0]["greedy_tokens"][:64],
          "/v1/completions with n-gram speculation equals the golden tokens")

    # SIGTERM while clients run: the server stops cleanly, the clients fail with a clear error, nothing hangs;
    # a server started again on the same port serves new clients.
    port = server.port
    clients = [subprocess.Popen([os.path.join(BIN, "edgespec-generate"), "--server", u, "--tokenizer", TOK512,
                                 "--prompt", "Once upon a time", "-n", "2000", "--ignore-eos"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    time.sleep(0.3)
    code = server.stop()
    check(code == 0, "SIGTERM with clients running: exit 0 (got %s)" % code)
    outcomes = []
    for c in clients:
        try:
            _, err = c.communicate(timeout=30)
            outcomes.append((c.returncode, err))
        except subprocess.TimeoutExpired:
            c.kill()
            outcomes.append(("hung", ""))
    check(all(o[0] != "hung" for o in outcomes), "no client hangs when the server goes away")
    failed = [o for o in outcomes if o[0] not in (0, "hung")]
    check(all("error:" in e and "--server" in e for _, e in failed),
          "clients that lost the server say so (%d of 4 had finished)" % (4 - len(failed)))
    server = Server("--model", STORIES, "--tokenizer", TOK512, "--ctx", "128", port=port)
    rc, out, err = generate("--server", server.url, "--tokenizer", TOK512, "--prompt", "Once upon a time", "-n", "16")
    check(rc == 0 and out["tokens"] == cases[0]["greedy_tokens"][:16], "a restarted server serves new clients")
    rc, out, err = generate("--server", "http://127.0.0.1:1", "--tokenizer", TOK512, "--prompt", "Once", "-n", "4")
    check(rc == 1 and "--server" in err and "error:" in err, "no server there: a clear error (%s)" % err.strip())
    check(server.stop() == 0, "clean stop")


# ---- nginx: two servers, routed by session id ----

def test_nginx():
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        print("SKIP: nginx is not installed (scripts/setup installs nginx-light)")
        return 77
    a = Server("--model", STORIES, "--tokenizer", TOK512, "--session-id-start", "1", "--session-id-step", "2")
    b = Server("--model", STORIES, "--tokenizer", TOK512, "--session-id-start", "2", "--session-id-step", "2")
    tmp = tempfile.mkdtemp(prefix="edgespec-nginx-")
    os.chmod(tmp, 0o755)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = os.path.join(tmp, "nginx.conf")
    template = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "nginx-two-servers.conf")).read()
    user = "user root;\n" if os.geteuid() == 0 else ""
    with open(conf, "w") as f:
        f.write(user + template.replace("@TMP@", tmp).replace("@PORT@", str(port))
                .replace("@SERVER_A@", "127.0.0.1:%d" % a.port).replace("@SERVER_B@", "127.0.0.1:%d" % b.port))
    proxy = subprocess.Popen([nginx, "-p", tmp, "-c", conf], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = "http://127.0.0.1:%d" % port
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if http(url + "/health", timeout=2)[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        check(http(url + "/health")[0] == 200, "nginx forwards /health")
        cases = golden("stories260K-greedy.jsonl")
        n = 24 if QUICK else 64
        jobs = stories_clients(url, cases, n)[:8]
        results = run_all([j[2] for j in jobs], workers=len(jobs))
        for (case, d, _), (rc, out, err) in zip(jobs, results):
            check(rc == 0 and out["tokens"] == case["greedy_tokens"][:n],
                  "through nginx: %r with %s" % (case["prompt"][:24], " ".join(d) or "no drafter") +
                  ("" if rc == 0 else ": " + err.strip()))
        # Each client asks for /v1/models, then opens its session, both through the shared upstream, which nginx
        # serves round-robin: clients in lockstep would open every session on one server. Two sessions opened
        # back to back (nothing between them) land on both, then close through their id's route.
        for _ in range(2):
            status, opened = http(url + "/v1/sessions", "POST", {"prompt_tokens": [1, 2, 3]})
            check(status in (200, 201) and "session" in opened, "a session opened through nginx (%d)" % status)
            status, _ = http(url + "/v1/sessions/%d" % opened["session"], "DELETE")
            check(status == 204, "and closed through its id's route (%d)" % status)
        opened_a = metric(a.url, "edgespec_server_sessions_opened_total")
        opened_b = metric(b.url, "edgespec_server_sessions_opened_total")
        print("sessions opened: server A %d, server B %d" % (opened_a, opened_b))
        check(opened_a > 0 and opened_b > 0, "both servers served sessions")
        check(metric(a.url, "edgespec_server_sessions") == 0 and metric(b.url, "edgespec_server_sessions") == 0,
              "every session was routed back to its server and closed there")
    finally:
        proxy.send_signal(signal.SIGQUIT)
        try:
            proxy.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proxy.kill()
        check(a.stop() == 0 and b.stop() == 0, "both servers stop cleanly")
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    tests = {"golden": test_golden, "smollm2": test_smollm2, "faults": test_faults, "nginx": test_nginx}
    if len(sys.argv) != 2 or sys.argv[1] not in tests:
        print(__doc__)
        return 2
    code = tests[sys.argv[1]]()
    if code == 77:
        return 77
    if failures:
        print("%d check(s) failed:\n  %s" % (len(failures), "\n  ".join(failures)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
