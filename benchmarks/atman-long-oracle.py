#!/usr/bin/env python3
"""Could any coarse-to-fine search find what exhaustive AtMan finds on these
documents? (docs/hierarchical.md). From the exhaustive word scores alone (an
atman-long --write-exhaustive file), per document and coarse level (paragraph,
sentence):

  best       the most of the exhaustive top-10 words that the best 1 (and 3)
             units of the level hold: what refining 1 (3) units at that level
             can find at most;
  additive   the units ranked by the sum of their words' exhaustive scores,
             as a coarse unit would score if AtMan's deltas added up: the rank
             of the unit holding the answer, and the top-10 words in the
             first 1 (3) units.

Words, sentences and paragraphs follow atman's units (include/atman/units.hpp):
words are runs of non-white-space, a sentence ends with a word ending in
. ! or ? (closing quotes and brackets stripped) or at a paragraph break (a
blank line). Standard library only.

  benchmarks/atman-long-oracle.py build/long-docs/long-1000.jsonl exhaustive-1000.json
"""
import argparse
import json
import sys

TOP = 10
CLOSERS = (")", "]", "}", '"', "'", "\u201d", "\u2019", "\u00bb")


def fail(message):
    sys.exit(f"atman-long-oracle: {message}")


def ends_sentence(word):
    while word.endswith(CLOSERS):
        word = word[:-1]
    return word.endswith((".", "!", "?"))


def segment(context):
    """Per word: (first code point, last code point + 1, paragraph, sentence)."""
    words = []
    sentence = 0
    at = 0
    for p, text in enumerate(context.split("\n\n")):
        start_of_paragraph = at
        pieces = text.split()
        search = 0
        for i, piece in enumerate(pieces):
            begin = text.index(piece, search)
            search = begin + len(piece)
            words.append((start_of_paragraph + begin, start_of_paragraph + search, p, sentence))
            if ends_sentence(piece) or i == len(pieces) - 1:
                sentence += 1
        at += len(text) + 2
    return words


def ranked(values):
    return sorted(range(len(values)), key=lambda i: (-values[i], i))


def level_figures(relevance, unit_of, answer_unit, top_words):
    n = max(unit_of) + 1
    sums, held = [0.0] * n, [0] * n
    for w, r in enumerate(relevance):
        sums[unit_of[w]] += r
    for w in top_words:
        held[unit_of[w]] += 1
    best = sorted(held, reverse=True)
    order = ranked(sums)
    return {"units": n, "best1": best[0], "best3": sum(best[:3]),
            "answer_unit_rank": order.index(answer_unit) + 1,
            "additive1": held[order[0]], "additive3": sum(held[u] for u in order[:3])}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("documents", help="the documents (scripts/make-long-docs output)")
    p.add_argument("scores", help="atman-long --write-exhaustive file")
    a = p.parse_args()
    with open(a.documents, encoding="utf-8") as f:
        documents = [json.loads(line) for line in f if line.strip()]
    with open(a.scores, encoding="utf-8") as f:
        stored = json.load(f)
    try:
        questions = stored["methods"]["atman-exhaustive"]["questions"]
    except KeyError:
        fail(f"{a.scores}: no method atman-exhaustive (write it with atman-long --write-exhaustive)")
    totals = {}
    # The answer word's own rank is atman-long's answer_rank (over every answer's words).
    print("doc  words  level      units  best1 best3  additive: answer-unit-rank top1 top3")
    for line in sorted(questions, key=int):
        doc = documents[int(line)]
        relevance = questions[line]["relevance"]
        words = segment(doc["context"])
        if len(words) != len(relevance):
            fail(f"document {line}: {len(words)} words, the scores have {len(relevance)}")
        start = doc["answers"][0]["answer_start"]
        answer = next((w for w, (b, e, _, _) in enumerate(words) if b <= start < e), None)
        if answer is None:
            fail(f"document {line}: no word at the answer's offset {start}")
        top_words = ranked(relevance)[:TOP]
        print(f"{line:>3} {len(words):>6}", end="")
        for k, name in ((2, "paragraph"), (3, "sentence")):
            unit_of = [w[k] for w in words]
            fig = level_figures(relevance, unit_of, unit_of[answer], top_words)
            totals.setdefault(name, []).append(fig)
            lead = "  " if k == 2 else " " * 12
            print(f"{lead}{name:<10} {fig['units']:>5} {fig['best1']:>5} {fig['best3']:>5}  "
                  f"{fig['answer_unit_rank']:>25} {fig['additive1']:>4} {fig['additive3']:>4}")
    for name, figs in totals.items():
        n = len(figs)
        mean = {key: sum(f[key] for f in figs) / n for key in ("best1", "best3", "additive1", "additive3")}
        first = sum(1 for f in figs if f["answer_unit_rank"] == 1)
        top3 = sum(1 for f in figs if f["answer_unit_rank"] <= 3)
        print(f"{name}: over {n} documents, top-10 words the best 1 / 3 units hold {mean['best1']:.2f} / "
              f"{mean['best3']:.2f}, the additive first 1 / 3 {mean['additive1']:.2f} / {mean['additive3']:.2f}; "
              f"the answer's unit ranks first by additive score in {first}, in the first 3 in {top3}")


if __name__ == "__main__":
    main()
