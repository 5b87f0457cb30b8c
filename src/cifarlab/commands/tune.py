"""`cifarlab tune`: search any config key (the network included) with Optuna, pruned on validation accuracy,
resumable, on one machine or many.

A search space is YAML over the dotted keys of `--set`, list items by index included:

    optim.lr: {log_uniform: [0.005, 0.1]}
    model.stages.1.attention: {choice: [se, cbam, none]}
    model.stages.1.channels: {int: [64, 256], step: 32}
    data.augment.translate: {choice: [0, 2, 4]}

Every trial is a normal run directory under OUT/runs; the objective is its best validation accuracy (the
test set is never looked at). The study lives in a SQLite file under OUT by default, so a killed `tune`
continues with the same command; `--storage` takes any URL Optuna accepts (postgresql://..., for several
machines on one study) or a `.journal` file (several processes on one machine).
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..callbacks import CurvesPlot
from ..config import Config, apply_overrides, resolve, save_yaml
from ..errors import ConfigError, TrainingError, UserError
from ..events import EpochEnd, TrainStart
from ..plots import pyplot
from ..train import build_run

KINDS = ("uniform", "log_uniform", "int", "choice")
PRUNERS = ("median", "halving", "none")
FINISHED = ("COMPLETE", "PRUNED")


def load_optuna():
    import optuna  # noqa: PLC0415 (seconds to import: only `tune` and a study's report need it)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


@dataclass
class Param:
    key: str  # a dotted config key, as for --set
    kind: str  # uniform | log_uniform | int | choice
    values: list  # [low, high] or the choices
    step: float | None = None

    def suggest(self, trial):
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, self.values)
        lo, hi = self.values
        if self.kind == "int":
            return trial.suggest_int(self.key, lo, hi, step=int(self.step or 1))
        return trial.suggest_float(self.key, lo, hi, log=self.kind == "log_uniform", step=self.step)

    def extremes(self) -> list:
        return self.values if self.kind == "choice" else list(self.values)


# ------------------------------------------------------------------------------------------- the space
def with_values(base: Config, values: dict) -> Config:
    """`base` with dotted key -> value set, as `--set key=value` would (values written back as YAML)."""
    return apply_overrides(
        base, [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip()}" for k, v in values.items()]
    )


def load_space(path: str | Path, base: Config) -> list[Param]:
    """The search space of a YAML file, each key and range checked against `base` before any training."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"cannot read the search space {path} ({e.strerror or e}): give a YAML file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(
            f"{path}: a search space is a mapping of config keys to ranges, e.g. "
            "optim.lr: {log_uniform: [0.005, 0.1]}"
        )
    params = [_param(str(key), spec, path) for key, spec in raw.items()]
    for p in params:
        for value in p.extremes():  # the key exists and takes these values: a one-line error now, not at trial 7
            try:
                with_values(base, {p.key: value})
            except ConfigError as e:
                raise ConfigError(f"{path}: {p.key}: {e}") from None
    return params


def _param(key: str, spec, path: Path) -> Param:
    where = f"{path}: {key}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: give a range as a mapping, e.g. {{choice: [a, b]}} or {{uniform: [0, 1]}}")
    kinds = [k for k in spec if k in KINDS]
    extra = set(spec) - set(KINDS) - {"step"}
    if len(kinds) != 1 or extra:
        raise ConfigError(f"{where}: expected one of {', '.join(KINDS)} (and an optional step), got {sorted(spec)}")
    kind, values = kinds[0], spec[kinds[0]]
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: {kind} needs a non-empty list, got {values!r}")
    if kind == "choice":
        return Param(key, kind, values)
    numbers = len(values) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if not numbers or (kind == "int" and not all(isinstance(v, int) for v in values)):
        raise ConfigError(
            f"{where}: {kind} needs [low, high] as {'integers' if kind == 'int' else 'numbers'}, got {values!r}"
        )
    lo, hi = values
    if lo > hi:
        raise ConfigError(f"{where}: low {lo} is above high {hi}")
    if kind == "log_uniform" and lo <= 0:
        raise ConfigError(f"{where}: log_uniform needs low > 0, got {lo}")
    step = spec.get("step")
    if step is not None and not (isinstance(step, (int, float)) and step > 0):
        raise ConfigError(f"{where}: step must be a positive number, got {step!r}")
    if step is not None and kind == "log_uniform":
        raise ConfigError(f"{where}: a log_uniform range takes no step")
    return Param(key, kind, [lo, hi], step)


# ------------------------------------------------------------------------------------------- the study
def saved_study(name: str, storage: str | None, folders: list[Path]):
    """A finished study for a report: from `storage`, else NAME.db in the first of `folders` that holds one (the
    folder reported, where `tune --out` put it, then the default runs/tune)."""
    if storage:
        return open_study(name, storage, folders[0], create=False)
    for folder in folders:
        if (Path(folder) / f"{name}.db").exists():
            return open_study(name, None, Path(folder), create=False)
    tried = " or ".join(str(Path(f) / f"{name}.db") for f in dict.fromkeys(map(str, folders)))
    raise UserError(f"no study '{name}' in {tried}: give the --study and --storage it ran with")


def open_study(name: str, storage: str | None, out: Path, pruner: str = "median", create: bool = True):
    """The study `name` in `storage` (default: OUT/NAME.db), created when absent (with `create`)."""
    optuna = load_optuna()
    url = storage or f"sqlite:///{(Path(out) / f'{name}.db').resolve()}"
    if not create and storage is None and not (Path(out) / f"{name}.db").exists():  # do not leave an empty file
        raise UserError(
            f"no study '{name}' in {Path(out) / f'{name}.db'}: give the --study, --out or --storage it ran with"
        )
    if create and url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    try:
        backend = _storage_created(optuna, url)
        kwargs = {"direction": "maximize", "load_if_exists": True, "pruner": _pruner(optuna, pruner)}
        if create:
            return optuna.create_study(study_name=name, storage=backend, **kwargs)
        return optuna.load_study(study_name=name, storage=backend, pruner=kwargs["pruner"])
    except KeyError:
        raise UserError(f"no study '{name}' in {url}: give the --study and --storage it was run with") from None
    except Exception as e:  # a driver's or SQLAlchemy's own error type: any of them means "cannot reach it"
        if isinstance(e, UserError):
            raise
        raise ConfigError(
            f"cannot open the study storage {url} ({type(e).__name__}: {str(e).splitlines()[0][:160]}); "
            "check the URL, the server and its driver"
        ) from None


def _storage_created(optuna, url: str, attempts: int = 3):
    """The storage; processes started together on a new database race to create its tables, and the losers
    fail, so creating it is tried again (the tables then exist)."""
    for attempt in range(attempts):
        try:
            return _storage(optuna, url)
        except UserError:
            raise
        except Exception as e:
            if attempt == attempts - 1 or not _lost_the_create_race(e):
                raise
            time.sleep(0.5 * (attempt + 1))


def _lost_the_create_race(e: Exception) -> bool:
    """Another process created the tables first: a unique violation (IntegrityError), or PostgreSQL's
    DuplicateTable (a ProgrammingError: relation "studies" already exists)."""
    return "IntegrityError" in type(e).__name__ or "already exists" in str(e)


def _storage(optuna, url: str):
    if url.endswith((".journal", ".log")) and "://" not in url:
        from optuna.storages.journal import JournalFileBackend  # noqa: PLC0415 (part of optuna, imported late)

        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(url))
    if "://" not in url:
        raise ConfigError(
            f"--storage {url}: give a URL Optuna accepts (sqlite:///FILE, postgresql://...) or a FILE.journal"
        )
    # heartbeats let a later `tune` mark a killed process's trial as failed instead of running forever
    return optuna.storages.RDBStorage(
        url,
        heartbeat_interval=30,
        grace_period=90,
        engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None,
    )


def _pruner(optuna, name: str):
    if name not in PRUNERS:
        raise ConfigError(f"unknown --pruner '{name}': choose one of {', '.join(PRUNERS)}")
    if name == "median":  # a trial below the median of earlier trials at the same epoch stops
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def finished(study) -> int:
    return sum(t.state.name in FINISHED for t in study.get_trials(deepcopy=False))


class PruneOnValidation:
    """Reports each epoch's validation accuracy to the trial; stops the run when the pruner says so. A trial
    that reached its last epoch has paid for all of them: it completes, whatever the pruner says then."""

    def __init__(self, trial):
        self.trial, self.pruned, self.val, self.last = trial, False, [], 0

    def on_train_start(self, ev: TrainStart):
        self.last = ev.planned_epochs

    def on_epoch_end(self, ev: EpochEnd):
        self.trial.report(ev.record.val_acc, step=ev.record.epoch)
        self.val = [r.val_acc for r in ev.history]
        if ev.record.epoch < self.last and self.trial.should_prune():
            self.pruned = True
            ev.request_stop("pruned")


def run_trial(trial, base: Config, params: list[Param], out: Path, data: str | None) -> float:
    """One trial: a normal run directory; returns its best validation accuracy (never the test set)."""
    optuna = load_optuna()
    values = {p.key: p.suggest(trial) for p in params}
    cfg = with_values(base, values)
    cfg.name = f"{base.name}-trial{trial.number}"
    watcher = PruneOnValidation(trial)
    trainer = build_run(cfg, Path(out) / "runs", data, [watcher, CurvesPlot()])
    trial.set_user_attr("run_dir", str(trainer.dir))
    trainer.fit()
    if trainer.stop_requested not in (None, "pruned"):  # Ctrl-C: the study keeps the trial as failed
        raise KeyboardInterrupt
    summary = trainer.finish(test=False, status="pruned" if watcher.pruned else "completed")
    _trial_line(trial.number, values, watcher.val, summary.status)
    if watcher.pruned:
        raise optuna.TrialPruned()
    return summary.best_val_acc


def _trial_line(number: int, values: dict, val: list, status: str) -> None:
    params = ", ".join(f"{k}={_short(v)}" for k, v in values.items())
    accs = " ".join(f"{100 * a:.1f}" for a in val if a is not None)
    print(f"trial {number:>3}  {params}  val % by epoch: {accs}  {status}", flush=True)


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def tune(
    preset: str,
    space: str,
    trials: int,
    study: str | None = None,
    storage: str | None = None,
    timeout: float | None = None,
    overrides=(),
    data=None,
    out="runs/tune",
    epochs=None,
    seed=None,
    device=None,
    pruner: str = "median",
) -> object:
    """Run trials until the study holds `trials` finished (completed or pruned) ones, or `timeout` seconds."""
    if trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {trials}")
    base = resolve(preset, overrides, epochs, seed, device)
    base.runtime.tensorboard = False
    if base.data.val_size == 0:
        raise ConfigError("tune chooses on validation accuracy: give data.val_size > 0")
    params = load_space(space, base)
    name = study or f"{base.name}-tune"
    st = open_study(name, storage, Path(out), pruner)
    optuna = load_optuna()
    stop = optuna.study.MaxTrialsCallback(
        trials, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    )
    done = finished(st)
    if done >= trials:
        print(f"study '{name}' already has {done} finished trials (asked {trials}): see cifarlab tune --show {name}")
    else:
        where = storage or Path(out) / f"{name}.db"
        print(f"study '{name}' ({where}): {done} of {trials} trials finished", flush=True)
        st.optimize(
            lambda t: run_trial(t, base, params, Path(out), data),
            n_trials=trials - done,
            timeout=timeout,
            callbacks=[stop, _best_so_far],
            catch=(ConfigError, TrainingError),
        )
    write_best(st, base, Path(out) / f"{name}.best.yaml")
    return st


def _best_so_far(study, trial) -> None:
    try:
        best = study.best_trial
    except ValueError:  # no completed trial yet
        return
    print(f"best so far: trial {best.number}, val {100 * best.value:.2f}%", flush=True)


def write_best(study, base: Config, path: Path) -> Path | None:
    """The best trial's config as YAML: `cifarlab train PATH` repeats it (and gives its test accuracy)."""
    try:
        best = study.best_trial
    except ValueError:
        return None
    cfg = with_values(base, best.params)
    cfg.name = f"{base.name}-best"
    cfg.description = f"best of study '{study.study_name}': trial {best.number}, val {100 * best.value:.2f}%"
    save_yaml(cfg, path)
    print(f"best config: {path} (cifarlab train {path})")
    return path


def leaderboard(study) -> list[list[str]]:
    """Rows of (trial, state, best val accuracy, params), best first."""
    rows = []
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: -(t.value if t.value is not None else -math.inf))
    for t in trials:
        value = (
            f"{100 * t.value:.2f}%"
            if t.value is not None
            else (f"{100 * max(t.intermediate_values.values()):.2f}% (pruned)" if t.intermediate_values else "-")
        )
        rows.append(
            [str(t.number), t.state.name.lower(), value, ", ".join(f"{k}={_short(v)}" for k, v in t.params.items())]
        )
    return rows


def show(study: str, storage: str | None, out: str = "runs/tune") -> None:
    st = open_study(study, storage, Path(out), create=False)
    rows = leaderboard(st)
    print(f"study '{study}': {finished(st)} finished trials of {len(rows)}")
    print(f"{'trial':>5}  {'state':<9} {'val acc':<18} params")
    for number, state, value, params in rows:
        print(f"{number:>5}  {state:<9} {value:<18} {params}")
    sys.stdout.flush()


def study_figures(study) -> list:
    """Optuna's own matplotlib figures of a study: optimization history, parameter importances (when two or
    more trials completed) and parallel coordinates."""
    pyplot()  # the Agg backend, before Optuna's plots import pyplot
    vm = load_optuna().visualization.matplotlib
    figs = []
    for plot in (vm.plot_optimization_history, vm.plot_param_importances, vm.plot_parallel_coordinate):
        try:
            ax = plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError):  # too few completed trials for this figure
            continue
        fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        fig.set_size_inches(9, 4.5)
        figs.append(fig)
    return figs
