"""README's Python snippet runs and explains what its toy engine does."""

import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_snippet_runs(capsys):
    section = README.read_text().split("## Python\n", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    # Suppressing key j to 0.1 removes 0.9 of its weight from the logit: CE rises by 0.9 w_j.
    weight = [0.1, 0.5, 0.1, 2.0, 0.3]
    np.testing.assert_allclose(namespace["explanation"].scores, 0.9 * np.array(weight), rtol=1e-6)
    out = capsys.readouterr().out
    assert "1. +1.8  \"France\"" in out
