"""Every lesson's state loads without a warning and runs on the shipped zoo (at a short
horizon, to stay fast); lessons start from a clean state."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from app.lessons import BASE, LESSONS, apply_lesson, lesson
from app.runner import Runner
from app.shell import TABS
from app.state import QUERY_PARAMS, ExplorerState, ZooMenus
from app.store import RunStore
from engine.zoo import load_zoo

SHORT = 4  # leads per lesson run here (one emulator call); the lessons use more


@pytest.fixture(scope="module")
def shipped_zoo():
    zoo = load_zoo()
    assert not zoo.problems, zoo.problems
    return zoo


def test_there_are_five_to_seven_lessons_covering_the_topics():
    assert 5 <= len(LESSONS) <= 7
    assert [item.key for item in LESSONS] == [
        "emulator",
        "compression",
        "ensemble",
        "calibration",
        "out-of-distribution",
        "samplers",
        "cost",
    ]
    for item in LESSONS:
        assert item.tab in TABS and item.text and item.expect
        assert set(item.full_query()) - {
            "Rayleigh",
            "Prandtl",
            "Reynolds",
            "gamma",
            "boundary",
        } <= set(QUERY_PARAMS)


@pytest.mark.parametrize("key", [item.key for item in LESSONS])
def test_each_lesson_loads_and_runs_on_the_shipped_zoo(shipped_zoo, key):
    item = lesson(key)
    state = ExplorerState(ZooMenus(shipped_zoo))
    assert apply_lesson(state, item) == []  # every value of the lesson's URL is accepted
    query = item.full_query()
    applied = {key: value.lower() for key, value in state.to_query().items()}
    assert (
        applied.items()
        >= {k: v for k, v in query.items() if k not in ("compare_samplers", "Rayleigh")}.items()
    )
    state.horizon = SHORT
    request, notes = state.request()
    assert notes == []
    short = dataclasses.replace(request, horizon=SHORT)
    store = RunStore()
    asyncio.run(Runner(store, zoo=lambda: shipped_zoo).run(short))
    assert store.status.startswith("done"), store.status
    for series in store.series.values():
        assert series.ready == SHORT, (series.spec.label, series.status)
    expected_rows = {"compression": 4, "samplers": 4}.get(key)  # 3 rates + pixel
    if expected_rows:
        assert len(request.compare_keys) == expected_rows


def test_a_lesson_resets_what_an_earlier_one_changed(shipped_zoo):
    state = ExplorerState(ZooMenus(shipped_zoo))
    apply_lesson(state, lesson("out-of-distribution"))
    assert state.out_of_distribution() == ["Rayleigh"]
    apply_lesson(state, lesson("samplers"))
    assert state.compare == "samplers"
    apply_lesson(state, lesson("emulator"))
    assert state.out_of_distribution() == [] and state.compare == "none"
    assert state.members == int(BASE["members"])


def test_docs_lessons_has_every_step_with_its_text_and_link():
    from pathlib import Path
    from urllib.parse import urlencode

    page = (Path(__file__).resolve().parents[2] / "docs" / "lessons.md").read_text()
    for item in LESSONS:
        assert f"## {item.title}" in page and item.expect in page
        assert urlencode(item.full_query()) in page
