"""tools.app_load_bench without a browser: its arguments, the pages it opens, its JSON."""

from __future__ import annotations

import json

import pytest

from tools.app_load_bench import WARM_UP_SEED, parse_args, session_urls, summary

URL = "http://127.0.0.1:5006/app"


def test_arguments_and_their_defaults():
    args = parse_args([])
    assert args.sessions == [1, 4, 8, 16] and not args.distinct_seeds and args.workers is None
    assert parse_args(["--workers", "0", "2"]).workers == [0, 2] and not args.nice_browsers
    assert parse_args(["--nice-browsers"]).nice_browsers
    args = parse_args(["--sessions", "2", "8", "--distinct-seeds", "--timeout", "60"])
    assert (args.sessions, args.distinct_seeds, args.timeout) == ([2, 8], True, 60.0)
    with pytest.raises(SystemExit):
        parse_args(["--sessions", "0"])


def test_identical_pages_by_default_one_seed_each_otherwise():
    assert session_urls(URL, 3, distinct_seeds=False) == [URL] * 3
    distinct = session_urls(URL, 3, distinct_seeds=True)
    assert distinct == [f"{URL}?seed=1", f"{URL}?seed=2", f"{URL}?seed=3"]
    assert f"{URL}?seed={WARM_UP_SEED}" not in distinct  # nothing left to replay


def test_the_summary_is_json_with_the_worst_of_each_measure():
    sessions = [
        {"controls_s": 1.0, "first_frame_s": 2.0, "rollout_s": 9.0, "status": "done: 40 …"},
        {"controls_s": 3.0, "first_frame_s": None, "rollout_s": 5.0, "status": "done: 40 …"},
        {"error": "TimeoutError: …"},
    ]
    result = json.loads(json.dumps(summary(3, sessions, {"idle": 500.0})))
    assert result["worst"] == {"controls_s": 3.0, "first_frame_s": 2.0, "rollout_s": 9.0}
    assert result["all_done"] is False and result["shared"] == 0
    assert result["memory_mb"] == {"idle": 500.0}
