"""The README's example of building a topology and testing it without a broker runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[3] / "README.md"


def test_the_readme_example_runs() -> None:
    section = README.read_text().split("## Building a topology", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "README: no python block under 'Building a topology'"
    exec(compile(code.group(1), "README.md", "exec"), {"__name__": "readme_example"})
