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
            ax.plot(range(1, 6), [100 * a for a in rob["per_corruption"][cname]], "o-", label=label)
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


def learning_curves_figure(named: list[tuple[str, list[dict]]]):
    """Training loss and validation accuracy of several runs, (name, metrics records) each."""
    plt = pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.6))
    for name, records in named:
        ep = [m["epoch"] for m in records]
        ax[0].plot(ep, [m["train_loss"] for m in records], "o-", label=name)
        ax[1].plot(ep, [100 * (m["val_acc"] or 0) for m in records], "o-", label=name)
    ax[0].set(title="training loss", xlabel="epoch")
    ax[1].set(title="validation accuracy (%)", xlabel="epoch")
    for a in ax:
        a.grid(alpha=0.3), a.legend(fontsize=7)
        a.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    return fig


def per_class_figure(named: list[tuple[str, dict]], classes):
    """Grouped bars of per-class accuracy, (name, {class: accuracy}) each."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(11, 3.6))
    width = 0.8 / len(named)
    for k, (n, per_class) in enumerate(named):
        ax.bar([i + k * width for i in range(len(classes))], [100 * per_class[c] for c in classes], width, label=n)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(classes))], classes)
    ax.set(ylabel="accuracy (%)", title="per-class test accuracy")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: inside, it hides bars
    ax.grid(alpha=0.3, axis="y")
    return fig
