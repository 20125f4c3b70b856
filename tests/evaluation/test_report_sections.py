"""Report sections: add/replace, validation, JSON round trip, placement on the HTML page."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.figure import Figure

from medtransfer.errors import ConfigError
from medtransfer.evaluation.report.html_page import figure_html, render_html
from medtransfer.evaluation.report.report import Report


def _report() -> Report:
    return Report(
        "segmentation",
        summary=[
            {"metric": "dice", "class": "liver", "value": 0.9, "low": 0.8, "high": 0.95, "n": 2}
        ],  # fmt: skip
        cases=[{"case_id": "a", "dice/liver": 0.85}, {"case_id": "b", "dice/liver": 0.95}],
        metadata={"class_names": ["liver"], "n_cases": 2},
    )


def test_add_section_appends_and_replaces_by_title() -> None:
    report = _report()
    report.add_section("First", "<p>one</p>", {"x": np.float32(0.5), "t": (1, 2)})
    report.add_section("Second", "<p>two</p>")
    report.add_section("First", "<p>one again</p>", {"y": float("nan")})
    assert [s["title"] for s in report.sections] == ["First", "Second"]
    assert report.sections[0] == {"title": "First", "html": "<p>one again</p>", "data": {"y": None}}
    assert report.sections[1]["data"] == {}


@pytest.mark.parametrize("title", ["", "   ", None, 3])
def test_bad_title_is_a_config_error(title) -> None:
    with pytest.raises(ConfigError, match="title"):
        _report().add_section(title, "<p>x</p>")


def test_bad_html_or_data_is_a_config_error() -> None:
    report = _report()
    with pytest.raises(ConfigError, match="html"):
        report.add_section("A", None)
    with pytest.raises(ConfigError, match="dict"):
        report.add_section("A", "<p/>", data=[1, 2])
    with pytest.raises(ConfigError, match="JSON"):
        report.add_section("A", "<p/>", data={"f": object()})
    assert report.sections == []


def test_sections_round_trip_through_json(tmp_path) -> None:
    report = _report()
    report.add_section("Encoder ranking (logme)", "<p>x &amp; y</p>", {"rows": [{"a": 1.5}]})
    back = Report.from_json(report.to_json(tmp_path / "r.json"))
    assert back.sections == report.sections
    assert back.to_dict() == report.to_dict()


def test_old_json_without_sections_loads(tmp_path) -> None:
    path = tmp_path / "old.json"
    data = _report().to_dict()
    del data["sections"]
    path.write_text(json.dumps(data), encoding="utf-8")
    back = Report.from_json(path)
    assert back.sections == []
    assert back.summary == data["summary"]


def test_sections_from_the_constructor_are_checked() -> None:
    with pytest.raises(ConfigError, match="title"):
        Report("classification", sections=[{"title": "", "html": "<p/>"}])
    report = Report("classification", sections=[{"title": "T", "html": "<b>h</b>"}])
    assert report.sections == [{"title": "T", "html": "<b>h</b>", "data": {}}]


def test_html_shows_sections_after_summary_and_before_methods() -> None:
    report = _report()
    report.add_section("Rank <1> & co", '<p id="frag">fragment <b>kept</b></p>')
    report.add_section("Another", "<p>second</p>")
    page = render_html(report)
    title = page.index("<h2>Rank &lt;1&gt; &amp; co</h2>")
    fragment = page.index('<p id="frag">fragment <b>kept</b></p>')
    assert page.index("<h2>Summary</h2>") < title < fragment < page.index("<p>second</p>")
    assert page.index("<p>second</p>") < page.index("<h2>Methods</h2>")
    assert "Rank <1>" not in page


def test_page_without_sections_is_unchanged() -> None:
    assert '<section class="extra">' not in render_html(_report())


def test_figure_html_embeds_a_png_and_closes_the_figure() -> None:
    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([0, 1], [1, 0])
    text = figure_html(fig, 'a "quoted" alt')
    assert text.startswith('<img alt="a &quot;quoted&quot; alt" src="data:image/png;base64,iVBOR')
    assert fig.axes == []


def test_figure_html_forgets_a_pyplot_figure() -> None:
    import matplotlib.pyplot as plt

    fig = plt.figure()
    number = fig.number
    figure_html(fig, "x")
    assert number not in plt.get_fignums()
