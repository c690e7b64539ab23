"""Gradient explanations of atman-eval's questions, for atman-eval to evaluate
(docs/quality.md, "External methods"). It reads the inputs atman-eval wrote
(--write-inputs: token ids, units, labels), runs the same GGUF model in
PyTorch (float32, atman.torch.load_gguf), and writes each unit's relevance
(atman.eval-scores/1) for atman-eval --scores, so the metrics and the deletion
passes are atman-eval's own:

    build/release/benchmarks/atman-eval --limit 20 --write-inputs inputs.jsonl
    python benchmarks/atman-eval-gradients.py --inputs inputs.jsonl --out scores.json
    build/release/benchmarks/atman-eval --limit 20 --scores scores.json

f is the target's log-probability, summed over its tokens (minus its CE, so a
positive relevance supports the target as AtMan's does); E the input
embeddings of every position. Per token:

    input-x-gradient      sum_d E * df/dE
    integrated-gradients  sum_d E * mean_k df/dE(a_k E), a_k = (k + 1/2) / steps
                          (midpoint rule; zero-embedding baseline at every position)
    gradient-norm         |df/dE|_2
    atman-torch           AtMan itself (multiplicative, factor 0.1) on this
                          float32 model: the C++ library driving atman.torch's engine

A unit's relevance is the sum of its tokens' values (the first-order effect of
changing all its tokens at once, as AtMan suppresses them at once); for
gradient-norm the norm of the gradient over all its tokens. Each method runs in
a fresh process (input-x-gradient and gradient-norm share one: the same
gradient), so its peak resident memory is its own: after the model is loaded
and has run once, the peak is reset (/proc/self/clear_refs), and the peak
while the method runs is reported with the resident size it started from.
"forward" (one no-grad pass per question, what AtMan's base pass costs) is
measured the same way, for reference.
"""

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch

METHODS = ["input-x-gradient", "integrated-gradients", "gradient-norm", "atman-torch"]


def fail(message):
    sys.exit(f"atman-eval-gradients: {message}")


def read_inputs(path):
    questions = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            q = json.loads(line)
            if q.get("schema") != "atman.eval-inputs/1":
                fail(f"{path}: line {number} is not atman.eval-inputs/1")
            questions.append(q)
    if not questions:
        fail(f"{path}: no questions")
    return questions


def check_tokens(tokenizer, q):
    """Fails unless the tokenizer gives the ids atman-eval gave (a special token
    atman-eval put first without text, a raw prompt's sink, is not the
    tokenizer's to give)."""
    ids = q["prompt_tokens"]
    if ids and ids[0] in tokenizer.all_special_ids and tokenizer(q["prompt"], add_special_tokens=False)["input_ids"] == ids[1:]:
        ids = ids[1:]
    for name, text, expected in (("prompt", q["prompt"], ids), ("target", q["target"], q["target_tokens"])):
        got = tokenizer(text, add_special_tokens=False)["input_ids"]
        if got != expected:
            at = next((k for k, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
            fail(f"question {q['line']}: the {name}'s tokens differ from atman-eval's at token {at} "
                 f"(transformers {got[at:at + 3]}, atman-eval {expected[at:at + 3]}): the tokenizers disagree")


class Objective:
    """f(E): the target's log-probability under the model, from input embeddings."""

    def __init__(self, model, q):
        self.model = model
        self.ids = torch.tensor(q["prompt_tokens"] + q["target_tokens"][:-1])
        self.targets = torch.tensor(q["target_tokens"])
        self.first = len(q["prompt_tokens"]) - 1
        self.embeddings = model.get_input_embeddings()(self.ids).detach()

    def __call__(self, embeddings):
        """f for each row of embeddings (rows x T x d)."""
        hidden = self.model.model(inputs_embeds=embeddings).last_hidden_state
        m = len(self.targets)
        logits = self.model.lm_head(hidden[:, self.first:self.first + m]).double()
        logp = torch.log_softmax(logits, dim=-1)
        return logp.gather(-1, self.targets.expand(len(embeddings), -1)[..., None])[..., 0].sum(-1)

    def gradient(self, embeddings):
        x = embeddings.clone().requires_grad_(True)
        value = self(x)
        (grad,) = torch.autograd.grad(value.sum(), x)
        return value.detach(), grad


def unit_sums(token_values, q):
    return [float(sum(token_values[p] for p in u["positions"])) for u in q["units"]]


def gradient(f, q, args):
    _, grad = f.gradient(f.embeddings[None])
    squares = (grad[0].double() ** 2).sum(-1).numpy()
    return {"input-x-gradient": (unit_sums((f.embeddings * grad[0]).sum(-1).double().numpy(), q), {}),
            "gradient-norm": ([float(np.sqrt(s)) for s in unit_sums(squares, q)], {})}


def integrated_gradients(f, q, args):
    alphas = (torch.arange(args.steps, dtype=torch.float32) + 0.5) / args.steps
    total = torch.zeros_like(f.embeddings)
    for chunk in alphas.split(args.ig_batch):
        _, grad = f.gradient(chunk[:, None, None] * f.embeddings[None])
        total += grad.sum(0)
    token = (f.embeddings * total / args.steps).sum(-1).double().numpy()
    with torch.no_grad():
        rise = float(f(f.embeddings[None])[0] - f(torch.zeros_like(f.embeddings)[None])[0])
    return {"integrated-gradients": (unit_sums(token, q), {"attribution_sum": float(token.sum()),
                                                           "f_x_minus_f_baseline": rise})}


def atman_torch(model, q, args):
    import atman
    from atman.torch import TransformersEngine

    units = [atman.Unit(np.array(u["positions"], dtype=np.int64), u["start"], u["end"]) for u in q["units"]]
    request = atman.ExplainRequest(q["prompt"], np.array(q["prompt_tokens"], dtype=np.int32), q["target"],
                                   np.array(q["target_tokens"], dtype=np.int32), units)
    e = atman.explain(TransformersEngine(model), request, atman.Config(mode=atman.Mode.multiplicative, factor=0.1))
    return {"atman-torch": ([float(u.score) for u in e.units], {})}


def forward(f, q, args):
    with torch.no_grad():
        f(f.embeddings[None])
    return {"forward": ([0.0] * len(q["units"]), {})}


# What each process computes: (function, whether it takes the model rather than f).
PROCESSES = {"forward": (forward, False), "gradient": (gradient, False),
             "integrated-gradients": (integrated_gradients, False), "atman-torch": (atman_torch, True)}
PROCESS_OF = {"input-x-gradient": "gradient", "gradient-norm": "gradient",
              "integrated-gradients": "integrated-gradients", "atman-torch": "atman-torch"}


def rss_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    fail(f"no {field} in /proc/self/status")


def run_process(args):
    """One process's methods over all questions, here: their scores and memory."""
    from transformers.utils import logging

    from atman.torch import load_gguf

    logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    model, tokenizer = load_gguf(args.model)
    questions = read_inputs(args.inputs)
    for q in questions:
        check_tokens(tokenizer, q)
    function, takes_model = PROCESSES[args.process]
    warm_up = Objective(model, questions[0])
    with torch.no_grad():  # the first pass allocates what every later pass reuses
        warm_up(warm_up.embeddings[None])
    gc.collect()
    start_rss = rss_bytes("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # resets VmHWM to the present size
        f.write("5")
    methods = {}
    for k, q in enumerate(questions):
        started, cpu_started = time.perf_counter(), time.process_time()
        results = function(model if takes_model else Objective(model, q), q, args)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        for name, (relevance, extra) in results.items():
            m = methods.setdefault(name, {"questions": {}, "extras": []})
            m["questions"][str(q["line"])] = {"relevance": relevance, "seconds": seconds, "cpu_seconds": cpu_seconds}
            if extra:
                m["extras"].append(extra)
        if not args.quiet:
            print(f"atman-eval-gradients: {args.process} [{k + 1}/{len(questions)}] question {q['line']}: "
                  f"{seconds:.1f} s", file=sys.stderr)
    memory = {"rss_before_bytes": start_rss, "peak_rss_bytes": rss_bytes("VmHWM"),
              "how": "VmHWM of a fresh process, reset after loading the float32 model and one warm-up pass"}
    out = {}
    for name, m in methods.items():
        notes = {"memory": memory, "threads": args.threads, "process": args.process}
        if name == "integrated-gradients":
            errors = [abs(e["attribution_sum"] - e["f_x_minus_f_baseline"]) /
                      max(abs(e["f_x_minus_f_baseline"]), 1e-12) for e in m["extras"]]
            notes.update({"steps": args.steps, "batch": args.ig_batch, "rule": "midpoint",
                          "baseline": "zero embeddings at every position",
                          "completeness_relative_error": {"mean": float(np.mean(errors)), "median": float(np.median(errors)),
                                                          "max": float(np.max(errors))},
                          "completeness": m["extras"]})
        out[name] = {"questions": m["questions"], "notes": notes}
    return out


def merge(paths, out):
    """One scores file from several over disjoint questions (runs over parts of
    a question set): each method's questions joined, its notes kept per part."""
    files = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            files.append(json.load(f))
        if files[-1].get("schema") != "atman.eval-scores/1":
            fail(f"--merge: {path} is not atman.eval-scores/1")
    if len({f["model"] for f in files}) != 1:
        fail("--merge: the files are of different models")
    names = list(files[0]["methods"])
    if any(list(f["methods"]) != names for f in files):
        fail("--merge: the files hold different methods")
    result = {"schema": "atman.eval-scores/1", "model": files[0]["model"], "methods": {}}
    for name in names:
        questions, parts = {}, []
        for path, f in zip(paths, files):
            m = f["methods"][name]
            twice = set(questions) & set(m["questions"])
            if twice:
                fail(f"--merge: method {name} has question {min(twice, key=int)} in more than one file")
            questions.update(m["questions"])
            parts.append({"file": os.path.basename(path), "questions": sorted(m["questions"], key=int),
                          "notes": m.get("notes", {})})
        result["methods"][name] = {"questions": dict(sorted(questions.items(), key=lambda kv: int(kv[0]))),
                                   "notes": {"parts": parts}}
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--merge", nargs="+", metavar="SCORES",
                        help="instead of computing: join these scores files (disjoint questions) into --out")
    parser.add_argument("--inputs", help="atman-eval --write-inputs output")
    parser.add_argument("--out", required=True, help="scores file for atman-eval --scores")
    parser.add_argument("--model", default=os.environ.get("ATMAN_MODEL"), help="GGUF model (default: $ATMAN_MODEL)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    parser.add_argument("--steps", type=int, default=32, help="integrated gradients' steps")
    parser.add_argument("--ig-batch", type=int, default=8, help="integrated gradients' steps per backward pass")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--process", help=argparse.SUPPRESS)  # a child process: run this one only
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args()
    if args.merge:
        merge(args.merge, args.out)
        return
    if not args.inputs:
        fail("--inputs is required (or --merge)")
    if not args.model:
        fail("no model: pass --model or set ATMAN_MODEL")
    if args.steps < 1 or args.ig_batch < 1 or args.threads < 1:
        fail("--steps, --ig-batch and --threads must be at least 1")
    if args.process:
        with open(args.out, "w") as f:
            json.dump(run_process(args), f)
        return
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        fail(f"--methods: unknown {', '.join(unknown)} (known: {', '.join(METHODS)})")
    result = {"schema": "atman.eval-scores/1", "model": os.path.basename(args.model), "methods": {}}
    computed = {}
    for process in ["forward"] + list(dict.fromkeys(PROCESS_OF[m] for m in methods)):
        part = f"{args.out}.{process}.part"
        child = [sys.executable, os.path.abspath(__file__), "--inputs", args.inputs, "--out", part, "--model", args.model,
                 "--process", process, "--steps", str(args.steps), "--ig-batch", str(args.ig_batch),
                 "--threads", str(args.threads)] + (["-q"] if args.quiet else [])
        if subprocess.run(child).returncode != 0:
            fail(f"{process} failed")
        with open(part) as f:
            computed.update(json.load(f))
        os.remove(part)
    forward_peak = computed.pop("forward")["notes"]["memory"]["peak_rss_bytes"]
    for name in methods:
        computed[name]["notes"]["memory"]["forward_peak_rss_bytes"] = forward_peak
        result["methods"][name] = computed[name]
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
