"""`cifarlab compare` / `report`: runs side by side, grouped by preset, in one self-contained HTML page (figures
embedded) and a Markdown summary. The page opens on a headline written from the data (which stage beats which,
by how much, how sure, at what cost), then the stage-gain figure, the runs, learning curves, per-class accuracy,
McNemar tests, robustness, calibration, and an ablation when one is given. Runs not yet evaluated are evaluated
first."""

from __future__ import annotations

import base64
import html
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import STAGES
from ..data import load_cifar10, locate
from ..data.corruptions import SEVERITIES
from ..errors import UserError
from ..hardware import machine_label
from ..inference import common_suite
from ..io import atomic_write_text
from ..metrics import accuracy_cell, bootstrap_accuracy, mcnemar, mean_std, p_value_cell
from ..plots import (
    ablation_figure,
    drop_heatmap_figure,
    fig_png,
    learning_curves_figure,
    per_class_figure,
    reliability_panels_figure,
    robustness_groups_figure,
    stage_gain_figure,
)
from ..rundir import AblationRow, RunFiles, read_ablation, read_run, read_summary, recorded_source
from .evaluate import evaluate_run
from .tune import leaderboard, study_figures

STEPS = {
    ("baseline", "intermediate"): "Architecture and attention, same training",
    ("intermediate", "intermediate-techniques"): "Training techniques, same network",
    ("intermediate-techniques", "advanced-clean"): "The faster network, same training",
    ("advanced-clean", "advanced"): "Corruption and AugMix shares, anti-aliased pooling, the last epoch served",
    ("intermediate-techniques", "advanced"): "The faster network, with robustness training",
    ("intermediate", "advanced"): "Network and training together",
}
SEVERITY = 3  # the robustness heat map's severity (of 1-5): the middle one


@dataclass
class Group:
    """One preset's runs; `correct` is (runs, test images) bool when every run is evaluated."""

    preset: str
    runs: list[RunFiles]
    names: list[str]
    correct: torch.Tensor | None = None

    @property
    def accs(self) -> list[float]:
        return [r.summary.test_acc for r in self.runs]

    @property
    def walls(self) -> list[float]:
        return [r.summary.wall_time_s for r in self.runs]

    @property
    def devices(self) -> list[str]:
        """The machines its runs ran on, each once, in run order."""
        return list(dict.fromkeys(r.summary.device for r in self.runs))

    @property
    def evals(self) -> list:
        return [r.evaluation for r in self.runs if r.evaluation is not None]


@dataclass
class Pair:
    """A McNemar test between two runs."""

    a: str
    b: str
    preset_a: str
    preset_b: str
    a_only: int
    b_only: int
    p: float


def compare(
    run_dirs: list[Path],
    out: Path,
    data_path: str | None = None,
    evaluate_missing: bool = True,
    ablation: list[AblationRow] | None = None,
    study=None,
) -> tuple[Path, Path]:  # study: an optuna.Study, from commands.tune.open_study
    """Write report.html (figures embedded) and report.md comparing the runs (and an Optuna study's trials)."""
    if not run_dirs and study is None and not ablation:
        raise UserError("no runs to compare: give run directories (runs/<time>-<preset>)")
    if ablation:
        check_ablation(ablation)
    runs = [read_run(d) for d in run_dirs]
    trials = [r.dir for r in runs if r.summary.test_acc is None]
    if trials:
        raise UserError(f"{trials[0]} is a search trial (no test evaluation): train its config, or the study's "
                        "best.yaml, for a test accuracy")  # fmt: skip
    for r in runs:
        if r.evaluation is None and evaluate_missing:
            why = "is of an earlier checkpoint (trained on since)" if r.outdated_evaluation else "not there yet"
            print(f"evaluating {r.dir} (its evaluation.json: {why})", flush=True)
            r.evaluation = evaluate_run(str(r.dir), data_path=data_path)
    sections: list[tuple[str, str, list[bytes]]] = []  # (title, html body, figures)
    md = ["# cifarlab comparison report", ""]
    if runs:
        groups = group_runs(runs, lambda n: _test_labels(data_path or recorded_source(runs[0].dir), n))
        _run_sections(groups, sections, md)
    if ablation:
        _ablation_section(ablation, sections, md)
    if study is not None:
        _study_section(study, sections, md)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    html_path, md_path = out / "report.html", out / "report.md"
    atomic_write_text(html_path, _html_page(sections))
    atomic_write_text(md_path, "\n".join(md))
    return html_path, md_path


# ----------------------------------------------------------------------------------- the numbers
def row_labels(runs: list[RunFiles]) -> list[str]:
    """Each run's row: its preset, or `preset [recipe]` where the preset's runs hold several recipes (a row's
    bars and intervals average its runs, so they must be of one recipe)."""
    recipes: dict[str, set] = {}
    for r in runs:
        recipes.setdefault(r.summary.preset, set()).add(r.summary.recipe_id or "unrecorded")
    return [
        r.summary.preset
        if len(recipes[r.summary.preset]) == 1
        else f"{r.summary.preset} [{r.summary.recipe_id or 'unrecorded'}]"
        for r in runs
    ]


def group_runs(runs: list[RunFiles], test_labels) -> list[Group]:
    """Runs grouped by row (row_labels), the stages first in their order; `test_labels(n)` gives the test labels."""
    labels = row_labels(runs)
    names = _unique_names(runs, labels)
    rank = {p: i for i, p in enumerate(STAGES)}
    rows = dict.fromkeys(zip(labels, (r.summary.preset for r in runs)))  # (label, preset), first seen first
    order = [label for label, preset in sorted(rows, key=lambda row: rank.get(row[1], len(STAGES)))]
    groups = []
    for label in order:
        members = [(n, r) for n, r, lab in zip(names, runs, labels) if lab == label]
        groups.append(Group(label, [r for _, r in members], [n for n, _ in members]))
    if all(r.evaluation is not None for r in runs):
        y = test_labels(len(runs[0].evaluation.test_pred))
        for g in groups:
            g.correct = torch.stack([torch.tensor(e.test_pred) == y for e in g.evals])
    return groups


def mcnemar_pairs(groups: list[Group]) -> list[Pair]:
    """Every pair of runs, seeds of one preset included."""
    flat = [(g.preset, n, c) for g in groups if g.correct is not None for n, c in zip(g.names, g.correct)]
    pairs = []
    for i in range(len(flat)):
        for j in range(i + 1, len(flat)):
            (pa, na, ca), (pb, nb, cb) = flat[i], flat[j]
            t = mcnemar(ca, cb)
            pairs.append(Pair(na, nb, pa, pb, t["a_only"], t["b_only"], t["p_value"]))
    return pairs


def mcnemar_matrix(groups: list[Group], pairs: list[Pair]) -> dict[tuple[str, str], tuple[float, int, int]]:
    """(preset A, preset B) -> (largest p over their seed pairs, pairs that differ at p < 0.05, pairs)."""
    out = {}
    for ga in groups:
        for gb in groups:
            ps = [p.p for p in pairs if {p.preset_a, p.preset_b} == {ga.preset, gb.preset}]
            if ps:
                out[(ga.preset, gb.preset)] = (max(ps), sum(p < 0.05 for p in ps), len(ps))
    return out


def headline(groups: list[Group], matrix: dict) -> list[str]:
    """One sentence per step from a preset to the next (stage order), named by what the step changes where
    STEPS knows it, then the best preset's accuracy."""
    lines = []
    for prev, g in zip(groups, groups[1:]):
        diff = 100 * (statistics.fmean(g.accs) - statistics.fmean(prev.accs))
        evidence = ""
        if g.correct is not None and prev.correct is not None:
            _, lo, hi = bootstrap_accuracy(g.correct, prev.correct)
            p_max, n_diff, n = matrix[(prev.preset, g.preset)]
            if n_diff == n:
                test = f"McNemar {_p_bound(p_max)} for every one of the {n} seed pairs"
            else:
                test = f"McNemar p < 0.05 in {n_diff} of {n} seed pairs, largest p {p_value_cell(p_max)}"
            evidence = f" (95% CI of the difference {100 * lo:+.2f} to {100 * hi:+.2f}; {test})"
        verb = "beats" if diff > 0 else "trails"
        step = f"{STEPS[(prev.preset, g.preset)]}: " if (prev.preset, g.preset) in STEPS else ""
        lines.append(
            f"{step}{g.preset} {verb} {prev.preset} by {abs(diff):.2f} points{evidence}, {_time_ratio(prev, g)}."
        )
    best = max(groups, key=lambda g: statistics.fmean(g.accs))
    mean = 100 * statistics.fmean(best.accs)
    ci = ""
    if best.correct is not None:
        _, lo, hi = bootstrap_accuracy(best.correct)
        ci = f"; 95% CI {100 * lo:.2f}-{100 * hi:.2f}%"
    seeds = f"mean of {len(best.accs)} seeds" if len(best.accs) > 1 else "one run"
    lines.append(f"Best model: {best.preset}, {mean:.2f}% test accuracy ({seeds}{ci}).")
    return lines


def _time_ratio(prev: Group, g: Group) -> str:
    """The wall-time ratio of two presets, only where every run of both ran on one kind of machine: machines of
    one name differ up to 2x in speed, so a ratio across machines would measure the machines."""
    if len({*prev.devices, *g.devices}) > 1:
        return "wall times not compared (measured on different machines)"
    return f"at {statistics.fmean(g.walls) / max(1e-9, statistics.fmean(prev.walls)):.2f}× the wall time"


def robustness_by_preset(groups: list[Group]) -> list[tuple[str, list[dict]]]:
    """(preset, its runs' robustness records) for the presets evaluated on corruptions, every record cut to the
    families and severities that all of them scored (a run evaluated on a narrowed suite narrows the report)."""
    robs = [(g.preset, [e.robustness for e in g.evals if e.robustness]) for g in groups]
    robs = [(p, rs) for p, rs in robs if rs]
    common = common_suite([r for _, rs in robs for r in rs]) if robs else []
    it = iter(common)
    return [(p, [next(it) for _ in rs]) for p, rs in robs] if common else []


def heatmap_severity(robs: list[tuple[str, list[dict]]]) -> int:
    """SEVERITY where the suite has it, else its middle severity."""
    sevs = robs[0][1][0].get("severities", [SEVERITY])
    return SEVERITY if SEVERITY in sevs else sevs[len(sevs) // 2]


def accuracy_drops(groups: list[Group]) -> tuple[list[str], list[str], list[list[float]], int]:
    """(presets, corruptions, drop in points per preset and corruption at the heat map's severity, mean over
    seeds, that severity)."""
    rob = robustness_by_preset(groups)
    if not rob:
        return [], [], [], SEVERITY
    severity = heatmap_severity(rob)
    at = list(rob[0][1][0].get("severities", SEVERITIES)).index(severity)
    corruptions = list(rob[0][1][0]["per_corruption"])
    drops = [
        [
            100 * statistics.fmean(r["clean_acc_same_images"] - r["per_corruption"][c][at] for r in rs)
            for c in corruptions
        ]
        for _, rs in rob
    ]
    return [p for p, _ in rob], corruptions, drops, severity


def ablation_effects(ablation: list[AblationRow]) -> list[tuple[str, str, int, float, float, float | None]]:
    """(variant, what is removed, runs, mean accuracy, mean minus the full recipe's, std over runs or None),
    several rows of one variant (seeds) pooled."""
    by_variant: dict[str, list[AblationRow]] = {}
    for r in ablation:
        by_variant.setdefault(r.variant, []).append(r)
    full = statistics.fmean(r.test_acc for r in by_variant["full"])
    out = []
    for variant, rows in by_variant.items():
        accs = [r.test_acc for r in rows]
        sd = statistics.stdev(accs) if len(accs) > 1 else None
        out.append((variant, rows[0].removed, len(rows), statistics.fmean(accs), statistics.fmean(accs) - full, sd))
    return out


def check_ablation(ablation: list[AblationRow]) -> None:
    if not any(r.variant == "full" for r in ablation):
        raise UserError("the ablation has no 'full' row to compare with: run `cifarlab ablate` with the full "
                        "recipe (or --full RUN_DIR)")  # fmt: skip


# ---------------------------------------------------------------------------------- the sections
def _run_sections(groups: list[Group], sections: list, md: list) -> None:
    pairs = mcnemar_pairs(groups)
    matrix = mcnemar_matrix(groups, pairs)
    lines = headline(groups, matrix) + robustness_headline([g for g in groups if g.evals])
    sections.append(("Headline", "<ul class='headline'>" + "".join(f"<li>{html.escape(s)}</li>" for s in lines)
                     + "</ul>", []))  # fmt: skip
    md += ["## Headline", "", *[f"- {s}" for s in lines], ""]
    machines = ["; ".join(map(machine_label, g.devices)) for g in groups]
    gain = stage_gain_figure([(g.preset, g.accs, g.walls) for g in groups], machines)
    sections.append(("Stage gain", "", [fig_png(gain)]))
    header, rows = _runs_table(groups)
    sections.append(("Runs", _html_table(header, rows), []))
    md += ["## Runs", "", _md_table(header, rows), ""]
    curves = learning_curves_figure([(g.preset, [[vars(m) for m in r.metrics] for r in g.runs]) for g in groups])
    sections.append(("Learning curves", "", [fig_png(curves)]))
    evaluated = [g for g in groups if g.evals]
    if evaluated:
        _per_class_section(evaluated, sections, md)
        _mcnemar_section(groups, pairs, matrix, sections, md)
        _robustness_section(evaluated, sections, md)
        _calibration_section(evaluated, sections, md)


def _runs_table(groups: list[Group]) -> tuple[list[str], list[list[str]]]:
    """One row per preset: mean ± std of test accuracy over its runs, and what they cost."""
    rows = []
    for g in groups:
        s0 = g.runs[0].summary
        ci = "-"
        if g.correct is not None:
            _, lo, hi = bootstrap_accuracy(g.correct)
            ci = f"{100 * lo:.2f}-{100 * hi:.2f}%"
        rows.append([
            g.preset, str(len(g.runs)), accuracy_cell(*mean_std(g.accs), len(g.accs)), ci,
            _seconds(statistics.fmean(g.walls)), f"{statistics.fmean(r.summary.train_img_per_s for r in g.runs):.0f}",
            f"{s0.params / 1e6:.2f}M", f"{s0.flops_per_image / 1e6:.0f}", s0.tta,
            "; ".join(g.devices),
        ])  # fmt: skip
    header = ["preset", "runs", "test acc (mean ± std)", "95% CI", "wall time", "train img/s", "params",
              "MFLOPs/img", "TTA", "device"]  # fmt: skip
    return header, rows


def _per_class_section(groups: list[Group], sections: list, md: list) -> None:
    classes = list(groups[0].evals[0].per_class_acc)
    stats = []
    for g in groups:
        per = {c: [e.per_class_acc[c] for e in g.evals] for c in classes}
        stats.append((g.preset, {c: statistics.fmean(v) for c, v in per.items()},
                      {c: statistics.stdev(v) if len(v) > 1 else 0.0 for c, v in per.items()}))  # fmt: skip
    header = ["class"] + [p for p, _, _ in stats]
    rows = [[c] + [f"{100 * m[c]:.1f}%" for _, m, _ in stats] for c in classes]
    sections.append(("Per-class accuracy", _details("the numbers", _html_table(header, rows)),
                     [fig_png(per_class_figure(stats, classes))]))  # fmt: skip
    md += ["## Per-class accuracy (mean over seeds)", "", _md_table(header, rows), ""]


def _mcnemar_section(groups: list[Group], pairs: list[Pair], matrix: dict, sections: list, md: list) -> None:
    presets = [g.preset for g in groups if g.correct is not None]
    header = ["preset"] + presets
    rows = [[a] + [_matrix_cell(matrix.get((a, b))) for b in presets] for a in presets]
    intro = (
        "<p>Each cell: the largest McNemar p-value over the seed pairs of the two presets, and how many of "
        "those pairs differ at p &lt; 0.05. The diagonal compares a preset's seeds with each other.</p>"
    )
    pair_header = ["model A", "model B", "only A right", "only B right", "p-value", "differ (p<0.05)"]
    pair_rows = [[p.a, p.b, str(p.a_only), str(p.b_only), p_value_cell(p.p), "yes" if p.p < 0.05 else "no"]
                 for p in pairs]  # fmt: skip
    body = intro + _html_table(header, rows) if pairs else "<p>one model only</p>"
    if pairs:
        body += _details(f"all {len(pairs)} pairs", _html_table(pair_header, pair_rows))
    sections.append(("McNemar tests", body, []))
    md += ["## McNemar tests (largest p over seed pairs; pairs differing at p < 0.05)", ""]
    md += [_md_table(header, rows) if pairs else "one model only", ""]


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if s >= 100 else f"{s:.1f} s" if s >= 10 else f"{s:.2f} s"  # three figures either way


def _matrix_cell(cell) -> str:
    if cell is None:
        return "-"
    p_max, n_diff, n = cell
    return f"{_p_bound(p_max)}; {n_diff}/{n} differ"


def _p_bound(p: float) -> str:
    """'p ≤ 0.0137', or 'p < 1e-300' where the p-value is below what a float shows."""
    cell = p_value_cell(p)
    return f"p {cell}" if cell.startswith("<") else f"p ≤ {cell}"


def _robustness_section(groups: list[Group], sections: list, md: list) -> None:
    presets, corruptions, drops, severity = accuracy_drops(groups)
    if not presets:
        return
    figs = [fig_png(drop_heatmap_figure(presets, corruptions, drops, severity))]
    robs = robustness_by_preset(groups)
    figs.append(fig_png(robustness_groups_figure(robs)))
    worst = [f"{p}: {corruptions[max(range(len(d)), key=d.__getitem__)]}" for p, d in zip(presets, drops)]
    header = ["preset", "held-out corruptions (families)", "seen in training (families)", "all families",
              "clean acc (same images, one view)"]  # fmt: skip
    rows = [
        [p, _mean_cell(rs, "held_out_acc", lambda r: len(r["per_corruption"]) - len(r.get("seen", []))),
         _mean_cell(rs, "seen_acc", lambda r: len(r.get("seen", []))),
         f"{100 * statistics.fmean(r['mean_corruption_acc'] for r in rs):.2f}%",
         f"{100 * statistics.fmean(r['clean_acc_same_images'] for r in rs):.2f}%"]
        for p, rs in robs
    ]  # fmt: skip
    drop_header = ["preset"] + corruptions
    drop_rows = [[p] + [f"{v:.1f}" for v in d] for p, d in zip(presets, drops)]
    text = f"<p>Hurts most at severity {severity}: {html.escape('; '.join(worst))}.</p>"
    sections.append(("Robustness", text + _html_table(header, rows), figs))
    md += ["## Robustness", "", _md_table(header, rows), "",
           f"Accuracy drop at severity {severity} (points, clean minus corrupted):", "",
           _md_table(drop_header, drop_rows), ""]  # fmt: skip


def _mean_cell(robs: list[dict], key: str, count) -> str:
    """Mean over seeds of a robustness mean, with the number of families it covers; '-' where none."""
    vals = [r.get(key) for r in robs]
    if any(v is None for v in vals):
        return "-" if all(v is None for v in vals) else "mixed"
    return f"{100 * statistics.fmean(vals):.2f}% ({count(robs[0])})"


def robustness_headline(groups: list[Group]) -> list[str]:
    """Each preset's held-out corruption accuracy (families its training never saw), the robustness headline."""
    parts, robs = [], robustness_by_preset(groups)
    for preset, rs in robs:
        if all(r.get("held_out_acc") is not None for r in rs):
            held = len(rs[0]["per_corruption"]) - len(rs[0].get("seen", []))
            parts.append(f"{preset} {100 * statistics.fmean(r['held_out_acc'] for r in rs):.2f}% ({held} families)")
    if not parts:
        return []
    sevs = robs[0][1][0].get("severities", list(SEVERITIES))
    sev = "1-5" if list(sevs) == list(SEVERITIES) else ",".join(map(str, sevs))
    return [f"Held-out corruption accuracy (CIFAR-10-C families the training never produced, severities {sev}): "
            f"{'; '.join(parts)}."]  # fmt: skip


def _calibration_section(groups: list[Group], sections: list, md: list) -> None:
    header = ["preset", "ECE", "temperature T (fitted on val)", "ECE at T"]
    rows, panels = [], []
    for g in groups:
        ts = [e.temperature_scaling for e in g.evals if e.temperature_scaling]
        ece = statistics.fmean(e.calibration["ece"] for e in g.evals)
        cells = ["-", "-"]
        if ts:
            cells = [f"{statistics.fmean(t['temperature'] for t in ts):.3f}",
                     f"{100 * statistics.fmean(t['ece'] for t in ts):.2f}%"]  # fmt: skip
        rows.append([g.preset, f"{100 * ece:.2f}%", *cells])
        panels.append((g.preset, [e.calibration for e in g.evals], [t for t in ts if "bins" in t]))
    figs = [fig_png(reliability_panels_figure(panels))]
    sections.append(("Calibration", _html_table(header, rows), figs))
    md += ["## Calibration (mean over seeds)", "", _md_table(header, rows), ""]


def _ablation_section(ablation: list[AblationRow], sections: list, md: list) -> None:
    effects = ablation_effects(ablation)
    header = ["variant", "removed", "runs", "test acc", "Δ vs full (points)"]
    rows = [[v, what, str(n), f"{100 * acc:.2f}%", f"{100 * d:+.2f}" + (f" ± {100 * sd:.2f}" if sd else "")]
            for v, what, n, acc, d, sd in effects]  # fmt: skip
    bars = [(what, 100 * d, 100 * sd if sd else None) for v, what, _, _, d, sd in effects if v != "full"]
    figs = [fig_png(ablation_figure(bars))] if bars else []
    sections.append(("Ablation", _html_table(header, rows), figs))
    md += ["## Ablation (one technique removed at a time)", "", _md_table(header, rows), ""]


def _study_section(study, sections: list, md: list) -> None:
    """The search: its leaderboard, optimization history, parameter importances, parallel coordinates."""
    header = ["trial", "state", "val acc", "params"]
    rows = leaderboard(study)
    figs = [fig_png(f) for f in study_figures(study)]
    best = ""
    try:
        bt = study.best_trial
        cmd = html.escape(f"cifarlab train {study.study_name}.best.yaml")
        best = f"<p>best: trial {bt.number}, val {100 * bt.value:.2f}%; its config repeats with <code>{cmd}</code></p>"
    except ValueError:  # no completed trial yet
        pass
    sections.append((f"Study {study.study_name}", best + _html_table(header, rows), figs))
    md += [f"## Study {study.study_name}", "", _md_table(header, rows), ""]


# ------------------------------------------------------------------------------------ the files
def report(runs_dir: Path, out: Path, data_path: str | None = None, study=None) -> tuple[Path, Path, int]:
    """compare() over every finished run under a folder (search trials left out: they have no test accuracy),
    with its ablation/ablation.json if there is one (its variants are not runs of the comparison)."""
    root = Path(runs_dir)
    ablation_dir = root / "ablation"
    runs = sorted(
        p.parent
        for p in root.glob("**/summary.json")
        if ablation_dir not in p.parents and read_summary(p.parent).test_acc is not None
    )
    if not runs and study is None:
        raise UserError(f"no finished runs (summary.json) under {root}")
    ablation_file = ablation_dir / "ablation.json"
    ablation = read_ablation(ablation_file) if ablation_file.exists() else None
    return (*compare(runs, writable_dir(out), data_path, ablation=ablation, study=study), len(runs))


def writable_dir(path: str | Path) -> Path:
    """Create the output folder up front, so a bad --out fails before minutes of evaluation, not after."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the output folder {out} ({e.strerror or e}): choose another --out") from None
    return out


def _unique_names(runs, labels) -> list[str]:
    names = []
    for r, label in zip(runs, labels):
        base = f"{label} s{r.summary.seed}"
        name, k = base, 2
        while name in names:
            name, k = f"{base} #{k}", k + 1
        names.append(name)
    return names


_labels_cache: dict = {}


def _test_labels(data_path, n) -> torch.Tensor:
    if data_path not in _labels_cache:
        _labels_cache[data_path] = load_cifar10(locate(data_path)).test_y
    y = _labels_cache[data_path]
    if len(y) != n:
        raise UserError(f"runs were evaluated on {n} test images but the data has {len(y)}: pass the same --data")
    return y


def _md_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


_NUMERIC = re.compile(r"^[-+−]?[\d.]+|^p [≤<]|^< ")


def _html_table(header, rows) -> str:
    """Numbers (and their units) right-aligned, words left-aligned."""
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    cell = lambda c: f"<td class='num'>{html.escape(c)}</td>" if _NUMERIC.match(c) else f"<td>{html.escape(c)}</td>"  # noqa: E731
    trs = "".join("<tr>" + "".join(cell(c) for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _details(summary: str, inner: str) -> str:
    return f"<details><summary>{html.escape(summary)}</summary>{inner}</details>"


def _section_id(title: str) -> str:
    return title.lower().replace(" ", "-")


def _html_page(sections) -> str:
    toc = "".join(f"<li><a href='#{_section_id(t)}'>{html.escape(t)}</a></li>" for t, _, _ in sections)
    body = []
    for title, inner, figs in sections:
        imgs = "".join(
            f'<img alt="{html.escape(title)}" src="data:image/png;base64,{base64.b64encode(f).decode()}">' for f in figs
        )
        body.append(f'<section id="{_section_id(title)}"><h2>{html.escape(title)}</h2>{inner}{imgs}</section>')
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;"
        "line-height:1.45}h1{margin-bottom:.2em}nav ol{columns:3;padding-left:1.2em}"
        ".headline{font-size:1.1em;background:#f6f8fa;border-left:4px solid #55a868;padding:.6em 1em .6em 2em}"
        "table{border-collapse:collapse;margin:1em 0;font-variant-numeric:tabular-nums}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}td.num{text-align:right;white-space:nowrap}"
        "th{background:#f3f3f3}img{width:100%;min-width:600px;max-width:1000px;display:block;margin:1em 0}"
        "details{margin:.5em 0}summary{cursor:pointer;color:#2a5db0}"
        "@media print{body{max-width:none}section{break-inside:avoid}details{display:block}nav{display:none}"
        "img{min-width:0}}"
    )
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>cifarlab report</title>"
        f"<style>{style}</style></head><body><h1>cifarlab comparison report</h1>"
        f"<nav aria-label='contents'><ol>{toc}</ol></nav>{''.join(body)}</body></html>\n"
    )
