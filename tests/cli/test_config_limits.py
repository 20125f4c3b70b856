"""Hostile or huge configs fail fast with a short ConfigError naming the file."""

from __future__ import annotations

import time

import pytest

from medtransfer.cli import main
from medtransfer.cli.config import load_config
from medtransfer.cli.runs import _overrides
from medtransfer.errors import ConfigError

MINIMAL = "data:\n  manifest: cases/manifest.csv\n  task: segmentation\n"


def _bomb(levels: int = 9) -> str:
    """The "billion laughs" YAML: 10**levels strings from a few hundred bytes."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + f"\ndata:\n  manifest: m.csv\n  task: segmentation\n  class_names: *a{levels - 1}\n"  # fmt: skip


def _error(path) -> str:
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert time.perf_counter() - start < 2.0
    message = str(info.value)
    assert str(path) in message  # the file is named ...
    return message.replace(str(path), "<file>")  # ... and the rest is checked without it


def test_a_yaml_alias_bomb_is_refused_quickly_with_a_short_message(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(9))
    assert len(path.read_bytes()) < 1000
    message = _error(path)
    assert "aliases" in message and len(message) < 600


def test_a_moderate_alias_expansion_is_refused_too(tmp_path):
    path = tmp_path / "bomb5.yaml"
    path.write_text(_bomb(5))  # 100 000 strings
    assert "aliases" in _error(path)


def test_recursive_aliases_are_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text(MINIMAL + "  class_names: &x [a, *x]\n")
    assert "aliases" in _error(path)


def test_ordinary_aliases_still_work(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(MINIMAL + "  class_names: &names [liver, spleen]\nmodel:\n  num_classes: 3\n")
    assert load_config(path).data.class_names == ["liver", "spleen"]


def test_a_config_file_over_the_size_limit_is_refused(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text(MINIMAL + "# padding\n" * 200_000)  # 2 MB of comments
    message = _error(path)
    assert "MB" in message


def test_a_config_that_is_not_utf8_text_is_a_config_error(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert "UTF-8" in _error(path)


def test_echoed_values_are_truncated_in_config_errors(tmp_path):
    path = tmp_path / "long.yaml"
    long_value, long_key = "x" * 10_000, "k" * 1000  # YAML keys are at most 1024 characters
    path.write_text(MINIMAL + f"training:\n  lr: {long_value}\n  {long_key}: 1\n")
    message = _error(path)
    assert "..." in message and len(message) < 1500
    assert all(len(line) < 400 for line in message.splitlines())


def test_many_bad_values_are_summarised(tmp_path):
    path = tmp_path / "many.yaml"
    items = ", ".join(["a"] * 5000)
    path.write_text(MINIMAL + f"preprocessing:\n  spacing: [{items}]\n")
    message = _error(path)
    assert "more" in message and len(message.splitlines()) < 40


def test_alias_bomb_in_a_set_override_is_refused():
    parts = ["&a0 [" + ",".join(["lol"] * 10) + "]"]
    parts += [f"&a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    with pytest.raises(ConfigError, match="aliases"):
        _overrides([f"data.class_names=[{','.join(parts)}]"])


def test_cli_prints_a_short_error_for_an_alias_bomb(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(9))
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert "aliases" in err and len(err) < 1000
