"""ExplorerState: menus from the zoo, consistency, URL parsing and validation, job requests."""

from __future__ import annotations

import pytest
from app_zoo import BROKEN

from app.state import DEFAULT_COMPARE_SAMPLERS, ExplorerState, ZooMenus, sampler_names
from app.url import accepted
from engine.diffusion.samplers import SAMPLERS


@pytest.fixture
def state(tiny_zoo):
    return ExplorerState(ZooMenus(tiny_zoo))


def test_menus_come_from_the_zoos_usable_emulators(tiny_zoo):
    menus = ZooMenus(tiny_zoo)
    assert menus.systems() == ["kolmogorov", "rayleigh_benard"]
    assert menus.rates("rayleigh_benard") == [8, 16, "pixel"]
    assert menus.kinds("rayleigh_benard", 8) == ["diffusion", "deterministic"]
    assert menus.kinds("rayleigh_benard", 16) == ["diffusion"]
    assert menus.kinds("rayleigh_benard", "pixel") == ["deterministic"]
    assert menus.rates("kolmogorov") == [6]
    # the broken entry is reported, and its rate is not offered
    assert list(menus.problems) == [BROKEN]
    assert "missing" in menus.problems[BROKEN]


def test_sampler_menu_is_the_registry_without_aliases():
    names = sampler_names()
    assert "ab" in names and "lms" not in names  # lms is the same class as ab
    assert {SAMPLERS[n] for n in names} == set(SAMPLERS.values())


def test_defaults_follow_the_zoo_and_the_system(state):
    assert (state.system, state.rate, state.kind) == ("rayleigh_benard", 8, "diffusion")
    assert state.param.rate.objects == [8, 16, "pixel"]
    assert state.field == "buoyancy"
    assert state.conditions == {"Rayleigh": 1e6, "Prandtl": 1.0}
    assert state.param.context.bounds == (1, 2)  # window 3 in the tiny zoo
    assert state.param.horizon.bounds == (1, 100)  # 101 frames per trajectory
    assert (state.sampler, state.steps, state.members, state.horizon) == ("ab", 16, 8, 40)
    assert state.param.time_index.bounds == (0, 39)


def test_changing_the_system_rederives_everything(state):
    state.param.update(field="pressure", member=7)
    state.system = "kolmogorov"
    assert state.param.rate.objects == [6] and state.rate == 6
    assert state.kind == "deterministic"  # the only kind there
    assert state.field == "vorticity"  # Kolmogorov has no pressure
    assert state.conditions == {"Reynolds": 250.0}
    state.field = "velocity_y"
    state.system = "rayleigh_benard"
    assert state.field == "velocity_y"  # both have it: kept
    assert state.conditions == {"Rayleigh": 1e6, "Prandtl": 1.0}
    state.system = "kolmogorov"
    state.members = 2
    assert state.member == 1 and state.param.member.bounds == (0, 1)
    state.horizon = 3
    assert state.param.time_index.bounds == (0, 2)


def test_rate_without_the_kind_falls_back_to_an_available_kind(state):
    state.kind = "deterministic"
    state.rate = 16
    assert state.kind == "diffusion"
    state.rate = "pixel"
    assert state.kind == "deterministic"


def test_a_good_query_reproduces_the_state(state):
    other = ExplorerState(state.menus)
    state.param.update(
        rate=16,
        members=4,
        seed=7,
        horizon=12,
        field="pressure",
        compare="samplers",
        compare_samplers=["ddim/8", "heun/4"],
        mosaic=False,
        member=2,
        reference=False,
    )
    assert state.set_condition("Rayleigh", 2e6) is None
    query = state.to_query()
    assert query["rate"] == "16" and query["Rayleigh"] == "2e+06"
    assert query["compare_samplers"] == '["ddim/8", "heun/4"]' and query["mosaic"] == "False"
    assert other.apply_query(query) == []
    for name in (
        "system",
        "rate",
        "kind",
        "members",
        "seed",
        "horizon",
        "field",
        "compare",
        "compare_samplers",
        "mosaic",
        "member",
        "reference",
        "conditions",
    ):
        assert getattr(other, name) == getattr(state, name), name
    assert other.apply_query({"compare_samplers": "ab/4,euler/8"}) == []
    assert other.compare_samplers == ["ab/4", "euler/8"]


def test_a_repeated_sampler_in_the_url_is_compared_once(state):
    assert state.apply_query({"compare": "samplers", "compare_samplers": "ab/4,ab/4,euler/8"}) == []
    request, _ = state.request()
    assert len(request.compare_keys) == len(set(request.compare_keys)) == 2


def test_query_values_parsed_by_panel_are_accepted(state):
    # panel's parse_query turns digits into ints and numbers into floats
    assert state.apply_query({"rate": 16, "members": 3, "Prandtl": 2.0, "kind": "diffusion"}) == []
    assert (state.rate, state.members, state.conditions["Prandtl"]) == (16, 3, 2.0)


@pytest.mark.parametrize(
    ("query", "name", "kept", "says"),
    [
        ({"system": "navier_stokes"}, "system", "rayleigh_benard", "navier_stokes"),
        ({"rate": "999"}, "rate", 8, "999"),
        ({"rate": "16", "kind": "deterministic"}, "kind", "diffusion", "deterministic"),
        ({"members": "1000"}, "members", 8, "1000"),
        ({"members": "2.5"}, "members", 8, "an integer in [1, "),
        ({"steps": "many"}, "steps", 16, "many"),
        ({"horizon": "0"}, "horizon", 40, "horizon"),
        ({"sampler": "rk45"}, "sampler", "ab", "rk45"),
        ({"field": "temperature"}, "field", "buoyancy", "temperature"),
        ({"mosaic": "maybe"}, "mosaic", True, "maybe"),
        (
            {"compare_samplers": "rk45/4"},
            "compare_samplers",
            list(DEFAULT_COMPARE_SAMPLERS),
            "rk45/4",
        ),
        (
            {"compare_samplers": "[broken"},
            "compare_samplers",
            list(DEFAULT_COMPARE_SAMPLERS),
            "broken",
        ),
    ],
)
def test_bad_query_values_are_reported_and_leave_a_sane_state(state, query, name, kept, says):
    warnings = state.apply_query(query)
    assert len(warnings) == 1 and says in warnings[0] and name in warnings[0]
    assert accepted(state.param[name]) in warnings[0]  # and what would have been valid
    assert getattr(state, name) == kept
    request, _ = state.request()  # still a runnable job
    assert request.main.emulator in {e.name for e in state.menus.zoo.available()}


def test_a_refused_value_names_the_valid_choices_of_the_moment(state):
    """The valid rates depend on the system: the message lists the current ones."""
    (warning,) = state.apply_query({"system": "mars"})
    assert f"valid: {', '.join(state.param.system.objects)}" in warning
    (warning,) = state.apply_query({"rate": "999"})
    assert f"valid: {', '.join(str(r) for r in state.param.rate.objects)}" in warning
    (warning,) = state.apply_query({"horizon": "0"})
    low, high = state.param.horizon.bounds
    assert f"valid: an integer in [{low}, {high}]" in warning


def test_conditions_outside_the_valid_range_are_refused_but_ood_is_allowed(state):
    warnings = state.apply_query({"Rayleigh": "1e12", "Prandtl": "5"})
    assert len(warnings) == 1 and "Rayleigh" in warnings[0] and "[1000, 1e+07]" in warnings[0]
    assert state.conditions == {"Rayleigh": 1e6, "Prandtl": 5.0}
    assert state.out_of_distribution() == ["Prandtl"]  # trained on 0.5 - 2, valid to 10
    assert "no condition" in state.set_condition("Reynolds", 100.0)


def test_request_has_the_main_series_and_the_other_kind(state):
    state.param.update(members=3, steps=2, sampler="euler", horizon=6)
    request, notes = state.request()
    assert notes == []
    main, reference = request.series
    assert (main.emulator, main.members, main.sampler, main.steps) == (
        "rayleigh_benard-diffusion-ae8",
        3,
        "euler",
        2,
    )
    assert (reference.key, reference.emulator, reference.members) == (
        "reference",
        "rayleigh_benard-deterministic-ae8",
        1,
    )
    assert (request.horizon, request.context, request.seed) == (6, 1, 0)
    state.reference = False
    assert len(state.request()[0].series) == 1


def test_rate_comparison_rows_reuse_the_main_run(state):
    state.param.update(compare="rates", reference=False)
    request, _ = state.request()
    assert request.compare_keys == ("main", "rate:16")  # no pixel-space diffusion model
    assert [s.emulator for s in request.series] == [
        "rayleigh_benard-diffusion-ae8",
        "rayleigh_benard-diffusion-ae16",
    ]


def test_sampler_comparison_rows(state):
    state.param.update(
        compare="samplers", compare_samplers=["ab/16", "ddim/8", "heun/4"], reference=False
    )
    request, _ = state.request()
    assert request.compare_keys == ("main", "sampler:ddim/8", "sampler:heun/4")
    assert [(s.sampler, s.steps) for s in request.series[1:]] == [("ddim", 8), ("heun", 4)]
    state.rate = "pixel"  # deterministic only: nothing to compare, and the user is told
    request, notes = state.request()
    assert request.compare_keys == () and "diffusion" in notes[0]


def test_an_empty_zoo_gives_an_unavailable_state(tmp_path):
    from engine.zoo import load_zoo

    state = ExplorerState(ZooMenus(load_zoo(tmp_path)))
    assert not state.available and state.system is None
    assert state.apply_query({"system": "rayleigh_benard"})  # reported, nothing breaks
