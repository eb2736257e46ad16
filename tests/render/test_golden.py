"""Golden files: the dev and prod stacks rendered from defaults, byte for byte. After an intended
template change, regenerate them with `N8NCTL_UPDATE_GOLDEN=1 pytest tests/render` and review the diff."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from n8nctl.render import render_stack

GOLDEN = Path(__file__).with_name("golden")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_render_matches_the_golden_files(settings_of, stack):
    files = render_stack(settings_of(), runtime="compose", prod=stack == "prod")
    folder = GOLDEN / stack
    if os.environ.get("N8NCTL_UPDATE_GOLDEN") == "1":
        for relative, text in files.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_text(text)
    expected = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert sorted(files) == expected
    for relative, text in files.items():
        golden = (folder / relative).read_text()
        diff = "".join(difflib.unified_diff(golden.splitlines(True), text.splitlines(True), "golden", "now"))
        assert text == golden, f"{stack}/{relative} changed:\n{diff}"
