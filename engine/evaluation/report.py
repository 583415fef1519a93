"""results.json and the Markdown report (the paper's table layout, then the details).

The JSON holds everything measured (per field, per bucket, per lead, card checks); the
Markdown is what a reader compares with the paper: per system one table with a row per
method, a column per lead bucket and the rates side by side in each cell ("a / b / c"),
as in the paper's results tables (arXiv:2507.02608), followed by the paper's own table
and the details.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.data.atomic import atomic_open
from engine.emulator.base import KINDS
from engine.evaluation.findings import Finding, find_model, rollout_vrmse, skill
from engine.evaluation.paper import PAPER, PaperTable
from engine.metrics import calibrated_coverage
from engine.rollout import COVERAGE_LEVELS

FORMAT = "latentsim-evaluation"
FORMAT_VERSION = 2  # 2: coverage per bucket, the `shift` object of each system
METRIC_CONVENTIONS = (
    "VRMSE = RMSE of the ensemble mean / spatial standard deviation of the truth "
    "(population variance, eps 1e-6), per trajectory, field and frame, in physical units; "
    "then averaged over trajectories, the bucket's leads and the fields. Spread-skill ratio "
    "= (spread + 1e-3) / (RMSE + 1e-3) with the finite-ensemble spread, averaged the same "
    "way. Fair CRPS per field in the field's units. Spectral errors: RMS relative error of "
    "the isotropic power spectrum (members averaged) in log2-spaced low / mid / high bands "
    "(engine.metrics). Skill over persistence = 1 − VRMSE / VRMSE of persistence (the last "
    "context frame repeated), from the bucket means: 0 as good as persistence, 1 perfect, "
    "< 0 worse. Coverage (ensembles) = fraction of truth values (grid points, fields, "
    "trajectories, the bucket's leads) inside the members' central 50 % / 90 % interval "
    "(Weibull quantiles), next to the level a calibrated ensemble of that size reaches. "
    "Shift ratio = VRMSE averaged over trajectories, fields and every lead on the test "
    "trajectories re-run out of the training range / the same on the stored ones."
)
# Rows of the paper-layout table: label, space, method.
ROWS = (
    ("diffusion", "latent", "diffusion"),
    ("deterministic", "latent", "deterministic"),
    ("pixel deterministic", "pixel", "deterministic"),
    ("pixel diffusion", "pixel", "diffusion"),
)


def document(
    run: Mapping[str, Any],
    settings: Mapping[str, Any],
    systems: Mapping[str, Any],
    findings: Sequence[Finding],
) -> dict[str, Any]:
    """The whole of results.json."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "run": dict(run),
        "settings": dict(settings),
        "metric_conventions": METRIC_CONVENTIONS,
        "systems": dict(systems),
        "findings": [finding.record() for finding in findings],
    }


def json_safe(value: Any) -> Any:
    """Non-finite floats become None (JSON has no NaN); tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def write_json(data: Mapping[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as handle:
        handle.write(json.dumps(json_safe(data), indent=1, allow_nan=False) + "\n")
    return path


def write_markdown(text: str, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as handle:
        handle.write(text)
    return path


# -- formatting ----------------------------------------------------------------------------
def _f(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _score(record: Mapping[str, Any] | None, bucket: str, score: str = "vrmse") -> str:
    """A bucket's mean over fields; "div." where a diverged rollout left it undefined."""
    if record is None:
        return "—"
    value = record["buckets"][bucket].get(score)
    if value is None:
        return "div." if record.get("status") == "diverged" else "—"
    return _f(value["mean"])


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


# -- the per-system tables --------------------------------------------------------------
Cell = Callable[[Mapping[str, Any] | None, str], str]


def paper_layout(
    name: str, system: Mapping[str, Any], cell: Cell = _score, persistence: bool = True
) -> list[str]:
    """Method rows x bucket columns; latent cells list the rates lowest first. `cell`
    formats a record's bucket (default its mean VRMSE)."""
    buckets = [b["name"] for b in system["buckets"]]
    rates = system["rates"]
    header = [name, "CR", *(f"{b['leads'][0]}–{b['leads'][1]}" for b in system["buckets"])]
    rows = []
    for label, space, method in ROWS:
        if space == "latent":
            found = [find_model(system, "emulator", method, space, r) for r in rates]
            if not any(model for model, _ in found):
                continue
            cells = [" / ".join(cell(record, b) for _, record in found) for b in buckets]
            rows.append([label, " / ".join(map(str, rates)), *cells])
        else:
            model, record = find_model(system, "emulator", method, space, None)
            if model:
                rows.append([label, "—", *(cell(record, b) for b in buckets)])
    floors = [find_model(system, "autoencoder", None, None, r)[1] for r in rates]
    linear = [None if f is None else f.get("linear_code") for f in floors]
    for label, records in (("autoencoder floor", floors), ("linear code (DCT)", linear)):
        rows.append(
            [
                label,
                " / ".join(map(str, rates)),
                *(" / ".join(cell(r, b) for r in records) for b in buckets),
            ]
        )
    if persistence:
        rows.append(["persistence", "—", *(cell(system["persistence"], b) for b in buckets)])
    return _table(header, rows)


def skill_layout(name: str, system: Mapping[str, Any]) -> list[str]:
    """`paper_layout` of the skill over persistence (findings.skill)."""

    def cell(record: Mapping[str, Any] | None, bucket: str) -> str:
        value = skill(record, system["persistence"], bucket)
        return "—" if value is None else f"{value:+.3f}"

    return paper_layout(name, system, cell, persistence=False)


def coverage_table(system: Mapping[str, Any]) -> list[str]:
    """Each ensemble's interval coverage per bucket, beside the calibrated levels."""
    buckets = [b["name"] for b in system["buckets"]]
    ensembles = [(n, r) for n, r in system["models"].items() if r["members"] > 1]
    if not ensembles:
        return []
    levels = list(COVERAGE_LEVELS.items())
    header = [
        "model",
        "members",
        *(f"{p:.0%} coverage short / mid / long" for _, p in levels),
        "calibrated " + " / ".join(f"{p:.0%}" for _, p in levels),
    ]
    rows = [
        [
            f"`{name}`",
            str(record["members"]),
            *(" / ".join(_score(record, b, score) for b in buckets) for score, _ in levels),
            " / ".join(f"{calibrated_coverage(record['members'], p):.3f}" for _, p in levels),
        ]
        for name, record in ensembles
    ]
    return [
        "Interval coverage of the ensembles (fraction of truth values inside the members' "
        "central interval; calibrated = what an ensemble of that size reaches when the truth "
        "is exchangeable with its members):",
        "",
        *_table(header, rows),
        "",
    ]


def conditions_text(parameters: Mapping[str, Mapping[str, Any]]) -> str:
    """E.g. "Reynolds 1.58e+03 (training 100–500, valid 10–5e+03; label +2.43)"."""
    return "; ".join(
        f"{name} {p['value']:.4g} (training {p['train_range'][0]:g}–{p['train_range'][1]:g}, "
        f"valid {p['valid_range'][0]:g}–{p['valid_range'][1]:g}; emulator label "
        f"{p['label']:+.2f}, the training range being [−1, 1])"
        for name, p in parameters.items()
    )


def _ratio(inside: Mapping[str, Any], outside: Mapping[str, Any] | None) -> str:
    if outside is None:
        return "—"
    a, b = rollout_vrmse(inside), rollout_vrmse(outside)
    return "div." if math.isinf(a) or math.isinf(b) else f"{b / a:.3f}"


def shift_section(system: Mapping[str, Any]) -> list[str]:
    """The latent emulators on the test trajectories re-run out of the training range."""
    shift = system.get("shift")
    if shift is None:
        return []
    lines = [
        "Out of the training range: the same test trajectories (same seeds, hence initial "
        f"conditions) re-run by the solver with {conditions_text(shift['parameters'])}. "
        f"Rule: {shift['rule']}.",
        "",
    ]
    if shift["status"] != "ok":
        return [*lines, f"Not measured: {shift['status']}.", ""]
    buckets = [b["name"] for b in system["buckets"]]
    header = [
        "model",
        "VRMSE in range short / mid / long",
        "VRMSE out of range short / mid / long",
        "shift ratio (all leads)",
        "SSR in → out",
    ]
    rows = []
    pairs = [(n, system["models"][n], r) for n, r in shift["models"].items()]
    pairs.append(("persistence", system["persistence"], shift["persistence"]))
    for name, inside, outside in pairs:
        ssr_in, ssr_out = inside.get("ssr_rollout"), outside.get("ssr_rollout")
        rows.append(
            [
                name if name == "persistence" else f"`{name}`",
                " / ".join(_score(inside, b) for b in buckets),
                " / ".join(_score(outside, b) for b in buckets),
                _ratio(inside, outside),
                "—" if ssr_in is None else f"{ssr_in:.2f} → {_f(ssr_out, 2)}",
            ]
        )
    skipped = [f"- `{n}` not re-run: {why}" for n, why in shift.get("skipped", {}).items()]
    return [*lines, *_table(header, rows), "", *([*skipped, ""] if skipped else [])]


def paper_table(table: PaperTable) -> list[str]:
    rates = " / ".join(map(str, table.rates))
    rows = [
        [method, rates, *(_joined(bucket) for bucket in getattr(table, method))] for method in KINDS
    ]
    if table.pixel is not None:
        rows.append(["pixel deterministic", "—", *(f"{v:.3f}" for v in table.pixel)])
    rows.append(["autoencoder floor", rates, _joined(table.autoencoder), "", ""])
    return _table([f"paper: {table.dataset}", "CR", *table.buckets], rows)


def _joined_ints(values: Sequence[int]) -> str:
    return ", ".join(map(str, values))


def _joined(values: Sequence[float]) -> str:
    return " / ".join(f"{v:.3f}" for v in values)


def _card(check: Mapping[str, Any] | None) -> str:
    if not check:
        return "not run"
    compared = check.get("compared", {}).get("vrmse_mean")
    if compared is None:
        return check["status"]
    mark = "reproduced" if check["status"] == "reproduced" else "DIFFERS"
    return (
        f"{compared['card']:.3f} → {compared['remeasured']:.3f} "
        f"({compared['relative_difference']:+.1%}, {mark})"
    )


def _spectral(record: Mapping[str, Any]) -> str:
    return " / ".join(_score(record, "long", f"spectral_{band}") for band in ("low", "mid", "high"))


def details(system: Mapping[str, Any]) -> list[str]:
    """Per model: every bucket, calibration, CRPS, spectra at the long bucket, cost, card."""
    header = [
        "model",
        "members",
        "VRMSE short / mid / long",
        "SSR (rollout)",
        "fair CRPS, long",
        "spectral error low / mid / high, long",
        "s / frame",
        "card VRMSE: card → re-measured",
    ]
    rows = []
    buckets = [b["name"] for b in system["buckets"]]
    for name, record in system["models"].items():
        rows.append(
            [
                f"`{name}`",
                str(record["members"]),
                " / ".join(_score(record, b) for b in buckets),
                _f(record.get("ssr_rollout"), 2),
                _score(record, "long", "crps_fair"),
                _spectral(record),
                _f(record["seconds_per_frame"], 3),
                _card(record.get("card_check")),
            ]
        )
    for name, record in system["autoencoders"].items():
        linear = record.get("linear_code")
        labelled = [(f"`{name}` (reconstruction)", record)]
        if linear:
            code = f"{linear['coefficients_per_channel']} DCT coefficients per channel"
            labelled.append((f"linear code at ×{linear['rate']:.0f} ({code})", linear))
        for label, scored in labelled:
            rows.append(
                [
                    label,
                    "—",
                    " / ".join(_score(scored, b) for b in buckets),
                    "—",
                    "—",
                    _spectral(scored),
                    "—",
                    "—",
                ]
            )
    return _table(header, rows)


def _condition(values: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items()
    )


def per_trajectory(system: Mapping[str, Any]) -> list[str]:
    """Long-bucket VRMSE of every model on each test trajectory: the mean over trajectories
    in the tables above can be dominated by one, e.g. a field whose truth turns nearly
    uniform (VRMSE divides by its spatial standard deviation)."""
    records = [
        (name, r)
        for name, r in system["models"].items()
        if (r["buckets"]["long"].get("vrmse") or {}).get("by_trajectory")
    ]
    if not records:
        return []
    seeds = system.get("seeds") or list(range(system["trajectories"]))
    conditions = system.get("conditions") or [{}] * len(seeds)
    header = [
        "model",
        *(
            f"{seed} ({_condition(c)})" if c else str(seed)
            for seed, c in zip(seeds, conditions, strict=True)
        ),
    ]
    rows = [
        [f"`{name}`", *(_f(v, 2) for v in r["buckets"]["long"]["vrmse"]["by_trajectory"])]
        for name, r in records
    ]
    return [
        "Long-bucket VRMSE per test trajectory (columns: seed and conditions; the "
        "bucket mean above is the mean of a row):",
        "",
        *_table(header, rows),
        "",
    ]


def _divergences(system: Mapping[str, Any]) -> list[str]:
    lines = []
    for name, record in system["models"].items():
        for d in record.get("divergences", []):
            lines.append(
                f"- `{name}` diverged on test trajectory {d['trajectory']} "
                f"(seed {d['seed']}): member {d['member']} non-finite at lead "
                f"{d['lead']} in {', '.join(d['fields'])}"
            )
    return lines


def system_section(name: str, system: Mapping[str, Any], figure: str | None) -> list[str]:
    seeds = system.get("seeds") or []
    spans = ", ".join(
        f"{b['name']} {b['leads'][0]}–{b['leads'][1]} "
        f"(t = {b['lead_time'][0]:g}–{b['lead_time'][1]:g})"
        for b in system["buckets"]
    )
    lines = [
        f"## {name}",
        "",
        f"{system['trajectories']} of the {system['split_size']} test trajectories "
        f"(evenly spaced{f', seeds {_joined_ints(seeds)}' if seeds else ''}; "
        f"{system['frames_per_trajectory']} frames each), {system['context']} context "
        f"frame(s), {system['horizon']} leads. Lead buckets (stored frames after the last "
        f"context frame; simulation time in parentheses): {spans}. Rule: {system['bucket_rule']}.",
        "",
        "Mean VRMSE by lead bucket (cells: the rates in the CR column, in that order; "
        "— not evaluated, div. diverged):",
        "",
        *paper_layout(name, system),
        "",
        "Skill over persistence by lead bucket, 1 − VRMSE / VRMSE of persistence (> 0 "
        "better than repeating the last context frame, 1 perfect; — not evaluated or "
        "diverged):",
        "",
        *skill_layout(name, system),
        "",
    ]
    if name in PAPER:
        lines += [
            "The paper's numbers (its own buckets; autoencoder floor at its short bucket):",
            "",
            *paper_table(PAPER[name]),
            "",
        ]
    lines += [
        "Details (means over fields; fair CRPS only for ensembles, in the fields' "
        "units; spectral errors at the long bucket):",
        "",
        *details(system),
        "",
        *coverage_table(system),
        *per_trajectory(system),
        *shift_section(system),
    ]
    divergences = _divergences(system)
    if divergences:
        lines += ["Diverged rollouts:", "", *divergences, ""]
    if system.get("missing"):
        lines += ["Not evaluated:", ""]
        lines += [f"- `{model}`: {role['reason']}" for model, role in system["missing"].items()]
        lines.append("")
    if figure:
        lines += [f"![VRMSE and spread-skill against lead time, {name}]({figure})", ""]
    return lines


def findings_section(findings: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["## Findings", ""]
    lines += _table(
        ["#", "finding", "verdict"],
        [[str(f["number"]), f["title"], f"**{f['statement']}**"] for f in findings],
    )
    lines.append("")
    for f in findings:
        lines += [
            f"### {f['number']}. {f['title']}: {f['statement']}",
            "",
            f"Definition: {f['definition']}",
            "",
        ]
        rows = []
        for system, s in f["systems"].items():
            verdict = s["verdict"]
            missing = sorted({m for c in s["checks"] for m in c["missing"]})
            if missing:
                verdict += f" (missing: {', '.join(missing)})"
            rows.append([system, s["measured"], s["paper"], verdict])
        lines += _table(["system", "measured", "paper", "verdict"], rows)
        lines.append("")
    return lines


def markdown(data: Mapping[str, Any], figures: Mapping[str, str] | None = None) -> str:
    """The report of a results.json document; `figures`: system -> relative PNG path."""
    run, settings = data["run"], data["settings"]
    machine = run["machine"]
    sampler = ", ".join(f"{k} {v}" for k, v in settings["sampler_options"].items())
    shifted = (
        "; the latent emulators also on the test trajectories re-run out of the training range"
        if settings.get("shift")
        else ""
    )
    lines = [
        "# Emulators on held-out test trajectories",
        "",
        f"Produced by `{run['command']}` on {run['date']} in {run['wall_time_s']:.0f} s "
        f"(machine: {machine['cpu_count']} CPUs, {machine['platform']}, Python "
        f"{machine['python']}, torch {machine['torch']} with {machine['torch_threads']} "
        f"thread(s), device {machine['device']}).",
        "",
        f"Protocol: {settings['trajectories']} test trajectories per system (test seeds start "
        f"at 2,000,000; training used seeds from 0), {settings['members']} members per "
        f"diffusion ensemble (deterministic emulators: 1), {settings['context']} context "
        f"frame(s), horizon {settings['horizon']} frames (cut to what the trajectories hold), "
        f"sampler {settings['sampler']}{f' ({sampler})' if sampler else ''} with "
        f"{settings['steps']} steps, seed {settings['seed']}{shifted}.",
        "",
        f"Metrics: {data['metric_conventions']}",
        "",
        *findings_section(data["findings"]),
    ]
    for name, system in data["systems"].items():
        lines += system_section(name, system, (figures or {}).get(name))
    return "\n".join(lines).rstrip() + "\n"
