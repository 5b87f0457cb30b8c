"""`cifarlab compare` / `report`: several runs side by side in one self-contained HTML page (figures embedded)
and a Markdown summary: accuracy over seeds, learning curves, per-class accuracy, McNemar tests,
robustness, calibration, and an ablation when one is given. Runs not yet evaluated are evaluated first."""

from __future__ import annotations

import base64
import html
import statistics
from collections import defaultdict
from pathlib import Path

import torch

from ..data import load_cifar10, locate
from ..errors import UserError
from ..io import atomic_write_text
from ..metrics import accuracy_cell, mcnemar, mean_std, p_value_cell
from ..plots import fig_png, learning_curves_figure, per_class_figure, reliability_figure, robustness_figure
from ..rundir import AblationRow, RunFiles, read_ablation, read_run, read_summary, recorded_source
from .evaluate import evaluate_run
from .tune import leaderboard, study_figures


def compare(
    run_dirs: list[Path],
    out: Path,
    data_path: str | None = None,
    evaluate_missing: bool = True,
    ablation: list[AblationRow] | None = None,
    study=None,
) -> tuple[Path, Path]:  # study: an optuna.Study, from commands.tune.open_study
    """Write report.html (figures embedded) and report.md comparing the runs (and an Optuna study's trials)."""
    if not run_dirs and study is None:
        raise UserError("no runs to compare: give run directories (runs/<time>-<preset>)")
    runs = [read_run(d) for d in run_dirs]
    trials = [r.dir for r in runs if r.summary.test_acc is None]
    if trials:
        raise UserError(f"{trials[0]} is a search trial (no test evaluation): train its config, or the study's "
                        "best.yaml, for a test accuracy")  # fmt: skip
    for r in runs:
        if r.evaluation is None and evaluate_missing:
            r.evaluation = evaluate_run(str(r.dir), data_path=data_path)
    sections: list[tuple[str, str, list[bytes]]] = []  # (title, html body, figures)
    md = ["# cifarlab comparison report", ""]
    if runs:
        _run_sections(runs, data_path, sections, md)
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


def _run_sections(runs: list[RunFiles], data_path, sections: list, md: list) -> None:
    names = _unique_names(runs)
    header, rows = _runs_table(runs)
    sections.append(("Runs", _html_table(header, rows), []))
    md += ["## Runs", "", _md_table(header, rows), ""]
    curves = learning_curves_figure([(n, [vars(m) for m in r.metrics]) for n, r in zip(names, runs)])
    sections.append(("Learning curves", "", [fig_png(curves)]))
    evals = [(n, r.evaluation) for n, r in zip(names, runs) if r.evaluation]
    if evals:
        n_test = len(evals[0][1].test_pred)
        labels = lambda: _test_labels(data_path or recorded_source(runs[0].dir), n_test)  # noqa: E731
        _evaluation_sections(evals, labels, sections, md)


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


def _runs_table(runs: list[RunFiles]) -> tuple[list[str], list[list[str]]]:
    """One row per preset: mean ± std of test accuracy over its runs."""
    groups = defaultdict(list)
    for r in runs:
        groups[r.summary.preset].append(r.summary)
    rows = []
    for preset, ss in groups.items():
        accs = [s.test_acc for s in ss]
        s0 = ss[0]
        rows.append(
            [
                preset,
                str(len(ss)),
                accuracy_cell(*mean_std(accs), len(accs)),
                f"{statistics.fmean(s.wall_time_s for s in ss):.0f} s",
                f"{s0.params / 1e6:.2f}M",
                f"{s0.flops_per_image / 1e6:.0f}",
                s0.tta,
                s0.device,
            ]
        )
    return ["preset", "runs", "test acc (mean ± std)", "wall time", "params", "MFLOPs/img", "TTA", "device"], rows


def _evaluation_sections(evals, test_labels, sections: list, md: list) -> None:
    classes = list(evals[0][1].per_class_acc)
    sections.append(
        ("Per-class accuracy", "", [fig_png(per_class_figure([(n, e.per_class_acc) for n, e in evals], classes))])
    )
    pc_rows = [[c] + [f"{100 * e.per_class_acc[c]:.1f}%" for _, e in evals] for c in classes]
    md += ["## Per-class accuracy", "", _md_table(["class"] + [n for n, _ in evals], pc_rows), ""]
    mc_rows = []
    for i in range(len(evals)):
        for j in range(i + 1, len(evals)):
            (na, ea), (nb, eb) = evals[i], evals[j]
            y = test_labels()
            t = mcnemar(torch.tensor(ea.test_pred) == y, torch.tensor(eb.test_pred) == y)
            mc_rows.append(
                [
                    na,
                    nb,
                    str(t["a_only"]),
                    str(t["b_only"]),
                    p_value_cell(t["p_value"]),
                    "yes" if t["p_value"] < 0.05 else "no",
                ]
            )
    mc_header = ["model A", "model B", "only A right", "only B right", "p-value", "differ (p<0.05)"]
    sections.append(("McNemar tests", _html_table(mc_header, mc_rows) if mc_rows else "<p>one model only</p>", []))
    md += ["## McNemar tests", "", _md_table(mc_header, mc_rows) if mc_rows else "one model only", ""]
    robs = [(n, e.robustness) for n, e in evals if e.robustness]
    if robs:
        rob_header = ["model", "mean corruption acc", "clean acc (same images, one view)"]
        rob_rows = [
            [n, f"{100 * r['mean_corruption_acc']:.2f}%", f"{100 * r['clean_acc_same_images']:.2f}%"] for n, r in robs
        ]
        sections.append(("Robustness", _html_table(rob_header, rob_rows), [fig_png(robustness_figure(robs))]))
        md += ["## Robustness", "", _md_table(rob_header, rob_rows), ""]
    cal_header = ["model", "ECE", "temperature T (fitted on val)", "ECE at T"]
    cal_rows = [[n, f"{100 * e.calibration['ece']:.2f}%", *_temperature_cells(e.temperature_scaling)] for n, e in evals]
    sections.append(
        (
            "Calibration",
            _html_table(cal_header, cal_rows),
            [fig_png(reliability_figure([(n, e.calibration) for n, e in evals]))],
        )
    )
    md += ["## Calibration", "", _md_table(cal_header, cal_rows), ""]


def _ablation_section(ablation: list[AblationRow], sections: list, md: list) -> None:
    header = ["variant", "removed", "test acc", "Δ vs full"]
    full = next((a.test_acc for a in ablation if a.removed == "nothing"), None)
    rows = [
        [
            a.variant,
            a.removed,
            f"{100 * a.test_acc:.2f}%",
            f"{100 * (a.test_acc - full):+.2f}" if full is not None else "-",
        ]
        for a in ablation
    ]
    sections.append(("Ablation", _html_table(header, rows), []))
    md += ["## Ablation (one technique removed at a time)", "", _md_table(header, rows), ""]


def report(runs_dir: Path, out: Path, data_path: str | None = None, study=None) -> tuple[Path, Path, int]:
    """compare() over every finished run under a folder (search trials left out: they have no test accuracy),
    with its ablation/ablation.json if there is one."""
    root = Path(runs_dir)
    runs = sorted(p.parent for p in root.glob("**/summary.json") if read_summary(p.parent).test_acc is not None)
    if not runs and study is None:
        raise UserError(f"no finished runs (summary.json) under {root}")
    ablation_file = root / "ablation" / "ablation.json"
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


def _unique_names(runs) -> list[str]:
    names = []
    for r in runs:
        base = f"{r.summary.preset} s{r.summary.seed}"
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
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _temperature_cells(t: dict | None) -> list[str]:
    return [f"{t['temperature']:.3f}", f"{100 * t['ece']:.2f}%"] if t else ["-", "-"]


def _html_table(header, rows) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _html_page(sections) -> str:
    body = []
    for title, inner, figs in sections:
        sid = title.lower().replace(" ", "-")
        imgs = "".join(
            f'<img alt="{html.escape(title)}" src="data:image/png;base64,{base64.b64encode(f).decode()}">' for f in figs
        )
        body.append(f'<section id="{sid}"><h2>{html.escape(title)}</h2>{inner}{imgs}</section>')
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "th{background:#f3f3f3}img{max-width:100%;display:block;margin:1em 0}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>cifarlab report</title><style>{style}</style>"
        f"</head><body><h1>cifarlab comparison report</h1>{''.join(body)}</body></html>\n"
    )
