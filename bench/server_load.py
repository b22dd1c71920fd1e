#!/usr/bin/env python3
"""Load measurements of edgespec-server with real clients (edgespec-generate --server), as separate processes.

    bench/server_load.py batching   8 concurrent n-gram clients against a SmolLM2 Q8_0 target:
                                    wall time with --max-batch 1 over --max-batch 8, outputs compared
    bench/server_load.py capacity   S = 1, 2, 4, 8, 12, 16 concurrent clients, batched and --max-batch 1:
                                    per-session tokens/s, total tokens/s, and the sessions served at a given
                                    per-session rate (a fraction of serving one session alone)

Environment: EDGESPEC_BIN_DIR (default build/bin), EDGESPEC_MODEL_DIR (SmolLM2's Q4_1 file, converted once to
Q8_0 with edgespec-convert into EDGESPEC_BENCH_DIR, default ./bench-models), SERVER_THREADS (default 2),
TOKENS (per client, default 128), DRAFT_LEN (default 4), ROUNDS (repetitions, best kept; default 2).
"""
import concurrent.futures as futures
import json
import os
import re
import subprocess
import sys
import time

BIN = os.environ.get("EDGESPEC_BIN_DIR", "build/bin")
MODELS = os.environ.get("EDGESPEC_MODEL_DIR", "../shared/models")
BENCH_DIR = os.environ.get("EDGESPEC_BENCH_DIR", "bench-models")
THREADS = os.environ.get("SERVER_THREADS", "2")
TOKENS = int(os.environ.get("TOKENS", "128"))
DRAFT_LEN = os.environ.get("DRAFT_LEN", "4")
ROUNDS = int(os.environ.get("ROUNDS", "2"))
BATCH_WAIT_MS = os.environ.get("BATCH_WAIT_MS", "4")

PROMPTS = [
    "Summarize: The cat sat on the mat. The cat sat on the mat because the mat was warm. The mat was warm.",
    "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n\ndef mul(a, b):\n",
    "Repeat after me: one two three four, one two three four, one two three four,",
    "The capital of France is Paris. The capital of Italy is Rome. The capital of Spain is",
    "List the days of the week: Monday, Tuesday, Wednesday,",
    "Once upon a time, in a small village, there lived a girl. Once upon a time, in a small village,",
    "Translate to French: Good morning. -> Bonjour. Good night. -> Bonne nuit. Good evening. ->",
    "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,",
    "The quick brown fox jumps over the lazy dog. The quick brown fox",
    "Water boils at 100 degrees Celsius. Water freezes at",
    "In 1969, Neil Armstrong walked on the moon. In 1969,",
    "A B C D E F G A B C D E F G A B C",
    "To make tea, boil water. To make coffee, boil water. To make soup,",
    "red, green, blue, red, green, blue, red,",
    "Hello! How are you? Hello! How are you? Hello!",
    "The three primary colors are red, yellow and blue. The three primary colors are",
]


def target_model():
    os.makedirs(BENCH_DIR, exist_ok=True)
    out = os.path.join(BENCH_DIR, "smollm2-q8_0.gguf")
    if not os.path.exists(out):
        src = os.path.join(MODELS, "gguf", "smollm2-135m-instruct-q4_1.gguf")
        print("converting %s to Q8_0 (once)..." % src, file=sys.stderr)
        subprocess.run([os.path.join(BIN, "edgespec-convert"), src, "-o", out + ".part", "--type", "q8_0"], check=True,
                       stdout=subprocess.DEVNULL)
        os.rename(out + ".part", out)
    return out


class Server:
    def __init__(self, model, max_batch, max_sessions=32):
        self.proc = subprocess.Popen([os.path.join(BIN, "edgespec-server"), "--model", model, "--port", "0",
                                      "--threads", THREADS, "--max-batch", str(max_batch), "--batch-wait-ms", BATCH_WAIT_MS, "--max-sessions",
                                      str(max_sessions), "--ctx", "1024"], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        self.url = re.search(r"listening on (http://[^ ]+)", line).group(1)

    def metrics(self):
        import urllib.request
        text = urllib.request.urlopen(self.url + "/metrics").read().decode()
        return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(edgespec_server_\w+) (\S+)$", text, re.M)}

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def client(url, prompt):
    t0 = time.time()
    p = subprocess.run([os.path.join(BIN, "edgespec-generate"), "--server", url, "--prompt", prompt, "-n",
                        str(TOKENS), "--ignore-eos", "--draft-ngram", "3", "--draft-len", DRAFT_LEN, "--json"],
                       capture_output=True, text=True, check=True)
    out = json.loads(p.stdout)
    out["wall"] = time.time() - t0
    return out


def run_clients(url, n):
    with futures.ThreadPoolExecutor(max_workers=n) as ex:
        t0 = time.time()
        outs = list(ex.map(lambda i: client(url, PROMPTS[i % len(PROMPTS)]), range(n)))
        return time.time() - t0, outs


def measure(model, max_batch, n):
    """Best of ROUNDS: (wall seconds, outputs, server metrics over that round)."""
    server = Server(model, max_batch)
    try:
        run_clients(server.url, 1)  # warm-up
        best = None
        for _ in range(ROUNDS):
            before = server.metrics()
            wall, outs = run_clients(server.url, n)
            after = server.metrics()
            delta = {k: after[k] - before.get(k, 0.0) for k in after}
            if best is None or wall < best[0]:
                best = (wall, outs, delta)
        return best
    finally:
        server.stop()


def batching():
    model = target_model()
    n = 8
    wall_1, outs_1, m_1 = measure(model, 1, n)
    wall_8, outs_8, m_8 = measure(model, 8, n)
    same = [a["tokens"] for a in outs_1] == [b["tokens"] for b in outs_8]
    alpha = sum(o["stats"]["accepted"] for o in outs_8) / max(1, sum(o["stats"]["drafted"] for o in outs_8))
    print("%d concurrent n-gram clients x %d tokens, SmolLM2 Q8_0, server threads %s, draft length %s" %
          (n, TOKENS, THREADS, DRAFT_LEN))
    print("  --max-batch 1: %.2f s   --max-batch 8: %.2f s   ratio %.2fx   outputs identical: %s   alpha %.2f" %
          (wall_1, wall_8, wall_1 / wall_8, same, alpha))
    for name, m, wall in [("--max-batch 1", m_1, wall_1), ("--max-batch 8", m_8, wall_8)]:
        f = m["edgespec_server_forwards_total"]
        print("  %s: %d forwards, %.2f sessions and %.1f positions per forward, server busy %.2f s of %.2f s" %
              (name, f, m["edgespec_server_batched_sequences_total"] / f, m["edgespec_server_batched_positions_total"] / f,
               m["edgespec_server_busy_seconds_total"], wall))
    return 0 if same else 1


def capacity():
    model = target_model()
    # Each prompt alone (its own acceptance rate sets its own speed): the reference of "served as if alone".
    server = Server(model, 1)
    try:
        run_clients(server.url, 1)  # warm-up
        alone = [client(server.url, p)["stats"]["tokens_per_second"] for p in PROMPTS]
    finally:
        server.stop()
    print("SmolLM2 Q8_0, n-gram clients x %d tokens (draft length %s), server threads %s; each prompt alone: "
          "%.0f-%.0f tok/s, mean %.0f" % (TOKENS, DRAFT_LEN, THREADS, min(alone), max(alone), sum(alone) / len(alone)))
    print("| sessions | batched: tok/s per session | of alone | total tok/s | --max-batch 1: tok/s per session | "
          "of alone | total tok/s |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for s in [1, 2, 4, 8, 12, 16]:
        cells = []
        for mb in [s, 1]:
            wall, outs, _ = measure(model, mb, s)
            rates = [o["stats"]["tokens_per_second"] for o in outs]
            per = sum(rates) / s
            rel = sum(r / alone[i % len(PROMPTS)] for i, r in enumerate(rates)) / s
            total = sum(o["stats"]["generated_tokens"] for o in outs) / wall
            cells += [per, rel, total]
        rows.append((s, cells))
        print("| %d | %.0f | %.0f%% | %.0f | %.0f | %.0f%% | %.0f |" %
              (s, cells[0], 100 * cells[1], cells[2], cells[3], 100 * cells[4], cells[5]), flush=True)
    for rate in [100, 200]:
        b = max([s for s, c in rows if c[0] >= rate], default=0)
        u = max([s for s, c in rows if c[3] >= rate], default=0)
        print("capacity at >= %d tok/s per session: batched %d sessions, --max-batch 1 %d" % (rate, b, u))
    for frac in [0.5, 0.25]:
        b = max([s for s, c in rows if c[1] >= frac], default=0)
        u = max([s for s, c in rows if c[4] >= frac], default=0)
        print("capacity at >= %.0f%% of each session's alone rate: batched %d sessions, --max-batch 1 %d" %
              (100 * frac, b, u))
    return 0


if __name__ == "__main__":
    modes = {"batching": batching, "capacity": capacity}
    if len(sys.argv) != 2 or sys.argv[1] not in modes:
        print(__doc__)
        sys.exit(2)
    sys.exit(modes[sys.argv[1]]())
