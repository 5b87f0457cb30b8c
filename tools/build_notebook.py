"""Write notebooks/stages.ipynb from its cells here and run it on the committed results/ (no training), so
that its outputs are committed with it:  python tools/build_notebook.py  (a test checks they are current)."""

from __future__ import annotations

import sys
from pathlib import Path

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "stages.ipynb"

CELLS = [
    (
        "md",
        """# cifarlab: the three stages

CIFAR-10 grown in three stages: a **baseline** CNN, an **intermediate** net of blocks with attention, and an
**advanced** recipe of training techniques. The first part reads the committed measurements in `results/`
(nothing trains); the second trains the stages yourself, switched on by `TRAIN` (or `NOTEBOOK_TRAIN=1`).
Every figure here comes from a file that a command wrote; the commands are in `docs/experiments.md`.""",
    ),
    (
        "code",
        """import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from cifarlab.commands.bench import dev_line, results_table

TRAIN = os.environ.get("NOTEBOOK_TRAIN", "0") == "1"  # True: also train the three stages below (minutes)
ROOT = Path.cwd() if (Path.cwd() / "results").is_dir() else Path.cwd().parent
RESULTS = ROOT / "results"
STAGES = ["baseline", "intermediate", "advanced"]
bench = {s: json.loads((RESULTS / f"{s}.bench.json").read_text()) for s in STAGES}""",
    ),
    (
        "md",
        """## What each stage reaches

`cifarlab bench PRESET --seeds 3` on a 2-core AMD EPYC (bf16): test accuracy over 3 seeds, wall time of a
run. The test set gives only these final numbers; models are selected on a validation split.""",
    ),
    (
        "code",
        """display(Markdown(results_table([RESULTS / f"{s}.bench.json" for s in STAGES])))
acc = [100 * bench[s]["test_acc_mean"] for s in STAGES]
std = [100 * bench[s]["test_acc_std"] for s in STAGES]
wall = [bench[s]["wall_time_mean_s"] for s in STAGES]
for s, a, b in zip(STAGES[1:], acc[1:], acc[:-1]):
    print(f"{s}: {a - b:+.2f} points over the stage before")
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
ax1.bar(STAGES, acc, yerr=std, color=["#999", "#69c", "#c63"], capsize=4)
ax1.set_ylim(60, 100), ax1.set_ylabel("test accuracy (%)"), ax1.set_title("accuracy, 3 seeds")
ax2.bar(STAGES, wall, color=["#999", "#69c", "#c63"])
ax2.set_ylabel("seconds"), ax2.set_title("wall time per run, 2-core CPU")
plt.tight_layout()
plt.show()""",
    ),
    (
        "md",
        """## Stage 3's gain, taken apart

Stage 3 changes the network *and* the training. `intermediate-techniques` is stage 2's network trained with
stage 3's techniques, so the gain splits into three steps: architecture and attention (same training), the
training techniques (same network), the faster network (same training). All four on one 2-core Intel Xeon
(fp32), 3 seeds each, one run at a time.""",
    ),
    (
        "code",
        """from cifarlab.commands.report import STAGES, STEPS

steps = {s: json.loads((RESULTS / "xeon" / f"{s}.bench.json").read_text()) for s in STAGES}
names = list(steps)
rows = ["| preset | seeds | test accuracy | wall time / run | train img/s |", "|---|---:|---:|---:|---:|"]
rows += [f"| {s} | {len(b['seeds'])} | {100 * b['test_acc_mean']:.2f}%"
         + (f" ± {100 * b['test_acc_std']:.2f}" if len(b["seeds"]) > 1 else "")
         + f" | {b['wall_time_mean_s']:.0f} s | {b['train_img_per_s_mean']:.0f} |" for s, b in steps.items()]
display(Markdown("\\n".join(rows)))  # in stage order; the full rows are in the README's results table
acc = [100 * steps[s]["test_acc_mean"] for s in names]
for (prev, cur), a, b in zip(zip(names, names[1:]), acc[1:], acc[:-1]):
    print(f"{STEPS[(prev, cur)]}: {a - b:+.2f} points ({cur})")  # the report's names for the steps
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.4))
colors = ["#999", "#69c", "#6a6", "#c63"]
labels = [s.replace("-", "-\\n") for s in names]
ax1.bar(labels, acc, yerr=[100 * steps[s]["test_acc_std"] for s in names], color=colors, capsize=4)
ax1.set_ylim(60, 100), ax1.set_ylabel("test accuracy (%)"), ax1.set_title("accuracy (mean over seeds)")
ax2.bar(labels, [steps[s]["wall_time_mean_s"] for s in names], color=colors)
ax2.set_ylabel("seconds"), ax2.set_title("wall time per run, 2-core Xeon")
plt.tight_layout()
plt.show()""",
    ),
    (
        "md",
        """## What each technique of the advanced recipe buys

`cifarlab ablate advanced`: the recipe with one technique removed (one seed each, against the full recipe's
seed 0; seeds differ by ~0.3 points, so small bars are noise). Each technique is explained in
`docs/recipe.md`.""",
    ),
    (
        "code",
        """ablation = json.loads((RESULTS / "levers" / "ablation.json").read_text())
full = next(r["test_acc"] for r in ablation if r["variant"] == "full")
rows = [(r["removed"], 100 * (r["test_acc"] - full)) for r in ablation if r["variant"] != "full"]
rows.sort(key=lambda r: r[1])
for removed, d in rows:
    print(f"without {removed:<24} {d:+.2f} points")
fig, ax = plt.subplots(figsize=(7, 3))
ax.barh([r[0] for r in rows], [r[1] for r in rows], color=["#c63" if d < 0 else "#69c" for _, d in rows])
ax.axvline(0, color="k", lw=0.8)
ax.set_xlabel(f"points against the full recipe ({100 * full:.2f}%)")
plt.tight_layout()
plt.show()""",
    ),
    (
        "md",
        """## Robustness: accuracy on corrupted images

Held-out corruptions are the CIFAR-10-C families (noise, blur, weather, digital; severities 1-5) that the
training augmentation never produced. These rows are **screens**: 2 epochs, 45,000 training images, scored on
500 validation images corrupted (`cifarlab bench advanced --dev`); the recipe levers are in
`docs/robustness.md`.""",
    ),
    (
        "code",
        """screen = RESULTS / "robust" / "screen"
dev = {n: json.loads((screen / f"{n}.dev.json").read_text()) for n in ["base", "stem", "stem_aug25"]}
for d in dev.values():
    print(dev_line(d))
names = list(dev)
fig, ax = plt.subplots(figsize=(7, 3))
x = range(len(names))
ax.bar([i - 0.2 for i in x], [100 * dev[n]["val_acc_mean"] for n in names], 0.4, label="clean validation")
ax.bar([i + 0.2 for i in x], [100 * dev[n]["held_out_acc_mean"] for n in names], 0.4, label="held-out corruptions")
ax.set_xticks(list(x), names), ax.set_ylim(50, 100), ax.set_ylabel("accuracy (%)")
ax.legend(loc="upper center", ncol=2, frameon=False)
plt.tight_layout()
plt.show()""",
    ),
    (
        "md",
        """## The stage report

`make report` compares the stages' runs (McNemar tests, per-class accuracy, calibration, robustness) and
writes `results/report/report.html`. Its headline:""",
    ),
    (
        "code",
        """report = (RESULTS / "report" / "report.md").read_text()
display(Markdown(report.split("## Headline")[1].split("##")[0].strip()))""",
    ),
    (
        "md",
        """## Train the stages yourself

Runs only with `TRAIN = True` (or `NOTEBOOK_TRAIN=1`). The settings are short so that it finishes in minutes
on a laptop CPU: `NOTEBOOK_EPOCHS`, `NOTEBOOK_SUBSET` (training images per stage) and `NOTEBOOK_VAL` change
them. Data comes from `CIFAR10_DIR` when it is set, else from the cache (downloaded once).""",
    ),
    (
        "code",
        """from cifarlab.callbacks import CurvesPlot, NotebookPlot
from cifarlab.config import apply_overrides, load_preset
from cifarlab.train import train

DATA = os.environ.get("CIFAR10_DIR")
EPOCHS = float(os.environ.get("NOTEBOOK_EPOCHS", "2"))
SUBSET = int(os.environ.get("NOTEBOOK_SUBSET", "5000"))
VAL = int(os.environ.get("NOTEBOOK_VAL", "1000"))
OUT = Path(os.environ.get("NOTEBOOK_OUT", "runs/notebook"))


def stage(name, *extra):
    \"\"\"A preset with `--set`-style overrides: a stage is a config.\"\"\"
    overrides = [f"data.val_size={VAL}", f"data.train_subset={SUBSET}", "runtime.tensorboard=false", *extra]
    overrides += [f"train.epochs={EPOCHS}"] if EPOCHS else []
    overrides += [f"data.dir={DATA}"] if DATA else []
    return apply_overrides(load_preset(name), overrides)


runs = {}
if TRAIN:
    for name, extra in [("baseline", []), ("intermediate", []), ("advanced", ["data.batch_size=500"])]:
        run_dir, summary = train(stage(name, *extra), OUT, callbacks=[NotebookPlot(), CurvesPlot()])
        runs[name] = run_dir
        print(f"{name}: test accuracy {summary.test_acc:.2%}, wall {summary.wall_time_s:.0f}s")""",
    ),
    (
        "code",
        """if TRAIN:
    from cifarlab.commands.report import compare

    html_path, md_path = compare(list(runs.values()), OUT / "report", DATA)
    print(md_path.read_text()[:1500])""",
    ),
]


def build() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    make = {"md": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell}
    nb.cells = [make[kind](src) for kind, src in CELLS]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"  # stable ids: a rebuild changes only what changed
    return nb


def execute(nb: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return nb


def text_outputs(nb: nbformat.NotebookNode) -> list[str]:
    """What each code cell printed or showed as Markdown: the numbers a stale notebook would get wrong."""
    return [
        "".join(o.get("text", "") + o.get("data", {}).get("text/markdown", "") for o in c.get("outputs", []))
        for c in nb.cells
        if c.cell_type == "code"
    ]


def main() -> int:
    nb = execute(build(), NOTEBOOK.parent)
    nbformat.write(nb, NOTEBOOK)
    print(f"wrote {NOTEBOOK.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
