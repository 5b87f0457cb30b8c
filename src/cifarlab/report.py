"""Figures of an evaluation, and the comparison report of several runs (HTML with embedded figures + Markdown)."""

from __future__ import annotations

import base64
import html
import io
import statistics
from collections import defaultdict
from pathlib import Path

import torch

from . import UserError
from .data import MEAN, STD
from .io import atomic_write_bytes, atomic_write_text, read_json


def p_value_cell(p: float) -> str:
    """A p-value too small for a double underflows to 0.0, which would read as impossible: bound it instead."""
    return "< 1e-300" if p < 1e-300 else f"{p:.3g}"


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def fig_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def _show(img_norm: torch.Tensor):
    """Normalized (3, H, W) tensor -> (H, W, 3) array in [0, 1] for imshow."""
    m = torch.tensor(MEAN).view(3, 1, 1)
    s = torch.tensor(STD).view(3, 1, 1)
    return (img_norm.float().cpu() * s + m).clamp(0, 1).permute(1, 2, 0).numpy()


# ------------------------------------------------------------------------------------- figures
def confusion_figure_from(cm, classes, normalize=True, title="confusion matrix"):
    plt = _plt()
    cm = torch.tensor(cm, dtype=torch.float64)
    shown = cm / cm.sum(1, keepdim=True).clamp(min=1) if normalize else cm
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(shown.numpy(), cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true", title=title + (" (row-normalized)" if normalize else " (counts)"))
    for i in range(len(classes)):
        for j in range(len(classes)):
            v = shown[i, j].item()
            ax.text(j, i, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center", fontsize=6,
                    color="white" if v > shown.max().item() / 2 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return fig


def confusion_figure(model, loader, classes, dtype=None):
    from .evaluate import confusion_matrix, predict_logits

    logits, y = predict_logits(model, loader, dtype)
    return confusion_figure_from(confusion_matrix(logits.argmax(-1), y, len(classes)).tolist(), classes)


def image_grid_figure(images, titles, maps=None, cols=8, colors=None):
    plt = _plt()
    n = len(images)
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 1.8), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        ax.imshow(_show(images[k]))
        if maps is not None:
            ax.imshow(maps[k].cpu().numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.set_title(titles[k], fontsize=7, color=(colors[k] if colors else "black"))
    fig.tight_layout()
    return fig


def prediction_grid_figure(model, loader, classes, n=16, dtype=None):
    from .evaluate import infer

    x, y = next(iter(loader))
    x, y = x[:n], y[:n]
    pred = infer(model, x, dtype).argmax(-1).cpu()
    titles = [f"{classes[p]}\n(true {classes[t]})" for p, t in zip(pred.tolist(), y.tolist())]
    colors = ["green" if p == t else "red" for p, t in zip(pred.tolist(), y.tolist())]
    return image_grid_figure(x, titles, colors=colors)


def reliability_figure(cal_list: list[tuple[str, dict]]):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    for name, cal in cal_list:
        pts = [(b["confidence"], b["accuracy"]) for b in cal["bins"] if b["count"]]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"{name} (ECE {100 * cal['ece']:.2f}%)")
    ax.set(xlabel="confidence", ylabel="accuracy", title="reliability diagram", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def robustness_figure(rob_list: list[tuple[str, dict]]):
    plt = _plt()
    names = list(rob_list[0][1]["per_corruption"])
    fig, axes = plt.subplots(1, len(names), figsize=(2.4 * len(names), 2.8), sharey=True, squeeze=False)
    for ax, cname in zip(axes[0], names):
        for label, rob in rob_list:
            ax.plot(range(1, 6), [100 * a for a in rob["per_corruption"][cname]], "o-", label=label)
        ax.set(title=cname, xlabel="severity", xticks=range(1, 6))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def evaluation_figures(run_dir: Path, model, data, loader, logits, res, dtype) -> list[str]:
    """Write the evaluation's figures into the run directory; returns their file names."""
    from .evaluate import attention_maps, gradcam, most_confident_wrong

    classes = data.classes
    written = {}
    written["confusion.png"] = confusion_figure_from(res["confusion"], classes, normalize=True)
    written["confusion_counts.png"] = confusion_figure_from(res["confusion"], classes, normalize=False)
    written["reliability.png"] = reliability_figure([(res["preset"], res["calibration"])])
    if "robustness" in res:
        written["robustness.png"] = robustness_figure([(res["preset"], res["robustness"])])
    probs = logits.softmax(-1)
    idx = most_confident_wrong(probs, data.test_y, 16)
    x = loader.normalize(data.test_x[idx].to(loader.device))
    conf, pred = probs[idx].max(-1)
    titles = [f"{classes[p]} {100 * c:.0f}%\n(true {classes[t]})"
              for p, c, t in zip(pred.tolist(), conf.tolist(), data.test_y[idx].tolist())]
    written["confident_wrong.png"] = image_grid_figure(x, titles, colors=["red"] * len(idx))
    sample = loader.normalize(data.test_x[:16].to(loader.device))
    names = [classes[t] for t in data.test_y[:16].tolist()]
    written["gradcam.png"] = image_grid_figure(sample, [f"Grad-CAM: {n}" for n in names], maps=gradcam(model, sample))
    for k, (name, maps) in enumerate(attention_maps(model, sample).items()):
        written[f"attention_{k}.png"] = image_grid_figure(sample, [f"{n}" for n in names], maps=maps)
        written[f"attention_{k}.png"].suptitle(name, fontsize=9)
    for name, fig in written.items():
        atomic_write_bytes(run_dir / name, fig_png(fig))
    return sorted(written)


# ------------------------------------------------------------------------------------- compare
def _load_run(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        raise UserError(f"{run_dir} is not a finished run (no summary.json): train it first")
    ev = run_dir / "evaluation.json"
    return {"dir": run_dir, "summary": _read_json(summary_path),
            "metrics": _read_json(run_dir / "metrics.jsonl", lines=True),
            "evaluation": _read_json(ev) if ev.exists() else None}


def _read_json(path: Path, lines: bool = False):
    hint = "; re-run `cifarlab evaluate`" if path.name == "evaluation.json" else "; leave this run out"
    return read_json(path, hint=hint, lines=lines)


def compare(run_dirs: list[Path], out: Path, data_path: str | None = None, evaluate_missing: bool = True,
            ablation: list[dict] | None = None) -> tuple[Path, Path]:
    """Write report.html (figures embedded) and report.md comparing the runs."""
    from .bench import accuracy_cell, mean_std
    from .data import recorded_source
    from .evaluate import evaluate_run, mcnemar

    if not run_dirs:
        raise UserError("no runs to compare: give run directories (runs/<time>-<preset>)")
    runs = [_load_run(d) for d in run_dirs]
    for r in runs:
        if r["evaluation"] is None and evaluate_missing:
            r["evaluation"] = evaluate_run(str(r["dir"]), data_path=data_path)
    names = _unique_names(runs)
    plt = _plt()
    sections: list[tuple[str, str, list[bytes]]] = []  # (title, html body, figures)
    md = ["# cifarlab comparison report", ""]

    # 1. table, grouped by preset (mean ± std across seeds)
    groups = defaultdict(list)
    for r in runs:
        groups[r["summary"]["preset"]].append(r)
    rows = []
    for preset, rs in groups.items():
        accs = [r["summary"]["test_acc"] for r in rs]
        walls = [r["summary"]["wall_time_s"] for r in rs]
        s0 = rs[0]["summary"]
        rows.append([preset, str(len(rs)), accuracy_cell(*mean_std(accs), len(accs)),
                     f"{statistics.fmean(walls):.0f} s", f"{s0['params'] / 1e6:.2f}M",
                     f"{s0['flops_per_image'] / 1e6:.0f}", s0["tta"], s0["device"]])
    header = ["preset", "runs", "test acc (mean ± std)", "wall time", "params", "MFLOPs/img", "TTA", "device"]
    sections.append(("Runs", _html_table(header, rows), []))
    md += ["## Runs", "", _md_table(header, rows), ""]

    # 2. learning curves
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.6))
    for name, r in zip(names, runs):
        ep = [m["epoch"] for m in r["metrics"]]
        ax[0].plot(ep, [m["train_loss"] for m in r["metrics"]], "o-", label=name)
        ax[1].plot(ep, [100 * (m["val_acc"] or 0) for m in r["metrics"]], "o-", label=name)
    ax[0].set(title="training loss", xlabel="epoch")
    ax[1].set(title="validation accuracy (%)", xlabel="epoch")
    for a in ax:
        a.grid(alpha=0.3), a.legend(fontsize=7)
    sections.append(("Learning curves", "", [fig_png(fig)]))

    evals = [(n, r["evaluation"]) for n, r in zip(names, runs) if r["evaluation"]]
    if evals:
        classes = list(evals[0][1]["per_class_acc"])
        fig, ax = plt.subplots(figsize=(11, 3.6))
        width = 0.8 / len(evals)
        for k, (n, e) in enumerate(evals):
            ax.bar([i + k * width for i in range(len(classes))], [100 * e["per_class_acc"][c] for c in classes],
                   width, label=n)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(classes))], classes)
        ax.set(ylabel="accuracy (%)", title="per-class test accuracy")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: inside, it hides bars
        ax.grid(alpha=0.3, axis="y")
        sections.append(("Per-class accuracy", "", [fig_png(fig)]))
        pc_rows = [[c] + [f"{100 * e['per_class_acc'][c]:.1f}%" for _, e in evals] for c in classes]
        md += ["## Per-class accuracy", "", _md_table(["class"] + [n for n, _ in evals], pc_rows), ""]

        # 3. McNemar between each pair
        mc_rows = []
        for i in range(len(evals)):
            for j in range(i + 1, len(evals)):
                (na, ea), (nb, eb) = evals[i], evals[j]
                y = _test_labels(data_path or recorded_source(runs[0]["dir"]), len(ea["test_pred"]))
                ca = torch.tensor(ea["test_pred"]) == y
                cb = torch.tensor(eb["test_pred"]) == y
                t = mcnemar(ca, cb)
                mc_rows.append([na, nb, str(t["a_only"]), str(t["b_only"]), p_value_cell(t["p_value"]),
                                "yes" if t["p_value"] < 0.05 else "no"])
        mc_header = ["model A", "model B", "only A right", "only B right", "p-value", "differ (p<0.05)"]
        sections.append(("McNemar tests", _html_table(mc_header, mc_rows) if mc_rows else "<p>one model only</p>", []))
        md += ["## McNemar tests", "", _md_table(mc_header, mc_rows) if mc_rows else "one model only", ""]

        # 4. robustness and calibration
        robs = [(n, e["robustness"]) for n, e in evals if e.get("robustness")]
        rob_header = ["model", "mean corruption acc", "clean acc (same images, one view)"]
        if robs:
            rob_rows = [[n, f"{100 * r['mean_corruption_acc']:.2f}%", f"{100 * r['clean_acc_same_images']:.2f}%"]
                        for n, r in robs]
            sections.append(("Robustness", _html_table(rob_header, rob_rows),
                             [fig_png(robustness_figure(robs))]))
            md += ["## Robustness", "", _md_table(rob_header, rob_rows), ""]
        cal_header = ["model", "ECE", "temperature T (fitted on val)", "ECE at T"]
        cal_rows = [[n, f"{100 * e['calibration']['ece']:.2f}%", *_temperature_cells(e)] for n, e in evals]
        sections.append(("Calibration", _html_table(cal_header, cal_rows),
                         [fig_png(reliability_figure([(n, e["calibration"]) for n, e in evals]))]))
        md += ["## Calibration", "", _md_table(cal_header, cal_rows), ""]

    if ablation:
        ab_header = ["variant", "removed", "test acc", "Δ vs full"]
        full = next((a["test_acc"] for a in ablation if a["removed"] == "nothing"), None)
        ab_rows = [[a["variant"], a["removed"], f"{100 * a['test_acc']:.2f}%",
                    f"{100 * (a['test_acc'] - full):+.2f}" if full is not None else "-"] for a in ablation]
        sections.append(("Ablation", _html_table(ab_header, ab_rows), []))
        md += ["## Ablation (one technique removed at a time)", "", _md_table(ab_header, ab_rows), ""]

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    html_path, md_path = out / "report.html", out / "report.md"
    atomic_write_text(html_path, _html_page(sections))
    atomic_write_text(md_path, "\n".join(md))
    return html_path, md_path


def _unique_names(runs) -> list[str]:
    names = []
    for r in runs:
        base = f"{r['summary']['preset']} s{r['summary']['seed']}"
        name, k = base, 2
        while name in names:
            name, k = f"{base} #{k}", k + 1
        names.append(name)
    return names


_labels_cache: dict = {}


def _test_labels(data_path, n) -> torch.Tensor:
    from .data import load_cifar10, locate

    if data_path not in _labels_cache:
        _labels_cache[data_path] = load_cifar10(locate(data_path)).test_y
    y = _labels_cache[data_path]
    if len(y) != n:
        raise UserError(f"runs were evaluated on {n} test images but the data has {len(y)}: pass the same --data")
    return y


def _md_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _temperature_cells(evaluation: dict) -> list[str]:
    t = evaluation.get("temperature_scaling")
    return [f"{t['temperature']:.3f}", f"{100 * t['ece']:.2f}%"] if t else ["-", "-"]


def _html_table(header, rows) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _html_page(sections) -> str:
    body = []
    for title, inner, figs in sections:
        sid = title.lower().replace(" ", "-")
        imgs = "".join(f'<img alt="{html.escape(title)}" src="data:image/png;base64,{base64.b64encode(f).decode()}">'
                       for f in figs)
        body.append(f'<section id="{sid}"><h2>{html.escape(title)}</h2>{inner}{imgs}</section>')
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
             "th{background:#f3f3f3}img{max-width:100%;display:block;margin:1em 0}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>cifarlab report</title><style>{style}</style>"
            f"</head><body><h1>cifarlab comparison report</h1>{''.join(body)}</body></html>\n")
