"""The clean-robust trade-off of recipes screened with `cifarlab bench --dev`: validation accuracy (TTA) against
corruption accuracy on the families that every recipe given holds out of training (so no recipe is scored on a
family it trained on), mean and seed spread per recipe. Prints a markdown table and writes a figure.

    python tools/frontier.py results/robust/patch_gaussian/preset.dev.json results/robust/clean_tail/*.dev.json \
        --out results/robust/frontier.png
"""

from __future__ import annotations

import argparse

from cifarlab.commands.bench import family_mean, read_dev
from cifarlab.errors import UserError, exit_code
from cifarlab.metrics import mean_std
from cifarlab.plots import pyplot


def load(paths: list[str]) -> list[dict]:
    out = [read_dev(p) for p in paths]
    for p, d in zip(paths, out):
        if not all(r.get("robustness") for r in d["runs"]):
            raise UserError(f"{p}: a run has no corruption scores (--robust-n 0); give dev files scored on corruptions")
    return out


def held_out_by_all(benches: list[dict]) -> list[str]:
    """Families that no run of any recipe trained on, in the suite's order."""
    runs = [r["robustness"] for d in benches for r in d["runs"]]
    seen = {f for r in runs for f in r["seen"]}
    # a family every run was scored on (a narrowed --corruptions suite leaves some out) and none trained on
    return [f for f in runs[0]["per_corruption"] if f not in seen and all(f in r["per_corruption"] for r in runs)]


def spread(key: str, values: list[float]) -> dict:
    mean, sd = mean_std(values)
    return {key: mean, f"{key}_sd": sd}


def points(benches: list[dict]) -> tuple[list[str], list[dict]]:
    families = held_out_by_all(benches)
    rows = []
    for d in benches:
        clean = [100 * r["val_acc"] for r in d["runs"]]
        rob = [100 * family_mean(r, families) for r in d["runs"]]
        rows.append({"name": d["name"], "overrides": d["overrides"], "seeds": len(clean), **spread("clean", clean),
                     **spread("robust", rob)})  # fmt: skip
    return families, rows


def table(families: list[str], rows: list[dict]) -> str:
    head = f"| recipe | `--set` | val acc (TTA) | the {len(families)} families held out by all | seeds |"
    lines = [head, "|---|---|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: -r["clean"]):
        lines.append(f"| {r['name']} | {' '.join(r['overrides']) or '(preset)'} | {r['clean']:.2f} ± "
                     f"{r['clean_sd']:.2f} | {r['robust']:.2f} ± {r['robust_sd']:.2f} | {r['seeds']} |")  # fmt: skip
    return "\n".join(lines) + f"\n\nFamilies: {', '.join(families)}.\n"


def plot(rows: list[dict], n_families: int, out: str, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for r in rows:
        ax.errorbar(r["robust"], r["clean"], xerr=r["robust_sd"], yerr=r["clean_sd"], fmt="o", capsize=3,
                    label=r["name"])  # fmt: skip
    ax.legend(fontsize=8, loc="best")  # a legend, not labels: close recipes' labels overlap
    ax.set_xlabel(f"corruption accuracy, {n_families} families held out by every recipe (%)")
    ax.set_ylabel("clean validation accuracy, TTA (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bench", nargs="+", help="dev bench files (cifarlab bench --dev) with corruption scores")
    p.add_argument("--out", required=True, help="the figure (.png)")
    p.add_argument("--title", default="clean vs held-out corruption accuracy (mean ± sd over seeds)")
    a = p.parse_args(argv)
    families, rows = points(load(a.bench))
    if not families:
        raise UserError("these recipes share no held-out family: compare recipes that leave some out")
    plot(rows, len(families), a.out, a.title)
    print(table(families, rows))


if __name__ == "__main__":
    raise SystemExit(exit_code(main))
