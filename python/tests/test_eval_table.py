"""benchmarks/atman-eval-table.py: its metrics recomputed from per-question
values agree with atman-eval's own (C++) aggregates in a committed run, and
with hand-computed values on a small run."""

import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("atman_eval_table", ROOT / "benchmarks" / "atman-eval-table.py")
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


def test_interquartile_mean_by_the_documented_order_statistics():
    # n = 5: q25 = v_1, q75 = v_3; ties at the bounds count.
    assert tool.interquartile_mean([0.9, 0.1, 0.4, 0.2, 0.3]) == pytest.approx(0.3)
    assert tool.interquartile_mean([1, 1, 1, 5]) == pytest.approx(2.0)  # q25 = v_0 = 1, q75 = v_3 = 5


def run(tmp_path, name, factor, aps):
    questions = {str(k): {"AP": ap, "AR": 1 - ap, "deletion": {"10": ap * 10}} for k, ap in enumerate(aps)}
    path = tmp_path / name
    path.write_text(json.dumps({"schema": "atman.eval/1", "protocol": {"factor": factor},
                                "methods": {"atman-multiplicative": {"questions": questions}}}))
    return str(path)


def test_rows_of_two_runs_over_common_lines(tmp_path):
    a = run(tmp_path, "a.json", 0.1, [0.5, 0.2, 0.9])
    b = run(tmp_path, "b.json", 0.3, [0.6, 0.1])
    rows = tool.rows_of(a) + tool.rows_of(b + ":atman-multiplicative")
    assert [label for label, _ in rows] == ["atman-multiplicative", "atman-multiplicative (factor 0.3)"]
    text = tool.table(rows, None)
    assert "N = 2 questions (lines 0-1)" in text
    assert "| atman-multiplicative (factor 0.3) | 0.350 | 0.650 |" in text
    assert "1 of 2 (1 below)" in text
    assert "N = 1 questions (lines 1-1)" in tool.table(rows, (1, 1))


@pytest.mark.parametrize("name", ["eval-first30.json"])
def test_agrees_with_atman_eval_on_a_committed_run(name):
    path = ROOT / "docs" / name
    rows = tool.rows_of(str(path))
    run = json.loads(path.read_text())
    assert run["n"] == 30
    for label, m in rows:
        q = list(m["questions"].values())
        assert len(q) == run["n"], label
        for key, values in (("mAP", [x["AP"] for x in q]), ("mAR", [x["AR"] for x in q])):
            assert tool.mean(values) == pytest.approx(m[key], abs=1e-12), (label, key)
            assert tool.interquartile_mean(values) == pytest.approx(m[key + "_IQ"], abs=1e-12), (label, key)
        for p, value in m["deletion"].items():
            assert tool.mean([x["deletion"][p] for x in q]) == pytest.approx(value, abs=1e-9), (label, p)
