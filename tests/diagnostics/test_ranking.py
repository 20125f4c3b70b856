"""Ranking: order, tables, JSON, agreement with fine-tuning, plot, HTML section."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy import stats

from medtransfer.diagnostics.ranking import METHOD_DESCRIPTIONS, Ranking
from medtransfer.errors import ConfigError
from medtransfer.evaluation.report.html_page import render_html
from medtransfer.evaluation.report.report import Report


def _ranking(method: str = "logme") -> Ranking:
    rows = [
        {"candidate": "resnet18", "score": -0.91, "feature_dim": 512, "n_samples": 200,
         "seconds": 3.21},
        {"candidate": "vit_tiny · 3D", "status": "skipped", "reason": "out of memory"},
        {"candidate": "tf_efficientnet_lite0", "score": np.float32(-0.42), "feature_dim": 1280,
         "n_samples": 200, "seconds": 5.0},
        {"candidate": "densenet121", "status": "skipped", "reason": "no weights offline"},
        {"candidate": "convnext_atto", "score": 1.23456789, "feature_dim": 320, "n_samples": 200,
         "seconds": 12.345},
    ]  # fmt: skip
    return Ranking(method, "classification", rows, {"n_cases": 40, "max_samples": 200})


def test_rows_sorted_best_first_with_skipped_last_in_given_order() -> None:
    ranking = _ranking()
    assert [r["candidate"] for r in ranking.rows] == [
        "convnext_atto", "tf_efficientnet_lite0", "resnet18", "vit_tiny · 3D", "densenet121",
    ]  # fmt: skip
    assert [r["status"] for r in ranking.rows] == ["ok"] * 3 + ["skipped"] * 2
    assert ranking.best == "convnext_atto"
    assert list(ranking.scores) == ["convnext_atto", "tf_efficientnet_lite0", "resnet18"]
    assert ranking.scores["tf_efficientnet_lite0"] == pytest.approx(-0.42)
    assert isinstance(ranking.scores["tf_efficientnet_lite0"], float)
    # every row has every column; the method is filled in
    assert ranking.rows[3] == {"candidate": "vit_tiny · 3D", "score": None, "method": "logme",
                               "feature_dim": None, "n_samples": None, "seconds": None,
                               "status": "skipped", "reason": "out of memory"}  # fmt: skip


def test_non_finite_score_becomes_skipped_and_all_skipped_has_no_best() -> None:
    ranking = Ranking("h_score", "segmentation", [{"candidate": "a", "score": float("nan")}])
    assert ranking.rows[0]["status"] == "skipped"
    assert ranking.rows[0]["reason"] == "score is not finite"
    assert ranking.best is None and ranking.scores == {}
    assert "<img" not in ranking.html_section()  # nothing to plot


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("logme", "detection", []), "task"),
        (("", "segmentation", []), "method"),
        (("logme", "segmentation", [{"score": 1.0}]), "candidate"),
        (("logme", "segmentation", [{"candidate": "a", "score": 1.0, "status": "done"}]), "status"),
        (("logme", "segmentation", [{"candidate": "a", "score": 1.0}] * 2), "more than once"),
    ],
)
def test_bad_arguments_are_config_errors(args, match) -> None:
    with pytest.raises(ConfigError, match=match):
        Ranking(*args)


def test_repr_and_markdown_name_every_candidate_and_reason() -> None:
    ranking = _ranking()
    text = repr(ranking)
    markdown = ranking.to_markdown()
    for row in ranking.rows:
        assert row["candidate"] in text and row["candidate"] in markdown
    for reason in ("out of memory", "no weights offline"):
        assert reason in text and reason in markdown
    lines = text.splitlines()
    assert lines[0] == "Ranking by logme (classification): 5 candidates, 2 skipped"
    assert lines[2].split() == ["1", "convnext_atto", "1.235", "320", "12.3", "ok"]
    column = lines[1].index("score")  # fixed width: every score starts under its header
    assert [line[column:].split()[0] for line in lines[2:]] == [
        "1.235", "-0.42", "-0.91", "–", "–",
    ]  # fmt: skip
    md = markdown.splitlines()
    assert md[0] == "| # | candidate | score | feature dim | seconds | status |"
    assert md[1] == "|---|---|---|---|---|---|"
    assert md[2] == "| 1 | convnext_atto | 1.235 | 320 | 12.3 | ok |"
    assert md[-1] == "| – | densenet121 | – | – | – | skipped: no weights offline |"
    assert len(md) == 2 + len(ranking.rows)


def test_markdown_escapes_pipes() -> None:
    ranking = Ranking("leep", "segmentation", [{"candidate": "a|b", "score": 0.5}])
    assert "| a\\|b |" in ranking.to_markdown()


def test_to_frame_has_one_row_per_candidate_in_order() -> None:
    frame = _ranking().to_frame()
    pd = pytest.importorskip("pandas")
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["candidate"])[0] == "convnext_atto"
    assert list(frame.columns[:3]) == ["candidate", "score", "method"]
    assert len(frame) == 5


def test_json_round_trip_is_equal(tmp_path) -> None:
    ranking = _ranking()
    path = ranking.to_json(tmp_path / "sub" / "ranking.json")
    assert Ranking.from_json(path) == ranking
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["method"] == "logme" and data["metadata"]["n_cases"] == 40
    assert data == ranking.to_dict()


def test_from_json_of_another_file_is_a_config_error(tmp_path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"task": "segmentation"}', encoding="utf-8")
    with pytest.raises(ConfigError, match="Ranking JSON"):
        Ranking.from_json(path)


def _scored(scores: dict[str, float]) -> Ranking:
    rows = [{"candidate": c, "score": s} for c, s in scores.items()]
    return Ranking("linear_probe", "classification", rows)


def test_agreement_perfect_and_reversed_order() -> None:
    ranking = _scored({"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4})
    same = ranking.agreement({"a": 0.5, "b": 0.6, "c": 0.7, "d": 0.8})
    assert same["spearman_rho"] == pytest.approx(1.0)
    assert same["kendall_tau"] == pytest.approx(1.0)
    assert same["n"] == 4 and same["top_match"] is True and same["left_out"] == []
    assert same["reason"] is None
    reverse = ranking.agreement({"a": 0.8, "b": 0.7, "c": 0.6, "d": 0.5})
    assert reverse["spearman_rho"] == pytest.approx(-1.0)
    assert reverse["kendall_tau"] == pytest.approx(-1.0)
    assert reverse["top_match"] is False
    # lower-is-better metrics (HD95) flip the sign
    flipped = ranking.agreement({"a": 9.0, "b": 7.0, "c": 5.0, "d": 3.0}, higher_is_better=False)
    assert flipped["spearman_rho"] == pytest.approx(1.0) and flipped["top_match"] is True


def test_agreement_partial_case_matches_scipy_and_lists_left_out() -> None:
    scores = {"a": 3.0, "b": 1.0, "c": 4.0, "d": 1.5, "e": 9.0}
    rows = [{"candidate": c, "score": s} for c, s in scores.items()]
    rows.append({"candidate": "skipped-one", "status": "skipped", "reason": "oom"})
    ranking = Ranking("logme", "segmentation", rows)
    tuned = {"a": 0.70, "b": 0.72, "c": 0.81, "d": 0.60, "skipped-one": 0.9, "f": 0.5,
             "e": float("nan")}  # fmt: skip
    out = ranking.agreement(tuned)
    common = ["a", "b", "c", "d"]
    x = [scores[c] for c in common]
    y = [tuned[c] for c in common]
    assert out["n"] == 4
    assert out["spearman_rho"] == pytest.approx(stats.spearmanr(x, y)[0])
    assert out["kendall_tau"] == pytest.approx(stats.kendalltau(x, y)[0])
    assert out["spearman_rho"] == pytest.approx(0.4)  # ranks (3,1,4,2) vs (2,3,4,1)
    assert out["top_match"] is True  # c: best score among the common ones and best fine-tuned
    assert sorted(out["left_out"]) == ["e", "f", "skipped-one"]


def test_agreement_with_fewer_than_three_common_gives_a_reason() -> None:
    out = _scored({"a": 1.0, "b": 2.0, "c": 3.0}).agreement({"a": 0.9, "b": 0.1, "z": 0.5})
    assert out["n"] == 2 and out["spearman_rho"] is None and out["kendall_tau"] is None
    assert "at least 3" in out["reason"]
    assert out["top_match"] is False
    assert out["left_out"] == ["c", "z"]
    constant = _scored({"a": 1.0, "b": 2.0, "c": 3.0}).agreement({"a": 0.5, "b": 0.5, "c": 0.5})
    assert constant["spearman_rho"] is None and "equal" in constant["reason"]


def test_plot_has_one_bar_per_ok_row_best_on_top() -> None:
    fig = _ranking().plot()
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.patches) == 3
    labels = [t.get_text() for t in ax.get_yticklabels()]
    positions = list(ax.get_yticks())
    top = labels[int(np.argmax(positions))]
    assert top == "convnext_atto"
    assert "vit_tiny · 3D" in ax.get_title() and "densenet121" in ax.get_title()
    widths = sorted(p.get_width() for p in ax.patches)
    assert widths == pytest.approx(sorted(_ranking().scores.values()))


@pytest.mark.parametrize("method", sorted(METHOD_DESCRIPTIONS))
def test_html_section_has_the_description_table_and_image(method) -> None:
    text = _ranking(method).html_section()
    assert "higher is better" in text
    assert "<table>" in text and text.count("<tr>") == 1 + 5
    assert text.count("<img") == 1
    assert "vit_tiny · 3D" in text and "out of memory" in text
    assert METHOD_DESCRIPTIONS[method].split(":")[0] in text


def test_html_section_escapes_candidate_names() -> None:
    text = Ranking("logme", "segmentation", [{"candidate": "<x>", "score": 1.0}]).html_section()
    assert "&lt;x&gt;" in text and "<x>" not in text


def test_add_to_puts_a_section_into_a_report_that_renders(tmp_path) -> None:
    report = Report("classification", metadata={"class_names": ["benign", "malignant"]})
    ranking = _ranking()
    ranking.add_to(report)
    ranking.add_to(report)  # replaced, not duplicated
    assert [s["title"] for s in report.sections] == ["Encoder ranking (logme)"]
    assert report.sections[0]["data"] == ranking.to_dict()
    page = render_html(report)
    assert "<h2>Encoder ranking (logme)</h2>" in page and "convnext_atto" in page
    assert page.index("Encoder ranking (logme)") < page.index("<h2>Methods</h2>")
    back = Report.from_json(report.to_json(tmp_path / "report.json"))
    assert Ranking(**back.sections[0]["data"]) == ranking
    assert ranking._repr_html_().startswith("<div><p>")


def test_agreement_accepts_the_short_candidate_names():
    from medtransfer.diagnostics import Ranking, as_candidate

    names = ["resnet18:random", "resnet18", "resnet18:2.5d"]
    rows = [{"candidate": as_candidate(n).name, "score": s} for n, s in zip(names, (1.0, 2.0, 3.0))]
    result = Ranking("logme", "segmentation", rows).agreement(dict(zip(names, (0.1, 0.2, 0.3))))
    assert result["n"] == 3 and result["spearman_rho"] == pytest.approx(1.0)
    assert result["left_out"] == []
