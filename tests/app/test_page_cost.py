"""tools.page_cost without a browser: its arguments and how it sums the page layouts (the
layout counter itself runs in chromium in tests/app/test_browser.py)."""

from __future__ import annotations

import pytest

from tools.page_cost import layouts_by_origin, parse_args, summary


def test_arguments_and_their_defaults():
    args = parse_args([])
    assert (args.repeats, args.assets, args.output) == (3, None, None)
    assert parse_args(["--repeats", "1", "--timeout", "30"]).timeout == 30.0
    with pytest.raises(SystemExit):
        parse_args(["--repeats", "0"])


def test_layouts_are_counted_and_timed_by_what_started_them_dearest_first():
    layouts = [
        ["Figure#ls-image.ls-view-truth", 300.0, 10.0],
        ["panel.models.markup.HTML#markdown.ls-status", 5.0, 20.0],
        ["Figure#ls-image.ls-view-truth", 250.5, 30.0],
    ]
    assert layouts_by_origin(layouts) == {
        "Figure#ls-image.ls-view-truth": {"count": 2, "ms": 550.5},
        "panel.models.markup.HTML#markdown.ls-status": {"count": 1, "ms": 5.0},
    }
    assert layouts_by_origin([]) == {}


def test_the_summary_is_the_median_page():
    pages = [
        {
            "controls_s": c,
            "rollout_s": r,
            "main_thread_s": m,
            "script_s": 1.0,
            "style_s": 0.5,
            "layout_s": 0.1,
            "page_layouts": n,
            "page_layout_s": 0.4,
        }
        for c, r, m, n in [(1.0, 10.0, 4.0, 7), (3.0, 12.0, 5.0, 8), (2.0, 11.0, 9.0, 7)]
    ]
    result = summary(pages)
    assert (result["controls_s"], result["rollout_s"], result["main_thread_s"]) == (2.0, 11.0, 5.0)
    assert result["page_layouts"] == 7
