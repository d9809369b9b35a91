"""The README's "Compress inside your own generate" example runs as written (embedded model)."""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.embedded

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_example_runs(capsys):
    text = README.read_text()
    section = text.split("## Compress inside your own generate", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].startswith("torch.Size([2, 30, 3])")
    before, after = map(int, printed[1].split()[-2:])
    assert after < before
    assert printed[2] == "64" and scope["c"].stats.max_held == 64
