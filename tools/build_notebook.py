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
**advanced** recipe of training techniques that generalizes to the images users really have (noisy, blurred,
compressed). Two more presets split stage 3's gain: `intermediate-techniques` (stage 2's network with stage 3's
training) and `advanced-clean` (stage 3 before its robustness training). The first part reads the committed
measurements in `results/` (nothing trains); the second trains the stages yourself, switched on by `TRAIN` (or
`NOTEBOOK_TRAIN=1`). Every figure here comes from a file that a command wrote; the commands are in
`docs/experiments.md`.""",
    ),
    (
        "code",
        """import os
from pathlib import Path

from IPython.display import Image, Markdown, display

from cifarlab.metrics import accuracy_cell
from cifarlab.commands.report import STEPS
from cifarlab.hardware import machine_label
from cifarlab.plots import fig_png, pyplot, stage_gain_figure
from cifarlab.rundir import read_bench, read_run

TRAIN = os.environ.get("NOTEBOOK_TRAIN", "0") == "1"  # True: also train the three stages below (minutes)
ROOT = Path.cwd() if (Path.cwd() / "results").is_dir() else Path.cwd().parent
RESULTS = ROOT / "results"
# 3 seeds each on test: the first four on one 2-core Xeon, the advanced preset on one 2-core AMD EPYC (fp32)
STEPS_XEON = ["baseline", "intermediate", "intermediate-techniques", "advanced"]  # file names of their day
FILES = [RESULTS / "xeon" / f"{s}.bench.json" for s in STEPS_XEON]
FILES.append(RESULTS / "checkpoint_rule" / "advanced.bench.json")
bench = {b.preset: b for b in map(read_bench, FILES)}  # named by the preset whose recipe each ran
names = list(bench)
plt = pyplot()  # the figures are shown as PNGs (fig_png), as the report embeds them


def show(fig):
    display(Image(fig_png(fig)))""",
    ),
    (
        "md",
        """## What each stage reaches

`cifarlab bench PRESET --seeds 3`: test accuracy over 3 seeds and the wall time of a run. The test set gives
only these final numbers; recipes are chosen on a validation split. Machines of one name differ up to 2× in
speed, so a wall-time bar compares only with bars of the same machine.""",
    ),
    (
        "code",
        """header = "| preset | recipe | seeds | test accuracy | wall time / run | machine |"
rows = [header, "|---|---|---:|---:|---:|---|"]
rows += [f"| {n} | {b.recipe_id} | {len(b.seeds)} | {accuracy_cell(b.test_acc_mean, b.test_acc_std, len(b.seeds))} "
         f"| {b.wall_time_mean_s:,.0f} s | {machine_label(b.device)}, {b.dtype} |" for n, b in bench.items()]
display(Markdown("\\n".join(rows)))  # in stage order; every column is in the README's results table
fig = stage_gain_figure([(n, [r["test_acc"] for r in b.runs], [r["wall_time_s"] for r in b.runs])
                         for n, b in bench.items()],
                        [machine_label(b.device) for b in bench.values()])
show(fig)""",
    ),
    (
        "md",
        """## Stage 3's gain, taken apart

Stage 3 changes the network *and* the training. Each step below changes one thing: architecture and attention
(same training), the training techniques (same network), the faster network (same training), the robustness
training (same network, plus anti-aliased pooling), then the checkpoint served. The robustness step is measured
on one AMD EPYC with AVX-512 against `advanced-clean` run there too (`results/robust/three_seeds/`), both
serving the epoch a 1,000-image split picked, so its time ratio is of one machine; the last step serves the last
epoch of the same trainings instead (`results/avx2/` and `results/checkpoint_rule/`, one AVX2 EPYC).""",
    ),
    (
        "code",
        """def step(label, a, b, ratio=True):
    gain = 100 * (b.test_acc_mean - a.test_acc_mean)
    cost = f"{b.wall_time_mean_s / a.wall_time_mean_s:.2f}x the wall time" if ratio else "the same trainings"
    print(f"{label}: {gain:+.2f} points ({b.preset}, recipe {b.recipe_id}), {cost}")


for prev, cur in zip(names[:3], names[1:4]):  # one Xeon
    step(STEPS[(prev, cur)], bench[prev], bench[cur])
three_seeds = RESULTS / "robust" / "three_seeds"  # advanced-clean and the robust recipe, one AVX-512 EPYC
step("Corruption and AugMix shares, anti-aliased pooling (the split's pick served)",
     read_bench(three_seeds / "advanced.bench.json"), read_bench(three_seeds / "advanced-robust.bench.json"))
step("The last epoch served (train.checkpoint: last), AVX2 EPYC",
     read_bench(RESULTS / "avx2" / "advanced.bench.json"), bench["advanced"], ratio=False)""",
    ),
    (
        "md",
        """## What each technique of the advanced recipe buys

`cifarlab ablate`: the recipe with one technique removed (one seed each, against the full recipe's seed 0;
seeds differ by ~0.3 points, so small bars are noise), run on the recipe before its robustness levers (now
`advanced-clean`). Each technique, the robustness levers too, is explained in `docs/recipe.md`.""",
    ),
    (
        "code",
        """import json

ablation = json.loads((RESULTS / "levers" / "ablation.json").read_text())
full = next(r["test_acc"] for r in ablation if r["variant"] == "full")
rows = [(r["removed"], 100 * (r["test_acc"] - full)) for r in ablation if r["variant"] != "full"]
rows.sort(key=lambda r: r[1])
for removed, d in rows:
    print(f"without {removed:<24} {d:+.2f} points")
fig, ax = plt.subplots(figsize=(7, 3))
ax.barh([r[0] for r in rows], [r[1] for r in rows], color=["#c63" if d < 0 else "#69c" for _, d in rows])
ax.axvline(0, color="k", lw=0.8)
ax.set_xlabel(f"points against the full recipe ({100 * full:.2f}%)")
fig.tight_layout()
show(fig)""",
    ),
    (
        "md",
        """## Robustness: accuracy on corrupted images

`cifarlab evaluate RUN --robustness-n 1000` on the stage runs (`results/stages/`): 1,000 test images under the
19 CIFAR-10-C families at severities 1-5. **Held out** are the families that a run's training augmentation
never produces (all 19 for every stage but `advanced`, which trains on noise, JPEG, pixelation and AugMix's
warps and so keeps 12 held out); the mean over them is the robustness headline.""",
    ),
    (
        "code",
        """from collections import defaultdict

runs = [read_run(d) for d in sorted((RESULTS / "stages").iterdir()) if (d / "summary.json").exists()]
rob = defaultdict(list)
for r in runs:
    if r.evaluation and r.evaluation.robustness:
        rob[r.summary.preset].append(r.evaluation.robustness)
order = [n for n in names if n in rob]
clean = [100 * sum(x["clean_acc_same_images"] for x in rob[n]) / len(rob[n]) for n in order]
held = [100 * sum(x["held_out_acc"] for x in rob[n]) / len(rob[n]) for n in order]
for n, c, h in zip(order, clean, held):
    seeds = f"{len(rob[n])} seed" + ("s" if len(rob[n]) > 1 else "")
    print(f"{n:<24} clean (one view) {c:.2f}%  held-out corruptions {h:.2f}% ({seeds})")
fig, ax = plt.subplots(figsize=(9, 3.2))
x = range(len(order))
ax.bar([i - 0.2 for i in x], clean, 0.4, label="clean, one view (the same 1,000 images)")
ax.bar([i + 0.2 for i in x], held, 0.4, label="held-out corruptions, severities 1-5")
ax.set_xticks(list(x), [n.replace("-", "-\\n") for n in order]), ax.set_ylim(40, 100)
ax.set_ylabel("accuracy (%)"), ax.legend(loc="upper left", ncol=2, frameon=False)
fig.tight_layout()
show(fig)""",
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
