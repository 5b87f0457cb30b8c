"""Every figure, drawn from plain data (lists, dicts, tensors): no model runs and no file is read here.

matplotlib is imported on first use, not with the package: the CLI starts faster without it.
"""

from __future__ import annotations

import io

import torch

from .data import MEAN, STD


def pyplot():
    import matplotlib  # noqa: PLC0415 (on first use: importing it slows every CLI start)

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # noqa: PLC0415 (after the backend is chosen)

    return plt


def fig_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    pyplot().close(fig)
    return buf.getvalue()


def _show(img_norm: torch.Tensor):
    """Normalized (3, H, W) tensor -> (H, W, 3) array in [0, 1] for imshow."""
    m = torch.tensor(MEAN).view(3, 1, 1)
    s = torch.tensor(STD).view(3, 1, 1)
    return (img_norm.float().cpu() * s + m).clamp(0, 1).permute(1, 2, 0).numpy()


# ------------------------------------------------------------------------------------- figures
def confusion_figure(cm, classes, normalize=True, title="confusion matrix"):
    plt = pyplot()
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
            ax.text(
                j,
                i,
                f"{v:.2f}" if normalize else f"{int(v)}",
                ha="center",
                va="center",
                fontsize=6,
                color="white" if v > shown.max().item() / 2 else "black",
            )
    fig.colorbar(im, ax=ax, fraction=0.046)
    return fig


def image_grid_figure(images, titles, maps=None, cols=8, colors=None):
    plt = pyplot()
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


def reliability_figure(cal_list: list[tuple[str, dict]]):
    plt = pyplot()
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
    plt = pyplot()
    names = list(rob_list[0][1]["per_corruption"])
    fig, axes = plt.subplots(1, len(names), figsize=(2.4 * len(names), 2.8), sharey=True, squeeze=False)
    for ax, cname in zip(axes[0], names):
        for label, rob in rob_list:
            sevs = rob.get("severities", range(1, 6))  # the severities run (`--severities` narrows them)
            ax.plot(sevs, [100 * a for a in rob["per_corruption"][cname]], "o-", label=label)
        ax.set(title=cname, xlabel="severity", xticks=range(1, 6))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def curves_figure(history: list[dict], title: str = ""):
    """Loss, accuracy and lr per epoch, from metrics.jsonl records (dicts)."""
    plt = pyplot()
    ep = [r["epoch"] for r in history]
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    ax[0].plot(ep, [r["train_loss"] for r in history], "o-", label="train")
    if any(r["val_loss"] is not None for r in history):
        ax[0].plot(ep, [r["val_loss"] for r in history], "o-", label="validation")
    ax[0].set(title="loss", xlabel="epoch")
    ax[1].plot(ep, [100 * r["train_acc"] for r in history], "o-", label="train")
    if any(r["val_acc"] is not None for r in history):
        ax[1].plot(ep, [100 * (r["val_acc"] or 0) for r in history], "o-", label="validation")
    ax[1].set(title="accuracy (%)", xlabel="epoch")
    lrs = [r["lr"] for r in history]
    ax[2].plot(ep, lrs, "o-", color="tab:green")
    ax[2].set(title="learning rate (end of epoch)", xlabel="epoch")
    if max(lrs) - min(lrs) <= 1e-3 * max(abs(v) for v in lrs) + 1e-12:  # constant: no axis of tiny steps
        v = max(lrs)
        ax[2].set_ylim(0, 2 * v if v > 0 else 1)
    for a in ax[:2]:
        a.legend()
    for a in ax:
        a.grid(alpha=0.3)
        a.xaxis.set_major_locator(plt.MaxNLocator(integer=True))  # epochs are whole numbers
    fig.suptitle(title)
    # fixed margins: tight_layout measured every tick label again and took a third of each redraw
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.14, top=0.84, wspace=0.22)
    return fig


def curves_png(history: list[dict], title: str = "") -> bytes:
    fig = curves_figure(history, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    pyplot().close(fig)
    return buf.getvalue()


def prediction_grid_figure(images, pred: list[int], y: list[int], classes):
    """Images titled with their predicted class, green when right, red when wrong."""
    titles = [f"{classes[p]}\n(true {classes[t]})" for p, t in zip(pred, y)]
    return image_grid_figure(images, titles, colors=["green" if p == t else "red" for p, t in zip(pred, y)])


# ------------------------------------------------------------------------------- stage comparison
# One hue per preset, the same in every figure of a report: the stages stand apart, seeds share their stage's hue.
STAGE_COLORS = {"baseline": "#4c72b0", "intermediate": "#dd8452", "advanced": "#55a868"}
_MORE_COLORS = ["#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd"]


def preset_colors(presets: list[str]) -> dict[str, str]:
    others = iter(_MORE_COLORS * (1 + len(presets) // len(_MORE_COLORS)))
    return {p: STAGE_COLORS.get(p) or next(others) for p in presets}


def _mean(rows: list[list[float]]) -> list[float]:
    """Element-wise mean of equally long lists (seeds of one preset), cut to the shortest."""
    n = min(len(r) for r in rows)
    return [sum(r[i] for r in rows) / len(rows) for i in range(n)]


def stage_gain_figure(groups: list[tuple[str, list[float], list[float]]], machines: list[str] | None = None):
    """Test accuracy (mean, std error bar, one point per seed) and wall time per run, per preset:
    (preset, test accuracies, wall times in s) each. Where the presets ran on different `machines` (one name a
    preset), each time bar is labelled with its machine: only bars of one machine compare."""
    plt = pyplot()
    colors = preset_colors([g[0] for g in groups])
    fig, ax = plt.subplots(1, 2, figsize=(max(11, 2.6 * len(groups)), 3.8))
    mixed = machines is not None and len(set(machines)) > 1
    for i, (preset, accs, walls) in enumerate(groups):
        if mixed:  # the machine along the bar's foot
            ax[1].annotate(machines[i], (i, 0), xytext=(0, 4), textcoords="offset points", rotation=90, ha="center",
                           va="bottom", fontsize=7)  # fmt: skip
        c = colors[preset]
        for a, values, scale, unit in ((ax[0], accs, 100, "%"), (ax[1], walls, 1, " s")):
            v = [scale * x for x in values]
            m = sum(v) / len(v)
            sd = (sum((x - m) ** 2 for x in v) / (len(v) - 1)) ** 0.5 if len(v) > 1 and unit == "%" else 0
            a.bar(i, m, 0.6, color=c, alpha=0.35, yerr=sd or None, capsize=6, ecolor=c)
            a.scatter([i + d for d in _jitter(len(v))], v, color=c, zorder=3, s=22)
            a.annotate(f"{m:.1f}{unit}", (i + 0.3, m), xytext=(3, 0), textcoords="offset points", va="center",
                       fontsize=9)  # fmt: skip
    names = [g[0].replace("-", "-\n") for g in groups]  # long preset names on two lines: four bars fit
    ax[0].set(title="test accuracy per preset (bar: mean; points: seeds)", ylabel="test accuracy (%)")
    lo = min(100 * min(g[1]) for g in groups)
    ax[0].set_ylim(max(0, lo - 8), 100)
    title = "wall time per run" + (": compare bars of one machine only" if mixed else " (bar: mean; points: seeds)")
    ax[1].set(title=title, ylabel="wall time (s)")
    ax[1].set_ylim(0, None)
    for a in ax:
        a.set_xticks(range(len(names)), names, fontsize=9)
        a.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def _jitter(n: int) -> list[float]:
    return [0.0] if n == 1 else [-0.15 + 0.3 * k / (n - 1) for k in range(n)]


def learning_curves_figure(groups: list[tuple[str, list[list[dict]]]]):
    """Training loss and validation accuracy per epoch: (preset, metrics records of each seed) each; seeds as
    thin lines, their mean as a thick one, in the preset's hue."""
    plt = pyplot()
    colors = preset_colors([g[0] for g in groups])
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
    for preset, seeds in groups:
        c = colors[preset]
        for a, key, scale in ((ax[0], "train_loss", 1), (ax[1], "val_acc", 100)):
            curves = [[scale * (m[key] or 0) for m in records] for records in seeds if records]
            if key == "val_acc" and not any(m[key] is not None for records in seeds for m in records):
                continue  # no validation split
            for curve in curves:
                a.plot(range(1, len(curve) + 1), curve, color=c, lw=0.8, alpha=0.45)
            if curves:
                mean = _mean(curves)
                a.plot(range(1, len(mean) + 1), mean, color=c, lw=2.6, marker="o", ms=3,
                       label=f"{preset} (mean of {len(curves)})")  # fmt: skip
    ax[0].set(title="training loss", xlabel="epoch")
    ax[1].set(title="validation accuracy (%)", xlabel="epoch")
    for a in ax:
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
        a.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def per_class_figure(groups: list[tuple[str, dict, dict]], classes):
    """Grouped bars of per-class test accuracy, one bar per preset with its std over seeds:
    (preset, {class: mean accuracy}, {class: std}) each."""
    plt = pyplot()
    colors = preset_colors([g[0] for g in groups])
    fig, ax = plt.subplots(figsize=(11, 3.8))
    width = 0.8 / len(groups)
    for k, (preset, mean, std) in enumerate(groups):
        xs = [i + k * width for i in range(len(classes))]
        err = [100 * std[c] for c in classes] if any(std.values()) else None
        ax.bar(xs, [100 * mean[c] for c in classes], width, label=preset, color=colors[preset], yerr=err,
               error_kw={"ecolor": "#333", "lw": 0.8, "capsize": 2})  # fmt: skip
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(classes))], classes)
    ax.set(ylabel="accuracy (%)", title="per-class test accuracy (mean over seeds, std as error bars)")
    lo = min(100 * min(g[1].values()) for g in groups)
    ax.set_ylim(max(0, lo - 10), 100)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: inside, it hides bars
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def robustness_groups_figure(groups: list[tuple[str, list[dict]]]):
    """Accuracy per corruption and severity: (preset, robustness dict of each seed) each, all on one suite
    (`inference.common_suite`); seeds thin, mean thick."""
    plt = pyplot()
    colors = preset_colors([g[0] for g in groups])
    names = list(groups[0][1][0]["per_corruption"])
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.9 * cols, 2.5 * rows), sharey=True, squeeze=False)
    for ax, cname in zip(axes.flat, names):
        for preset, robs in groups:
            sevs = robs[0].get("severities", range(1, 6))
            curves = [[100 * a for a in r["per_corruption"][cname]] for r in robs]
            for curve in curves:
                ax.plot(sevs, curve, color=colors[preset], lw=0.8, alpha=0.45)
            ax.plot(sevs, _mean(curves), color=colors[preset], lw=2.4, label=preset)
        ax.set(title=cname, xticks=range(1, 6))
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy (%)")
    for ax in axes[-1]:
        ax.set_xlabel("severity")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def drop_heatmap_figure(presets: list[str], corruptions: list[str], drops: list[list[float]], severity: int):
    """Accuracy drop (clean minus corrupted, points) per preset (rows) and corruption (columns)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(7.0, 0.9 * len(corruptions) + 2), 0.7 * len(presets) + 1.6))
    im = ax.imshow(drops, cmap="Reds", aspect="auto", vmin=0)
    ax.set_xticks(range(len(corruptions)), corruptions, rotation=30, ha="right")
    ax.set_yticks(range(len(presets)), presets)
    top = max(max(r) for r in drops) or 1
    for i, row in enumerate(drops):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8, color="white" if v > top / 2 else "black")
    ax.set_title(f"accuracy drop at severity {severity} (points, clean minus corrupted; mean over seeds)")
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    return fig


def reliability_panels_figure(groups: list[tuple[str, list[dict], list[dict]]]):
    """One reliability diagram per preset: (preset, calibration of each seed, calibration at the fitted
    temperature of each seed) each; before as solid lines, after as dashed."""
    plt = pyplot()
    colors = preset_colors([g[0] for g in groups])
    fig, axes = plt.subplots(1, len(groups), figsize=(max(7.0, 3.6 * len(groups)), 3.7), squeeze=False)
    for ax, (preset, before, after) in zip(axes[0], groups):
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        for cals, style, what in ((before, "-", "raw"), (after, "--", "at T")):
            for k, cal in enumerate(cals):
                pts = [(b["confidence"], b["accuracy"]) for b in cal["bins"] if b["count"]]
                ece = sum(c["ece"] for c in cals) / len(cals)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=colors[preset], lw=1.2,
                        alpha=1.0 if style == "-" else 0.7, marker="o", ms=2.5,
                        label=f"{what} (ECE {100 * ece:.2f}%)" if k == 0 else None)  # fmt: skip
        ax.set(title=preset, xlabel="confidence", xlim=(0, 1), ylim=(0, 1))
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy")
    fig.tight_layout()
    return fig


def ablation_figure(rows: list[tuple[str, float, float | None]]):
    """Each technique's contribution, sorted: (what is removed, accuracy without it minus the full recipe in
    points, std over seeds or None) each; a bar below zero means the technique helps."""
    plt = pyplot()
    rows = sorted(rows, key=lambda r: r[1])
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.4))
    colors = ["#c44e52" if d < 0 else "#55a868" for _, d, _ in rows]
    errs = [e or 0 for _, _, e in rows]
    ax.barh(range(len(rows)), [d for _, d, _ in rows], color=colors, xerr=errs if any(errs) else None, capsize=3)
    ax.set_yticks(range(len(rows)), [f"without {name}" for name, _, _ in rows])
    for i, (_, d, e) in enumerate(rows):
        end = d + (e or 0) if d >= 0 else d - (e or 0)  # the label clears the error bar
        ax.annotate(f"{d:+.2f}", (end, i), xytext=(4 if d >= 0 else -4, 0), textcoords="offset points",
                    ha="left" if d >= 0 else "right", va="center", fontsize=8)  # fmt: skip
    ax.axvline(0, color="k", lw=0.8)
    ax.set(xlabel="test accuracy without it minus the full recipe (points)", title="what each technique contributes")
    lo, hi = min(0, min(d - (e or 0) for _, d, e in rows)), max(0, max(d + (e or 0) for _, d, e in rows))
    pad = 0.25 * (hi - lo or 1)
    ax.set_xlim(lo - pad, hi + pad)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig
