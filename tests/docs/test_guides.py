"""Every Python block of every guide in docs/*.md runs, offline, in a temporary working folder.

Blocks of one guide run in order in one namespace (guides build on earlier blocks). A block that
cannot run as it stands (a GPU, a long training, a signature listing) carries the HTML comment
``<!-- no-test: reason -->`` on the line before its fence; those are listed as skips with the reason.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDES = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```python\n(.*?)^```", flags=re.S | re.M)
NO_TEST = re.compile(r"^<!--\s*no-test:(.*?)-->\s*$", flags=re.M)  # a line of its own


@dataclass(frozen=True)
class Block:
    guide: Path
    line: int  # 1-based line of the opening fence
    code: str
    skip_reason: str | None

    @property
    def where(self) -> str:
        return f"docs/{self.guide.name}:{self.line}"


def python_blocks(guide: Path) -> list[Block]:
    """The ```python blocks of ``guide``, each with the no-test reason written just before it."""
    text = guide.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = NO_TEST.search(before)
        line = text.count("\n", 0, match.start()) + 1
        reason = marker.group(1).strip() if marker else None
        blocks.append(Block(guide, line, match.group(1), reason))
    return blocks


BLOCKS = [block for guide in GUIDES for block in python_blocks(guide)]
SKIPPED = [block for block in BLOCKS if block.skip_reason is not None]


def test_the_guides_have_python_blocks_and_markers_sit_on_fences():
    assert len(BLOCKS) >= 15
    for guide in GUIDES:
        markers = len(NO_TEST.findall(guide.read_text(encoding="utf-8")))
        on_fences = sum(block.skip_reason is not None for block in python_blocks(guide))
        assert markers == on_fences, f"docs/{guide.name}: a no-test marker is not before a fence"
    assert all(block.skip_reason for block in SKIPPED), "a no-test marker needs a reason"
    assert len(SKIPPED) <= len(BLOCKS) // 3, "most examples must run"


@pytest.mark.parametrize(
    "guide", [g for g in GUIDES if any(b.guide == g for b in BLOCKS)], ids=lambda g: g.name
)
def test_guide_runs(guide, tmp_path, monkeypatch):
    # relative paths in the guides (data_samples/..., runs/...) resolve in a temporary folder
    shutil.copytree(ROOT / "data_samples", tmp_path / "data_samples")  # 2 MB; the repo stays clean
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    namespace: dict = {"__name__": "__guide__"}
    for block in python_blocks(guide):
        if block.skip_reason is not None:
            print(f"skipped {block.where}: {block.skip_reason}")
            continue
        # pad so that tracebacks give the line numbers of the markdown file
        code = compile("\n" * block.line + block.code, str(block.guide), "exec")
        exec(code, namespace)


@pytest.mark.parametrize("block", SKIPPED, ids=lambda b: b.where)
def test_not_run(block):
    """One skip per no-test block, so that the run's summary lists them with their reasons."""
    pytest.skip(f"{block.where}: {block.skip_reason}")
