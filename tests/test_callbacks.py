from cifarlab.callbacks import CurvesPlot, TerminalView, sparkline
from cifarlab.config import apply_overrides, load_preset
from cifarlab.rundir import EpochRecord
from cifarlab.train import train
from conftest import TINY


def test_tensorboard_tags(two_runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (event_dir,) = {p.parent for p in (two_runs[0] / "tensorboard").rglob("events.out.tfevents.*")} - {
        p.parent for p in (two_runs[0] / "tensorboard").glob("*/events.out.tfevents.*")
    }
    acc = EventAccumulator(str(event_dir), size_guidance={"images": 0}).Reload()
    scalars = set(acc.Tags()["scalars"])
    assert {"epoch/train_loss", "epoch/val_acc", "epoch/lr", "epoch/img_per_s", "step/epoch_mean_loss"} <= scalars
    assert {"test/sample_predictions", "test/confusion_matrix"} <= set(acc.Tags()["images"])
    assert len(acc.Scalars("epoch/val_acc")) == 2
    hp_files = list((two_runs[0] / "tensorboard").rglob("events.out.tfevents.*"))
    assert any(b"hparams" in f.read_bytes() or b"_hparams_" in f.read_bytes() for f in hp_files)


def test_tensorboard_keeps_every_log_every_steps_of_each_epoch():
    from types import SimpleNamespace

    from cifarlab.callbacks import TensorBoardLogger

    logged = []
    tb = TensorBoardLogger()
    tb.writer = SimpleNamespace(add_scalar=lambda tag, v, step: logged.append((tag, step)))
    tb.every = 5
    steps_per_epoch = 7  # not a multiple of log_every: the trainer emits at steps 5, 7 of each epoch
    for epoch in range(2):
        for in_epoch in (5, 7):
            step = epoch * steps_per_epoch + in_epoch
            tb.on_step_end(SimpleNamespace(step=step, step_in_epoch=in_epoch, loss=1.0, acc=0.5, lr=0.1))
    assert [s for tag, s in logged if tag == "step/epoch_mean_loss"] == [5, 12]


def test_curves_png_written(two_runs):
    png = (two_runs[0] / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_curves_redraw_is_throttled_but_ends_current(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import cifarlab.callbacks as callbacks

    monkeypatch.setattr(callbacks, "curves_png", lambda history, title="": f"{len(history)} epochs".encode())
    history = []
    start = SimpleNamespace(run_dir=tmp_path, name="x", history=history)
    drawn = lambda: (tmp_path / "curves.png").read_text()  # noqa: E731

    def epoch_end(plot, epoch):
        history.append(EpochRecord(epoch, 1.0, 0.5, None, None, 0.1, 1.0, 100.0))
        plot.on_epoch_end(SimpleNamespace(record=history[-1], history=list(history), request_stop=None))

    plot = CurvesPlot(min_interval=60)
    plot.on_train_start(start)
    for epoch in (1, 2, 3):  # fast epochs: the first is drawn, the next two wait
        epoch_end(plot, epoch)
    assert drawn() == "1 epochs"
    plot.on_train_end(SimpleNamespace())
    assert drawn() == "3 epochs"
    every = CurvesPlot(min_interval=0)  # slow epochs (a CPU's): every one is drawn
    every.on_train_start(start)
    epoch_end(every, 4)
    assert drawn() == "4 epochs"
    epoch_end(plot, 5)
    plot.on_interrupt(SimpleNamespace(signal="SIGINT", step=5, run_dir=tmp_path, history=list(history)))
    assert drawn() == "5 epochs"


def test_terminal_view_plain_lines(tiny_data, tmp_path):
    from rich.console import Console

    console = Console(file=open(tmp_path / "log.txt", "w"), force_terminal=False, width=200)
    cfg = apply_overrides(load_preset("baseline"), TINY + [f"data.dir={tiny_data}"])
    train(cfg, tmp_path / "runs", callbacks=[TerminalView(console=console)])
    console.file.close()
    lines = (tmp_path / "log.txt").read_text().splitlines()
    assert any(line.startswith("epoch   1/2") for line in lines) and any("test accuracy" in line for line in lines)
    assert not any("\x1b[" in line for line in lines)  # no escape codes in a log file


def test_terminal_view_live_renders(tiny_data, tmp_path):
    from rich.console import Console

    console = Console(file=open(tmp_path / "tty.txt", "w"), force_terminal=True, width=120)
    cfg = apply_overrides(load_preset("baseline"), TINY + [f"data.dir={tiny_data}", "train.epochs=3"])
    train(cfg, tmp_path / "runs", callbacks=[TerminalView(console=console, live=True)])
    console.file.close()
    text = (tmp_path / "tty.txt").read_text()
    assert "val acc" in text and "img/s" in text and "test accuracy" in text


def test_sparkline():
    assert sparkline([1, 2, 3]) == "▁▅█" and sparkline([]) == ""


def test_live_view_ends_on_the_last_epoch_not_past_it(tiny_data, tmp_path):
    from rich.console import Console

    console = Console(file=open(tmp_path / "tty.txt", "w"), force_terminal=True, width=140)
    cfg = apply_overrides(load_preset("baseline"), TINY + [f"data.dir={tiny_data}", "train.epochs=3"])
    view = TerminalView(console=console, live=True)
    train(cfg, tmp_path / "runs", callbacks=[view])
    console.file.close()
    text = (tmp_path / "tty.txt").read_text()
    assert "epoch 3/3" in text and "epoch 4/3" not in text
    task = view.progress.tasks[0]
    assert task.completed == task.total  # left full, not reset to 0 of the next epoch


def test_curves_have_whole_epoch_ticks_and_a_plain_constant_lr_axis():
    from cifarlab.plots import curves_figure

    history = [
        {"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.1 / e, "train_acc": 0.1 * e, "val_acc": 0.1 * e, "lr": 0.02}
        for e in (1, 2, 3)
    ]
    fig = curves_figure(history)
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert all(float(t).is_integer() for t in ticks), ticks
    lo, hi = fig.axes[2].get_ylim()
    assert (lo, hi) == (0, 0.04)  # a constant lr sits mid-axis, not on a 0.0190-0.0210 scale


def test_notebook_plot_outside_a_notebook_says_so_and_lets_training_finish(tiny_data, tmp_path, capsys):
    """In a script IPython's display() returns no handle: the run still trains to its end (it died after the
    first epoch with an AttributeError), and one line says where the curves are drawn instead."""
    from cifarlab.callbacks import NotebookPlot

    cfg = apply_overrides(load_preset("baseline"), TINY + [f"data.dir={tiny_data}"])
    run_dir, summary = train(cfg, tmp_path, callbacks=[NotebookPlot()])
    assert summary is not None and summary.epochs == 2
    assert "NotebookPlot draws in Jupyter only" in capsys.readouterr().out
