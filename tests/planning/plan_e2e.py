#!/usr/bin/env python3
"""edgespec-profile and edgespec-plan as processes, on the stories260K/llama2xs pair (tests/CMakeLists.txt).

  plan_e2e.py cli      profile (three models and an n-gram lookup drafting) -> rank, --json, --predict, --validate
                       --json, --svg, and every bad input
  plan_e2e.py split    profile on cpu and gpu (PoCL) -> the split target's two ends and hand-over in the profile,
                       predictions linear in the cut, split configurations validated against real runs, errors
  plan_e2e.py header   profile -> --emit-header -> a CMake build of examples/planned.cpp with that header ->
                       its output equals target-only greedy decoding (edgespec-generate), token for token; the
                       same for a profile whose only drafter is an n-gram lookup

Needs EDGESPEC_BIN_DIR and EDGESPEC_MODEL_DIR; exits 77 (skipped) when the models are not there.
"""
import json
import os
import subprocess
import sys
import tempfile

BIN = os.environ.get("EDGESPEC_BIN_DIR", "build/bin")
MODELS = os.environ.get("EDGESPEC_MODEL_DIR", "../shared/models")
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.path.join(MODELS, "gguf", "stories260K-f32.gguf")
DRAFT = os.path.join(MODELS, "gguf", "llama2xs-f32.gguf")
PROMPTS = ["Once upon a time", "The little dog", "Lily and Tom went to the park"]


def run(*args, ok=True):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=900)
    if ok and p.returncode != 0:
        sys.exit(f"FAIL: {' '.join(map(str, args))} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def tool(name):
    return os.path.join(BIN, name)


def fails_with(args, needle):
    p = run(*args, ok=False)
    if p.returncode != 1 or needle not in p.stderr:
        sys.exit(f"FAIL: {' '.join(map(str, args))}: expected exit 1 and '{needle}', got {p.returncode}: {p.stderr}")


def profile(tmp, extra=()):
    prompts = os.path.join(tmp, "prompts.txt")
    with open(prompts, "w") as f:
        f.write("# test prompts\n" + "\n".join(PROMPTS) + "\n")
    out = os.path.join(tmp, "profile.json")
    run(tool("edgespec-profile"), "--target", TARGET, "--draft", DRAFT, "--draft-quant", "q8_0", "--draft-skip", "3",
        "--threads", "1", "--prompts", prompts, "--gen-len", "24", "--contexts", "0,32", "--reps", "3", "-o", out,
        *extra)
    return out, prompts


def check_cli(tmp):
    out, prompts = profile(tmp, ["--draft-ngram", "3", "--search-skip", "1", "--search-depth", "2"])
    prof = json.load(open(out))
    assert prof["format"] == "edgespec-profile" and prof["threads"] == 1, prof.keys()
    labels = [d["label"] for d in prof["drafters"]]
    assert len(labels) == 5 and labels[0] == "llama2xs-f32.gguf" and labels[1] == "target as Q8_0", labels
    assert labels[3] == "n-gram (n <= 3)" and prof["drafters"][3]["kind"] == "ngram", labels
    for d in prof["drafters"]:
        acc = d["acceptance"]
        assert acc["draft_len"] == 12 and len(acc["episodes"]) == len(PROMPTS), acc["episodes"]
        if d["kind"] == "ngram":  # no probabilities; every round, with the drafts the lookup offered (0..12)
            assert acc["top"] == [] and len(acc["offered"]) == len(acc["accepted"]) > 0, acc
            assert all(0 <= k <= o <= 12 for k, o in zip(acc["accepted"], acc["offered"])), acc
            lookup = d["timings"][0]["forward"]["seconds"][0]  # seconds per round
            assert [t["device"] for t in d["timings"]] == ["cpu"] and 0 < lookup < 1e-3, d["timings"]
            continue
        assert len(acc["top"]) == 12 * len(acc["accepted"]) and all(0 <= k <= 12 for k in acc["accepted"])
        assert all(0 < t <= 1 for t in acc["top"])
    # a copy of the target in Q8_0 agrees with it almost always; the other model and a skipped layer do not
    q8 = prof["drafters"][1]["acceptance"]["alpha_by_position"][0]
    xs = prof["drafters"][0]["acceptance"]["alpha_by_position"][0]
    assert q8 > 0.9 and xs < q8, (q8, xs)
    t = prof["target_timings"][0]["forward"]
    assert t["max_n"] == 16 and len(t["seconds"]) == 32 and all(s > 0 for s in t["seconds"])
    assert prof["skip_search"][0]["layers"] == [] and prof["skip_search"][0]["agreement"] == 1.0
    assert any(p["on_front"] for p in prof["skip_search"][1:])

    table = run(tool("edgespec-plan"), "--profile", out, "--top", "5").stdout
    assert "edgespec::Pipeline<" in table and "flags: edgespec-generate" in table, table
    ranked = json.loads(run(tool("edgespec-plan"), "--profile", out, "--json", "--top", "50").stdout)
    speedups = [c["predicted_speedup"] for c in ranked["configs"]]
    assert len(speedups) == 50 and speedups == sorted(speedups, reverse=True), speedups

    gen = ["--model", TARGET, "--draft-quant", "q8_0", "--draft-len", "3", "--threads", "1"]
    pred = json.loads(run(tool("edgespec-plan"), "--profile", out, "--predict", "--", *gen, "--prompt", PROMPTS[0],
                          "-n", "24").stdout)
    for k in ("predicted_speedup", "predicted_tokens_per_second", "predicted_tokens_per_round"):
        assert pred[k] > 0, pred
    assert 1 <= pred["predicted_tokens_per_round"] <= 4, pred
    # the n-gram lookup: its own Pipeline type and flags (no draft model, so no --draft-device)
    ngram = json.loads(run(tool("edgespec-plan"), "--profile", out, "--predict", "--", "--model", TARGET,
                           "--draft-ngram", "3", "--draft-len", "3", "--threads", "1").stdout)
    assert ngram["pipeline"] == ("edgespec::Pipeline<edgespec::Draft<edgespec::NGram<3>>, "
                                 "edgespec::Target<edgespec::OnCPU>, edgespec::DraftLen<3>>"), ngram
    assert "--draft-ngram 3 --draft-len 3" in ngram["flags"] and "--draft-device" not in ngram["flags"], ngram
    assert 1 <= ngram["predicted_tokens_per_round"] <= 4 and ngram["predicted_speedup"] > 0, ngram
    # forced acceptance 1: every round emits g + 1 tokens
    forced = json.loads(run(tool("edgespec-plan"), "--profile", out, "--predict", "--", *gen,
                            "--forced-acceptance", "1").stdout)
    assert abs(forced["predicted_tokens_per_round"] - 4.0) < 0.2, forced

    val = json.loads(run(tool("edgespec-plan"), "--profile", out, "--validate", "--validate-top", "2",
                         "--validate-reps", "1", "--prompts", prompts, "--gen-len", "24", "--json").stdout)
    assert len(val["configs"]) == 2, val
    errs = [abs(c["predicted_speedup"] - c["measured_speedup"]) / c["measured_speedup"] for c in val["configs"]]
    assert all(c["measured_speedup"] > 0 for c in val["configs"])
    assert abs(val["mean_abs_error"] - sum(errs) / len(errs)) < 1e-9, val
    flags = os.path.join(tmp, "configs.flags")
    with open(flags, "w") as f:
        f.write("# three configurations\n--draft-skip 3 --draft-len 2\n--draft " + DRAFT + " --adaptive 1:4\n"
                "--draft-ngram 3 --draft-len 4\n")
    val = json.loads(run(tool("edgespec-plan"), "--profile", out, "--validate", "--validate-flags", flags,
                         "--validate-reps", "1", "--prompts", prompts, "--gen-len", "24", "--json").stdout)
    assert [c["config"].split(" on ")[0] for c in val["configs"]] == ["skip 3", "llama2xs-f32.gguf",
                                                                      "n-gram (n <= 3)"], val
    assert all(c["measured_speedup"] > 0 for c in val["configs"]), val

    svg = os.path.join(tmp, "plan.svg")
    run(tool("edgespec-plan"), "--profile", out, "--svg", svg)
    text = open(svg).read()
    assert text.startswith("<svg") and text.rstrip().endswith("</svg>") and "Pareto front" in text, text[:200]

    # bad input: a clear error, exit 1
    plan = [tool("edgespec-plan"), "--profile", out, "--predict", "--"]
    fails_with(plan + ["--model", DRAFT, "--draft-quant", "q8_0"], "is not the profiled target")
    fails_with(plan + ["--draft-quant", "q4_0"], "the profile has no drafter for these flags")
    fails_with(plan + ["--draft-quant", "q8_0", "--threads", "2"], "the profile was made with 1 threads")
    fails_with(plan + ["--draft-quant", "q8_0", "--draft-len", "13"], "profile with --profile-draft-len 14")
    fails_with(plan + ["--draft-quant", "q8_0", "--draft-len", "12", "--schedule", "overlapped"], "")
    fails_with(plan + ["--draft-quant", "q8_0", "--temp", "0.8"], "measured acceptance at temperature 0")
    fails_with(plan + ["--draft-quant", "q8_0", "--draft-device", "gpu"], "no timings of drafter")
    fails_with(plan + ["--draft-ngram", "3", "--draft-quant", "q8_0"], "exactly one drafter flag")
    fails_with(plan + ["--draft-ngram", "4"], "the profile has no drafter for these flags")
    fails_with(plan + ["--draft-ngram", "3", "--early-stop", "0.5"], "--draft-ngram has none")
    fails_with(plan + ["--draft-quant", "q8_0", "--target-split", "2"], "no split target from cpu to gpu")
    fails_with(plan + ["--draft-quant", "q8_0", "--lm-head-device", "gpu"], "no split target from cpu to gpu")
    fails_with([tool("edgespec-plan"), "--profile", out, "--predict"], "flags after '--'")
    bad = os.path.join(tmp, "bad.json")
    with open(bad, "w") as f:
        f.write('{"format": "edgespec-profile", "version": 1, "target": {"file": "x"}}')
    fails_with([tool("edgespec-plan"), "--profile", bad], "profile '")
    with open(bad, "w") as f:
        f.write("{not json")
    fails_with([tool("edgespec-plan"), "--profile", bad], "parse error")
    fails_with([tool("edgespec-plan"), "--profile", os.path.join(tmp, "none.json")], "cannot open profile")
    fails_with([tool("edgespec-profile"), "--target", TARGET, "-o", bad, "--target-device", "tpu"], "is not cpu or gpu")
    for n in ("0", "65", "3,4"):
        fails_with([tool("edgespec-profile"), "--target", TARGET, "-o", bad, "--draft-ngram", n], "one number in 1..64")
    fails_with([tool("edgespec-profile"), "--target", TARGET, "-o", bad, "--gen-len", "4000"], "the profile needs a context")
    fails_with([tool("edgespec-generate"), "--model", TARGET, "--prompt", "x", "--forced-acceptance", "0.5"],
               "need a drafter")
    fails_with([tool("edgespec-generate"), "--model", TARGET, "--prompt", "x", "--draft-quant", "q8_0",
                "--forced-acceptance", "1.5"], "out of range")
    print("cli: profile, rank, predict, validate, svg and errors OK")


def check_split(tmp):
    out, prompts = profile(tmp, ["--target-device", "cpu", "--target-device", "gpu", "--draft-device", "cpu"])
    prof = json.load(open(out))
    layers = prof["target"]["n_layers"]
    assert sorted((s["first"], s["second"]) for s in prof["splits"]) == [("cpu", "gpu"), ("gpu", "cpu")], prof["splits"]
    for s in prof["splits"]:
        assert len(s["at_0"]["seconds"]) == len(s["at_all"]["seconds"]) == 2 * 16, s
        assert all(t > 0 for t in s["at_0"]["seconds"] + s["at_all"]["seconds"]), s
        assert s["handover"]["n"] == list(range(1, 17)), s["handover"]

    # the baseline's time per token is linear in the cut: T(K) = T(0) + K / L (T(L) - T(0))
    plan = [tool("edgespec-plan"), "--profile", out, "--predict", "--", "--draft-quant", "q8_0", "--draft-len", "3"]
    def per_token(*flags):
        p = json.loads(run(*plan, *flags).stdout)
        return 1.0 / p["predicted_baseline_tokens_per_second"], p
    for first in ("cpu", "gpu"):
        t0, _ = per_token("--target-device", first, "--target-split", "0")
        tl, whole = per_token("--target-device", first, "--target-split", str(layers))
        tk, mid = per_token("--target-device", first, "--target-split", "2")
        expect = t0 + 2 / layers * (tl - t0)
        assert abs(tk - expect) <= 1e-9 * expect, (first, t0, tk, tl, expect)
        other = "gpu" if first == "cpu" else "cpu"
        _, head = per_token("--target-device", first, "--lm-head-device", other)
        assert head["predicted_speedup"] == whole["predicted_speedup"], (head, whole)  # the same placement
        assert f"edgespec::Split<edgespec::On{first.upper()}, edgespec::On{other.upper()}>" in mid["pipeline"], mid
        assert f"--target-device {first} --target-split 2" in mid["flags"], mid["flags"]
    fails_with(plan + ["--target-split", "2", "--schedule", "overlapped", "--draft-device", "gpu"],
               "split target")

    # the overlapped schedule's measured cost: the real Overlapped pipeline over the model's prediction for it,
    # one factor per placement on two devices; it multiplies overlapped rounds only, and a profile without it
    # (an older one) reads as 1
    assert len(prof["contention"]) == len(prof["drafters"]), prof["contention"]  # one placement on two devices
    for c in prof["contention"]:
        # (positive and finite: on these 0.3M-parameter models a forward takes microseconds, so the schedule's
        # hand-offs between threads can cost several times the forwards, more so on a loaded machine)
        assert (c["draft_device"], c["target_device"]) == ("cpu", "gpu") and 0 < c["overlapped"] < 1e4, c
    (ki,) = [i for i, c in enumerate(prof["contention"]) if c["drafter"] == "target as Q8_0"]
    k = prof["contention"][ki]
    over = ["--target-device", "gpu", "--schedule", "overlapped"]
    _, measured = per_token(*over)
    _, sequential = per_token("--target-device", "gpu")
    def edited(factor):
        p2 = json.load(open(out))
        if factor is None:
            del p2["contention"][ki]["overlapped"]
        else:
            p2["contention"][ki]["overlapped"] = factor
        path = os.path.join(tmp, f"edited-{factor}.json")
        json.dump(p2, open(path, "w"))
        pl = [tool("edgespec-plan"), "--profile", path, "--predict", "--", "--draft-quant", "q8_0", "--draft-len", "3"]
        return (json.loads(run(*pl, *over).stdout)["predicted_tokens_per_second"],
                json.loads(run(*pl, "--target-device", "gpu").stdout)["predicted_tokens_per_second"])
    one, seq_one = edited(None)
    two, seq_two = edited(2.0)
    assert abs(one / measured["predicted_tokens_per_second"] - k["overlapped"]) <= 1e-6 * k["overlapped"], (one, measured, k)
    assert abs(one / two - 2.0) <= 1e-9, (one, two)
    assert seq_one == seq_two == sequential["predicted_tokens_per_second"], (seq_one, seq_two, sequential)
    fails_with(plan + ["--target-split", str(layers + 1)], "out of range")
    fails_with(plan + ["--target-split", "2", "--lm-head-device", "cpu"], "--lm-head-device must name that device")

    # validation runs split configurations and their own split baselines for real
    flags = os.path.join(tmp, "split.flags")
    with open(flags, "w") as f:
        f.write(f"--draft-quant q8_0 --draft-len 2 --target-split 2\n"
                f"--draft-quant q8_0 --draft-len 2 --target-device gpu --lm-head-device cpu\n")
    val = json.loads(run(tool("edgespec-plan"), "--profile", out, "--validate", "--validate-flags", flags,
                         "--validate-reps", "1", "--prompts", prompts, "--gen-len", "16", "--json").stdout)
    assert [c["config"] for c in val["configs"]] == [
        "target as Q8_0 on cpu, target layers [0, 2) on cpu, the rest on gpu, g 2",
        "target as Q8_0 on cpu, target on gpu, classifier on cpu, g 2"], val
    for c in val["configs"]:
        assert c["predicted_speedup"] > 0 and c["measured_speedup"] > 0, c
    print("split: the split target profiled, predicted linear in the cut, validated, errors OK; overlapped factor OK")


def check_header(tmp):
    out, prompts = profile(tmp)
    # and a profile whose only drafter is an n-gram lookup: a Draft<NGram<3>> pipeline, no draft model to load
    ngram = os.path.join(tmp, "ngram.json")
    run(tool("edgespec-profile"), "--target", TARGET, "--draft-ngram", "3", "--threads", "1", "--prompts", prompts,
        "--gen-len", "24", "--contexts", "0,32", "--reps", "3", "-o", ngram)
    build = os.path.join(tmp, "build")
    for prof, drafter in ((out, None), (ngram, "edgespec::Draft<edgespec::NGram<3>>")):
        header = os.path.join(tmp, "plan.hpp")
        run(tool("edgespec-plan"), "--profile", prof, "--emit-header", header)
        text = open(header).read()
        assert "using Pipeline = edgespec::Pipeline<" in text, text
        assert drafter is None or "edgespec::Pipeline<" + drafter in text, text
        run("cmake", "-S", os.path.join(SRC, "tests", "planning", "consumer"), "-B", build,
            "-DCMAKE_BUILD_TYPE=Release", f"-DEDGESPEC_SOURCE_DIR={SRC}", f"-DPLAN_HEADER={header}")
        run("cmake", "--build", build, "-j2")
        exe = os.path.join(build, "edgespec-planned")
        for prompt in PROMPTS:
            planned = json.loads(run(exe, "--prompt", prompt, "-n", "40", "--json").stdout)
            reference = json.loads(run(tool("edgespec-generate"), "--model", TARGET, "--prompt", prompt, "-n", "40",
                                       "--json").stdout)
            assert planned["tokens"] == reference["tokens"], (prompt, planned, reference)
    print("header: the emitted pipelines (a draft model's, an n-gram lookup's) compile and decode exactly as the "
          "target alone")


def main():
    if not (os.path.exists(TARGET) and os.path.exists(DRAFT)):
        print("skipped: stories260K/llama2xs GGUF files not in", MODELS)
        return 77
    part = sys.argv[1] if len(sys.argv) > 1 else "cli"
    with tempfile.TemporaryDirectory(prefix="edgespec-plan-") as tmp:
        if part == "split":
            probe = run(tool("edgespec-generate"), "--model", TARGET, "--prompt", "x", "-n", "1", "--target-device",
                        "gpu", ok=False)
            if probe.returncode != 0:
                print("skipped: no OpenCL device (edgespec-generate --target-device gpu:", probe.stderr.strip(), ")")
                return 77
        {"cli": check_cli, "split": check_split, "header": check_header}[part](tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
