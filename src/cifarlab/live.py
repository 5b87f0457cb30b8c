"""Watching training as it happens: terminal view, TensorBoard event files, curves.png, notebooks.

Each watcher is a callback of `train.Run`; they only read what the loop hands them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .io import atomic_write_bytes

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 24) -> str:
    """A tiny curve in block characters (the last `width` values)."""
    vals = [v for v in values if v is not None][-width:]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    span = hi - lo or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, int((v - lo) / span * (len(SPARK) - 1) + 0.5))] for v in vals)


def _fmt(v, pct=False):
    if v is None:
        return "-"
    return f"{100 * v:.2f}%" if pct else f"{v:.4f}"


class TerminalView:
    """A live rich view (progress bar, recent epochs table, sparkline curves) on a terminal;
    one plain line per epoch otherwise (CI, log files), so logs stay readable."""

    def __init__(self, console=None, live: bool | None = None, recent: int = 6):
        from rich.console import Console

        self.console = console or Console()
        if not self.console.is_terminal:  # log files: long lines rather than wrapped ones
            self.console.width = 160
        self.live_mode = self.console.is_terminal if live is None else live
        self.recent = recent
        self.live = None

    # -- events
    def on_train_start(self, run):
        from .hardware import dtype_name

        c = run.cfg
        self.total_epochs = run.planned_epochs
        self.console.print(f"[bold]cifarlab[/] {c.name}: {run.n_params / 1e6:.2f}M params, "
                           f"{run.flops / 1e6:.0f} MFLOPs/img, {run.n_train} train images, "
                           f"{run.steps_per_epoch} steps/epoch x {c.train.epochs:g} epochs"
                           f"{f' (batches in passes of {run.micro_batch})' if run.micro_batch else ''}, "
                           f"device {run.device.type} {dtype_name(run.dtype)}, "
                           f"run dir {run.dir}", highlight=False, soft_wrap=True)
        if not self.live_mode:
            return
        from rich.live import Live
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("loss {task.fields[loss]:.4f} acc {task.fields[acc]:.2%} "
                                            "lr {task.fields[lr]:.3g} {task.fields[speed]:.0f} img/s"),
                                 TimeRemainingColumn(), console=self.console)
        self.task = self.progress.add_task("train", total=run.steps_per_epoch, epoch=self._epoch_label(run),
                                           loss=0.0, acc=0.0, lr=0.0, speed=0.0)
        self.epoch_start, self.epoch_seen0 = time.time(), 0
        self.live = Live(self._render(run), console=self.console, refresh_per_second=4, transient=False)
        self.live.start()

    def _epoch_label(self, run):
        return f"{run.state.epoch + 1}/{self.total_epochs}"

    def on_step_end(self, run, loss, acc, lr):
        if not self.live:
            return
        seen = run.state.sums[2]
        speed = seen / max(1e-9, time.time() - self.epoch_start)
        self.progress.update(self.task, completed=run.state.step_in_epoch, epoch=self._epoch_label(run),
                             loss=loss, acc=acc, lr=lr, speed=speed)
        self.live.update(self._render(run))

    def on_epoch_end(self, run, record):
        r = record
        line = (f"epoch {r.epoch:>3}/{self.total_epochs}  train loss {r.train_loss:.4f} acc {_fmt(r.train_acc, True)}  "
                f"val loss {_fmt(r.val_loss)} acc {_fmt(r.val_acc, True)}  lr {r.lr:.3g}  "
                f"{r.img_per_s:.0f} img/s  {r.epoch_time:.1f}s")
        if self.live:
            self.progress.reset(self.task, total=run.steps_per_epoch, epoch=self._epoch_label(run),
                                loss=r.train_loss, acc=r.train_acc, lr=r.lr, speed=r.img_per_s)
            self.epoch_start = time.time()
            self.live.update(self._render(run))
        else:
            self.console.print(line, highlight=False, soft_wrap=True)

    def on_interrupt(self, run, signal):
        self._stop()
        self.console.print(f"[yellow]stopped by {signal}[/]: checkpoint saved at step {run.state.step}. "
                           f"Resume with: cifarlab train --resume {run.dir}", highlight=False, soft_wrap=True)

    def on_train_end(self, run, summary):
        self._stop()
        s = summary
        tta = f" (TTA {s['tta']})" if s["tta"] != "none" else ""
        self.console.print(f"[bold green]test accuracy {100 * s['test_acc']:.2f}%{tta}[/], loss {s['test_loss']:.4f}; "
                           f"best val {_fmt(s['best_val_acc'], True)}; wall {s['wall_time_s']:.1f}s "
                           f"(train {s['train_time_s']:.1f}s, {s['train_img_per_s']:.0f} img/s); "
                           f"summary: {run.dir / 'summary.json'}", highlight=False, soft_wrap=True)

    def _stop(self):
        if self.live:
            self.live.stop()
            self.live = None

    def _render(self, run):
        from rich.console import Group
        from rich.table import Table

        hist = run.state.history
        table = Table(box=None, pad_edge=False, header_style="bold")
        for col in ("epoch", "train loss", "train acc", "val loss", "val acc", "lr", "img/s", "time"):
            table.add_column(col, justify="right")
        for r in hist[-self.recent:]:
            table.add_row(str(r["epoch"]), _fmt(r["train_loss"]), _fmt(r["train_acc"], True), _fmt(r["val_loss"]),
                          _fmt(r["val_acc"], True), f"{r['lr']:.3g}", f"{r['img_per_s']:.0f}", f"{r['epoch_time']:.1f}s")
        parts = [table] if hist else []
        if len(hist) >= 2:
            parts.append(f"train loss {sparkline([r['train_loss'] for r in hist])}   "
                         f"val acc {sparkline([r['val_acc'] for r in hist])}")
        return Group(*parts, self.progress)


class TensorBoardLogger:
    """Scalars per step and per epoch, hyper-parameters with final metrics, and figures."""

    def __init__(self):
        self.writer = None

    def on_train_start(self, run):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is a dependency, but a broken install should not stop training
            print("tensorboard is not importable: no event files will be written", file=sys.stderr)
            return
        self.writer = SummaryWriter(str(run.dir / "tensorboard"))
        self.every = run.cfg.train.log_every

    def on_step_end(self, run, loss, acc, lr):
        if self.writer and run.state.step % self.every == 0:
            self.writer.add_scalar("step/train_loss", loss, run.state.step)
            self.writer.add_scalar("step/train_acc", acc, run.state.step)
            self.writer.add_scalar("step/lr", lr, run.state.step)

    def on_epoch_end(self, run, record):
        if not self.writer:
            return
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "img_per_s", "epoch_time"):
            value = getattr(record, key)
            if value is not None:
                self.writer.add_scalar(f"epoch/{key}", value, record.epoch)
        self.writer.flush()

    def on_train_end(self, run, summary):
        if not self.writer:
            return
        from .config import flatten

        hparams = {k: (v if isinstance(v, (int, float, str, bool)) else str(v))
                   for k, v in flatten(run.cfg.to_dict()).items() if k != "model" and v is not None}
        hparams["model"] = str(run.cfg.model)[:500]
        metrics = {"hparam/test_acc": summary["test_acc"], "hparam/test_loss": summary["test_loss"],
                   "hparam/best_val_acc": summary["best_val_acc"] or 0.0}
        self.writer.add_hparams(hparams, metrics, run_name=".")
        try:
            from .report import confusion_figure, prediction_grid_figure

            model = run.eval_model()
            self.writer.add_figure("test/sample_predictions", prediction_grid_figure(model, run.test_loader, run.classes), 0)
            self.writer.add_figure("test/confusion_matrix", confusion_figure(model, run.test_loader, run.classes, run.dtype), 0)
        except ImportError:
            pass
        self.writer.close()

    def on_interrupt(self, run, signal):
        if self.writer:
            self.writer.flush()


class CurvesPlot:
    """Rewrites `curves.png` (loss, accuracy, lr) after every epoch: any image viewer shows it live.

    A redraw costs ~0.3 s of matplotlib: nothing beside a CPU epoch, but over half a GPU one (an H100 trains
    the advanced preset in ~0.5 s an epoch), so epochs ending within `min_interval` seconds of the last
    redraw skip it; the final state is always drawn, at the end of training or on an interrupt.
    """

    def __init__(self, min_interval: float = 2.0):
        self.min_interval = min_interval
        self._drawn_at = float("-inf")
        self._stale = False

    def on_epoch_end(self, run, record):
        self._stale = True
        if time.perf_counter() - self._drawn_at >= self.min_interval:
            self._draw(run)

    def on_train_end(self, run, summary):
        if self._stale:
            self._draw(run)

    def on_interrupt(self, run, signal):
        self.on_train_end(run, None)

    def _draw(self, run):
        atomic_write_bytes(run.dir / "curves.png", curves_png(run.state.history, run.cfg.name))
        self._drawn_at, self._stale = time.perf_counter(), False


def curves_figure(history: list[dict], title: str = ""):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

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
    ax[2].plot(ep, [r["lr"] for r in history], "o-", color="tab:green")
    ax[2].set(title="learning rate (end of epoch)", xlabel="epoch")
    for a in ax[:2]:
        a.legend()
    for a in ax:
        a.grid(alpha=0.3)
    fig.suptitle(title)
    # fixed margins: tight_layout measured every tick label again and took a third of each redraw
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.14, top=0.84, wspace=0.22)
    return fig


def curves_png(history: list[dict], title: str = "") -> bytes:
    import io

    import matplotlib.pyplot as plt

    fig = curves_figure(history, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


class NotebookPlot:
    """In Jupyter: redraws the learning curves in place after every epoch (as a PNG, whatever the backend)."""

    def on_train_start(self, run):
        from IPython.display import display

        self.handle = display(display_id=True)

    def on_epoch_end(self, run, record):
        from IPython.display import Image

        self.handle.update(Image(data=curves_png(run.state.history, run.cfg.name)))


def default_callbacks(tensorboard: bool = True, quiet: bool = False, live: bool | None = None) -> list:
    cbs = [] if quiet else [TerminalView(live=live)]
    cbs.append(CurvesPlot())
    if tensorboard:
        cbs.append(TensorBoardLogger())
    return cbs
