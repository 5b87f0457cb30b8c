"""The training loop: a config in, a run directory out.

    trainer = build_run(cfg, out)      # data, model, optimizer, run directory (or resume_run(run_dir))
    trainer.fit()                      # epochs of steps; events (cifarlab.events) to the callbacks
    summary = trainer.finish()         # the best checkpoint on the test set -> summary.json

The loop knows no model class: a net's recipe tricks (whitening from data, what trains when, its BN under
micro-batches) are its own hooks, called here by name when the net has them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import platform
import random
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import __version__
from . import checkpoint as ckpt_io
from .config import Config, recipe, recipe_id, save_yaml
from .data import Cifar10, Loader, load_cifar10, locate, train_val_indices
from .errors import TrainingError, UserError
from .events import EpochEnd, Interrupt, StepEnd, TrainEnd, TrainStart
from .hardware import (
    auto_micro_batch,
    autocast,
    device_description,
    dtype_name,
    keep_freed_memory,
    select_device,
    select_precision,
)
from .inference import predict_logits
from .metrics import accuracy
from .models import bn_stats_frozen, build_model, count_flops, count_params
from .optim import Lookahead, lr_factor, make_optimizer, set_lr
from .parallel import on_rank0
from .rundir import EpochRecord, Summary, recorded_source, write_metrics, write_summary

THRESHOLDS = (90, 93, 94)  # validation accuracies whose first epoch the summary records


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class State:
    """Where a run is; saved in every checkpoint, so a resumed run continues bit for bit."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken in all
    step_in_epoch: int = 0
    loss_sum: float = 0.0  # this epoch so far: summed loss, correct predictions, images seen
    correct: float = 0.0
    seen: int = 0
    best_val_acc: float = -1.0
    history: list = field(default_factory=list)  # EpochRecord dicts
    train_time: float = 0.0  # seconds spent in training steps (excl. evaluation)
    wall_time: float = 0.0  # seconds since the run started, accumulated over resumes

    @classmethod
    def from_dict(cls, d: dict) -> State:
        d = dict(d)
        if "sums" in d:  # checkpoints of earlier versions: [loss sum, correct, seen]
            d["loss_sum"], d["correct"], d["seen"] = d.pop("sums")
        return cls(**d)


# ------------------------------------------------------------------------------------------- set-up
def make_loaders(cfg: Config, data: Cifar10, device, dist=None) -> tuple[Loader, Loader | None, Loader, torch.Tensor]:
    """(train, validation or None, test) loaders, and the training images a net may fit itself to."""
    d, cl = cfg.data, cfg.runtime.channels_last
    train_idx, val_idx = train_val_indices(data.train_y, d.val_size, d.train_subset)
    shard = (dist.rank, dist.world) if dist else (0, 1)
    train = Loader(
        data.train_x[train_idx],
        data.train_y[train_idx],
        d.batch_size,
        device,
        shuffle=True,
        drop_last=len(train_idx) > d.batch_size,
        augment=d.augment,
        seed=cfg.train.seed,
        channels_last=cl,
        shard=shard,
    )
    val = (
        Loader(data.train_x[val_idx], data.train_y[val_idx], d.eval_batch_size, device, channels_last=cl)
        if len(val_idx)
        else None
    )
    test = Loader(data.test_x, data.test_y, d.eval_batch_size, device, channels_last=cl)
    return train, val, test, data.train_x[train_idx]


def make_model(cfg: Config, num_classes: int, device, dtype, train: Loader, train_x: torch.Tensor):
    """The net on its device, fitted to the data where it asks, and its images per pass (0 = whole batch)."""
    model = build_model(cfg.model, num_classes=num_classes)
    batch, mb = cfg.data.batch_size, cfg.runtime.micro_batch
    mb = mb or auto_micro_batch(device, dtype) or batch
    micro_batch = mb if mb < batch else 0
    if micro_batch and hasattr(model, "passes_per_step"):
        model.passes_per_step(-(-batch // mb))
    if getattr(model, "data_sample", 0):
        model.fit_to_data(train.normalize(train_x[: model.data_sample].to(device)).float().contiguous())
    model = model.to(device)
    if cfg.runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, micro_batch


def _run_dir(out, name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir, n = Path(out) / f"{stamp}-{name}", 1
    while run_dir.exists():  # two runs started in the same second
        run_dir, n = Path(out) / f"{stamp}-{name}-{n}", n + 1
    return run_dir


def locate_on_each_machine(option: str | None, dist) -> Path:
    """data.locate, the first process of each machine first: it alone downloads CIFAR-10 where the data is
    missing, while the others wait, rather than every GPU's process fetching the archive at once."""
    if dist is None:
        return locate(option)
    path = locate(option) if dist.local_rank == 0 else None
    dist.barrier()
    return path or locate(option)


def build_run(
    cfg: Config, out="runs", data_path: str | None = None, callbacks=(), run_dir: Path | None = None, dist=None
) -> Trainer:
    """A Trainer with its data, model and optimizer, and its run directory (config.yaml written)."""
    t0 = time.time()  # wall time includes finding and loading the data
    device = dist.device if dist else select_device(cfg.runtime.device)
    path = locate_on_each_machine(data_path or cfg.data.dir, dist)
    run_dir = run_dir or _run_dir(out, cfg.name)
    if dist is not None:  # every rank must write to (and resume from) rank 0's directory
        run_dir = dist.broadcast(run_dir)
    # saved in checkpoints: --resume and evaluate find the data again
    trainer = Trainer(cfg, run_dir, load_cifar10(path), device, callbacks, dist, str(Path(path).resolve()), t0)
    if trainer.is_main:
        try:
            trainer.dir.mkdir(parents=True, exist_ok=True)
            save_yaml(cfg, trainer.dir / "config.yaml")
        except OSError as e:
            raise UserError(
                f"cannot write the run directory {trainer.dir} ({e.strerror or e}): choose another --out"
            ) from None
    return trainer


def resume_run(
    run_dir: Path, data_path: str | None = None, callbacks=(), epochs: float | None = None, dist=None
) -> Trainer:
    """The Trainer of a run directory, at its last checkpoint (`epochs` may extend the run)."""
    run_dir = Path(run_dir)

    def read_last() -> tuple[dict, bool]:
        last = run_dir / "last.pt"
        if not last.exists():
            raise UserError(f"cannot resume {run_dir}: no last.pt there (is it a run directory?)")
        return ckpt_io.load(last), (run_dir / "summary.json").exists()

    ckpt, summarized = on_rank0(dist, read_last)  # other machines of a torchrun job get rank 0's checkpoint
    cfg = ckpt_io.config_of(ckpt)
    if epochs is not None:
        cfg.train.epochs = float(epochs)
    data_path = data_path or cfg.data.dir or recorded_source(run_dir, ckpt)
    trainer = build_run(cfg, data_path=data_path, callbacks=callbacks, run_dir=run_dir, dist=dist)
    restore(trainer, ckpt)
    trainer.summarized = summarized
    return trainer


def train(cfg: Config, out="runs", data_path=None, callbacks=(), dist=None) -> tuple[Path, Summary | None]:
    """Train a config end to end; returns (run directory, summary, or None when interrupted)."""
    trainer = build_run(cfg, out, data_path, callbacks, dist=dist)
    trainer.fit()
    return trainer.dir, None if trainer.stop_requested else trainer.finish()


@contextlib.contextmanager
def graceful_stop(request_stop):
    """SIGINT/SIGTERM ask the loop to stop at the next step (checkpoint, then exit); a second one stops now."""
    asked = []

    def handler(signum, frame):
        if asked:
            raise KeyboardInterrupt
        asked.append(signum)
        request_stop(signal.Signals(signum).name)

    old = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread (e.g. a notebook worker): no graceful stop
        pass
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


# ------------------------------------------------------------------------------------------ the loop
class Trainer:
    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        data: Cifar10,
        device: torch.device,
        callbacks=(),
        dist=None,
        data_source: str = "",
        t0: float | None = None,
    ):
        self.cfg, self.dir, self.device, self.dist = cfg, Path(run_dir), device, dist  # dist: a parallel.Dist
        self.is_main = dist is None or dist.rank == 0
        self.callbacks, self.data_source, self.t0 = list(callbacks), data_source, t0 or time.time()
        self.dtype = select_precision(device, cfg.runtime.precision)
        keep_freed_memory(device)
        self.state, self.stop_requested = State(), None
        self.summarized = False  # summary.json written (by finish, or before a resume)
        seed_everything(cfg.train.seed)
        self.classes = data.classes
        self.train_loader, self.val_loader, self.test_loader, train_x = make_loaders(cfg, data, device, dist)
        self.model, self.micro_batch = make_model(
            cfg, len(self.classes), device, self.dtype, self.train_loader, train_x
        )
        self.ema, self.ddp, self.net = wrap_model(self.model, cfg, dist)
        self._trainable = tuple(p.requires_grad for p in self.model.parameters())
        self.n_params, self.flops = count_params(self.model), count_flops(self.model)
        ns_dtype = torch.bfloat16 if self.dtype == torch.bfloat16 else torch.float32
        self.optimizer = make_optimizer(self.model, cfg.optim, ns_dtype=ns_dtype)
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None
        self.steps_per_epoch = len(self.train_loader)
        self.total_steps = max(1, int(round(cfg.train.epochs * self.steps_per_epoch)))
        self.lookahead = Lookahead(self.model, cfg.train.lookahead_every, self.total_steps)

    @property
    def done(self) -> bool:
        return self.state.step >= self.total_steps

    def request_stop(self, reason: str) -> None:
        self.stop_requested = self.stop_requested or reason

    def fit(self) -> None:
        with graceful_stop(self.request_stop):
            self._emit("on_train_start", start_event(self))
            while not self.done:
                self._train_epoch()
                if self.stop_requested:  # mid-epoch: _train_epoch saved last.pt and said so
                    return
                self._end_epoch()
                if self.stop_requested:  # at the epoch's end (a signal during evaluation, a pruned trial)
                    self._emit("on_interrupt", Interrupt(self.stop_requested, self.state.step, self.dir, self.history))
                    return

    @property
    def history(self) -> list[EpochRecord]:
        return [EpochRecord(**r) for r in self.state.history]

    def _train_epoch(self) -> None:
        s = self.state
        self.model.train()
        t_start, seen_at_start = time.time(), s.seen
        # a GPU runs ahead of the host: read the loss back only every log_every steps
        sync_every = 1 if self.device.type == "cpu" else self.cfg.runtime.log_every
        acc_loss, acc_correct, pending = torch.zeros((), device=self.device), torch.zeros((), device=self.device), 0
        for x, y in self.train_loader.epoch(s.epoch, s.step_in_epoch):
            if s.step >= self.total_steps:
                break
            set_lr(self.optimizer, lr_factor(s.step, self.total_steps, self.steps_per_epoch, self.cfg.schedule))
            if hasattr(self.model, "on_step"):
                self.model.on_step(s.step, self.steps_per_epoch, self.total_steps)
            self._sync_trainable()
            loss, correct = self.step(x, y)
            s.step += 1
            self.lookahead.step(s.step)
            acc_loss += loss.detach() * len(y)
            acc_correct += correct
            pending += len(y)
            s.step_in_epoch += 1
            if s.step_in_epoch % sync_every == 0 or s.step_in_epoch == self.steps_per_epoch:
                self._flush(acc_loss, acc_correct, pending)
                acc_loss.zero_(), acc_correct.zero_()
                pending = 0
                self._emit("on_step_end", step_event(self))
                # all ranks must stop at the same step, or DDP would hang: agreed at the flush, which every
                # rank reaches at the same steps, so a GPU is not made to wait for the host every step
                if self.dist is not None and self.dist.any(bool(self.stop_requested)):
                    self.request_stop("SIGTERM")
            elif self.dist is not None:
                continue  # a stop asked for on one rank waits for the next flush
            if self.stop_requested:
                break
        if pending:
            self._flush(acc_loss, acc_correct, pending)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self._epoch_train_dt = time.time() - t_start
        s.train_time += self._epoch_train_dt
        world = self.dist.world if self.dist else 1
        self._epoch_speed = (s.seen - seen_at_start) * world / max(self._epoch_train_dt, 1e-9)
        if self.stop_requested:
            self._save("last.pt")
            self._emit("on_interrupt", Interrupt(self.stop_requested, s.step, self.dir, self.history))

    def _sync_trainable(self) -> None:
        """The net froze or unfroze parameters (whitening bias, late freezing): DDP, which expects a gradient for
        every parameter it was built with, is built again over those that train now."""
        trainable = tuple(p.requires_grad for p in self.model.parameters())
        if self.ddp is not None and trainable != self._trainable:
            self.ddp, self.net = ddp_net(self.model, self.cfg, self.dist)
        self._trainable = trainable

    def _flush(self, acc_loss, acc_correct, n) -> None:
        loss_sum, correct = acc_loss.item(), acc_correct.item()
        if not math.isfinite(loss_sum):
            raise TrainingError(
                f"loss became {loss_sum} at step {self.state.step} (epoch {self.state.epoch + 1}); "
                f"the last good checkpoint is kept in {self.dir}: lower optim.lr or enable grad_clip"
            )
        s = self.state
        s.loss_sum, s.correct, s.seen = s.loss_sum + loss_sum, s.correct + correct, s.seen + n

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on a batch, its gradient accumulated over micro-batches; (mean loss, correct)."""
        self.optimizer.zero_grad(set_to_none=True)
        scored = None
        if self.cfg.train.select_fraction < 1:
            scored, hard = self._score(x, y)
            x, y = x[hard], y[hard]
        chunks = list(zip(x.split(self.micro_batch), y.split(self.micro_batch))) if self.micro_batch else [(x, y)]
        loss_sum = correct = 0
        for i, (xc, yc) in enumerate(chunks):
            # DDP all-reduces gradients on every backward; only the batch's last one needs to
            last = i == len(chunks) - 1
            with contextlib.nullcontext() if last or self.ddp is None else self.ddp.no_sync():
                with autocast(self.device, self.dtype):
                    logits = self.net(xc)
                    # summed over the micro-batch, divided by the batch: the gradients add up to the batch mean's
                    loss = F.cross_entropy(
                        logits.float(), yc, label_smoothing=self.cfg.loss.label_smoothing, reduction="sum"
                    ) / len(y)
                (self.scaler.scale(loss) if self.scaler else loss).backward()
            loss_sum = loss_sum + loss.detach()
            correct = correct + (logits.argmax(-1) == yc).sum()
        self._optimizer_step()
        return scored or (loss_sum, correct)

    @torch.no_grad()
    def _score(self, x: torch.Tensor, y: torch.Tensor):
        """Hard-example selection: one gradient-free pass over the batch; ((its mean loss, correct), the
        indices of its highest-loss share), so the logged loss stays the whole batch's. BN running statistics
        are not updated by this pass: only the trained images count."""
        with autocast(self.device, self.dtype), bn_stats_frozen(self.model):
            logits = torch.cat([self.net(part).float() for part in x.split(self.micro_batch or len(x))])
        losses = F.cross_entropy(logits, y, label_smoothing=self.cfg.loss.label_smoothing, reduction="none")
        return (losses.mean(), (logits.argmax(-1) == y).sum()), hardest(losses, self.cfg.train.select_fraction)

    def _optimizer_step(self) -> None:
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if self.cfg.optim.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def evaluate(self, loader, tta: str = "none") -> tuple[float, float, torch.Tensor, torch.Tensor]:
        logits, y = predict_logits(self.eval_model(), loader, self.dtype, tta, self.cfg.eval.tta_fraction)
        return F.cross_entropy(logits, y).item(), accuracy(logits, y), logits, y

    def _end_epoch(self) -> None:
        s, t = self.state, time.time()
        val_loss, val_acc = self.evaluate(self.val_loader)[:2] if self.val_loader is not None else (None, None)
        sums = [s.loss_sum, s.correct, s.seen]
        loss_sum, correct, seen = self.dist.all_reduce_sums(sums) if self.dist else sums
        rec = epoch_record(self, loss_sum, correct, seen, val_loss, val_acc, time.time() - t)
        s.history.append(dataclasses.asdict(rec))
        s.epoch, s.step_in_epoch, s.loss_sum, s.correct, s.seen = s.epoch + 1, 0, 0.0, 0.0, 0
        keep_last = self.cfg.train.checkpoint == "last"
        improved = val_acc is not None and (keep_last or val_acc > s.best_val_acc)
        s.best_val_acc = val_acc if improved else s.best_val_acc
        self._save("last.pt")
        if improved or self.val_loader is None:
            self._save("best.pt")
        if self.dist is not None:
            self.dist.barrier()
        if self.is_main:
            write_metrics(self.dir, self.history)
        self._emit("on_epoch_end", EpochEnd(rec, self.history, self.request_stop))

    def finish(self, test: bool = True, status: str = "completed") -> Summary:
        """Evaluate best.pt (`train.checkpoint`: by validation accuracy, or the last epoch) on the test set; write
        summary.json. Without `test` (a search trial, chosen on validation accuracy) the test set is not looked at."""
        if self.dist is not None:
            self.dist.barrier()
        # rank 0 alone reads the served checkpoint and tests it: other machines need not share its run directory
        summary = on_rank0(self.dist, lambda: self._test_and_summarize(test, status))
        self.summarized = True
        return summary

    def _test_and_summarize(self, test: bool, status: str) -> Summary:
        best = self.dir / ("best.pt" if (self.dir / "best.pt").exists() else "last.pt")
        ckpt = ckpt_io.load(best, map_location=self.device)
        ckpt_io.load_weights(self.eval_model(), ckpt_io.served_weights(ckpt), str(best))
        t = time.time()
        test_loss, test_acc, logits, y = (self.evaluate(self.test_loader, self.cfg.eval.tta) if test
                                          else (None, None, None, None))  # fmt: skip
        self.state.wall_time += time.time() - self.t0
        self.t0 = time.time()
        summary = make_summary(self, test_loss, test_acc, round(time.time() - t, 2) if test else None)
        summary.status, summary.served_step = status, ckpt_io.checkpoint_step(ckpt)
        write_summary(self.dir, summary)
        sample = self.test_loader.normalize(self.test_loader.x[:16])
        self._emit("on_train_end", TrainEnd(self.dir, summary, self.cfg.to_dict(), logits, y, sample, self.classes))
        return summary

    # ------------------------------------------------------------------------------------ checkpoints
    def _save(self, name: str) -> None:
        if self.is_main:
            self.state.wall_time += time.time() - self.t0
            self.t0 = time.time()
            ckpt_io.save(self.dir / name, self.model, self.cfg, **checkpoint_state(self))

    def _emit(self, event: str, payload) -> None:
        if not self.is_main:
            return
        for cb in self.callbacks:
            fn = getattr(cb, event, None)
            if fn:
                fn(payload)


def hardest(losses: torch.Tensor, fraction: float) -> torch.Tensor:
    """Indices of the ceil(fraction x B) highest losses, in batch order."""
    k = min(len(losses), math.ceil(fraction * len(losses)))
    return losses.topk(k).indices.sort().values


def wrap_model(model: nn.Module, cfg: Config, dist=None):
    """(EMA copy or None, DDP wrapper or None, what the training step calls)."""
    ema = None
    if cfg.train.ema:
        avg = torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.train.ema)
        ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=avg, use_buffers=True)
    return (ema, *ddp_net(model, cfg, dist))


def ddp_net(model: nn.Module, cfg: Config, dist=None):
    """(DDP wrapper or None, what the training step calls). DDP registers the parameters that need gradients
    when it wraps: wrap again whenever that set changes."""
    ddp = dist.wrap(model) if dist else None
    net = torch.compile(ddp or model) if cfg.runtime.compile else ddp or model
    return ddp, net


def planned_epochs(s: State, total_steps: int, steps_per_epoch: int) -> int:
    """Epoch records a run will have when it ends; a resumed run may have ended one on a partial epoch."""
    left, spe = total_steps - s.step, steps_per_epoch
    if left <= 0:
        return s.epoch
    return s.epoch + 1 + -(-max(0, left - (spe - s.step_in_epoch)) // spe)


def start_event(t: Trainer) -> TrainStart:
    c = t.cfg
    return TrainStart(
        name=c.name, run_dir=t.dir, config=c.to_dict(), n_params=t.n_params, flops=t.flops,
        n_train=len(t.train_loader.y), steps_per_epoch=t.steps_per_epoch, epochs=c.train.epochs,
        planned_epochs=planned_epochs(t.state, t.total_steps, t.steps_per_epoch), micro_batch=t.micro_batch,
        device=t.device.type, dtype=dtype_name(t.dtype), log_every=c.runtime.log_every, epoch=t.state.epoch,
        history=t.history,
    )  # fmt: skip


def restore(t: Trainer, ckpt: dict) -> None:
    """Put a Trainer back where its checkpoint left it: weights, optimizer, state, RNG, lookahead, EMA."""
    ckpt_io.load_weights(t.model, ckpt["model"], ckpt["path"])
    t.optimizer.load_state_dict(ckpt["optimizer"])
    t.state = State.from_dict(ckpt["state"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    if t.device.type == "cuda" and ckpt["rng"]["cuda"]:
        torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
    t.lookahead.load_state_dict(ckpt.get("lookahead"), t.device)
    if t.ema is not None and "ema" in ckpt:
        t.ema.module.load_state_dict(ckpt["ema"])
        t.ema.n_averaged.copy_(ckpt["ema_n"])
    if t.scaler is not None and "scaler" in ckpt:
        t.scaler.load_state_dict(ckpt["scaler"])
    if hasattr(t.model, "on_step"):
        t.model.on_step(t.state.step, t.steps_per_epoch, t.total_steps)


def step_event(t: Trainer) -> StepEnd:
    s = t.state
    lr = t.optimizer.param_groups[0]["lr"]
    return StepEnd(step=s.step, step_in_epoch=s.step_in_epoch, epoch=s.epoch, loss=s.loss_sum / max(1, s.seen),
                   acc=s.correct / max(1, s.seen), lr=lr, seen=s.seen, request_stop=t.request_stop)  # fmt: skip


def epoch_record(t: Trainer, loss_sum, correct, seen, val_loss, val_acc, eval_time: float) -> EpochRecord:
    """The epoch just ended, over all data-parallel ranks (`loss_sum`, `correct`, `seen` summed)."""
    return EpochRecord(
        epoch=t.state.epoch + 1, train_loss=loss_sum / max(1, seen), train_acc=correct / max(1, seen),
        val_loss=val_loss, val_acc=val_acc, lr=t.optimizer.param_groups[0]["lr"],
        epoch_time=round(t._epoch_train_dt + eval_time, 3), img_per_s=round(t._epoch_speed, 1), step=t.state.step,
        samples=int(seen),
    )  # fmt: skip


def checkpoint_state(t: Trainer) -> dict:
    """Everything but the weights that a resumed run needs to continue bit for bit."""
    st = {
        "optimizer": t.optimizer.state_dict(),
        "state": dataclasses.asdict(t.state),
        "data": t.data_source,
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if t.device.type == "cuda" else [],
        },
    }
    if t.lookahead.state_dict() is not None:
        st["lookahead"] = t.lookahead.state_dict()
    if t.ema is not None:
        st["ema"], st["ema_n"] = t.ema.module.state_dict(), t.ema.n_averaged
    if t.scaler is not None:
        st["scaler"] = t.scaler.state_dict()
    return st


def _best_epoch(history: list[dict], by_val: bool) -> int | None:
    """The epoch best.pt holds: the first with the top validation accuracy, or the last (no split, or
    `train.checkpoint: last`)."""
    if not history:
        return None
    return max(history, key=lambda r: r["val_acc"])["epoch"] if by_val else history[-1]["epoch"]


def make_summary(t: Trainer, test_loss, test_acc, test_eval_time) -> Summary:
    s, hist = t.state, t.state.history
    return Summary(
        preset=t.cfg.name,
        test_acc=test_acc,
        test_loss=test_loss,
        tta=t.cfg.eval.tta,
        best_val_acc=s.best_val_acc if s.best_val_acc >= 0 else None,
        best_epoch=_best_epoch(hist, t.val_loader is not None and t.cfg.train.checkpoint == "best"),
        epochs=s.epoch,
        epochs_trained=round(s.step / t.steps_per_epoch, 2),
        steps=s.step,
        wall_time_s=round(s.wall_time, 2),
        train_time_s=round(s.train_time, 2),
        test_eval_time_s=test_eval_time,
        train_img_per_s=round(sum(r["img_per_s"] for r in hist) / max(1, len(hist)), 1),
        time_to_val_acc={
            str(th): next((r["epoch"] for r in hist if (r["val_acc"] or 0) >= th / 100), None) for th in THRESHOLDS
        },
        params=t.n_params,
        flops_per_image=t.flops,
        n_train=len(t.train_loader.y),
        n_val=len(t.val_loader.y) if t.val_loader else 0,
        micro_batch=t.micro_batch or t.cfg.data.batch_size,
        device=device_description(t.device),
        dtype=dtype_name(t.dtype),
        world_size=t.dist.world if t.dist else 1,
        torch=torch.__version__,
        python=platform.python_version(),
        cifarlab=__version__,
        seed=t.cfg.train.seed,
        data=t.data_source,
        finished=datetime.now().isoformat(timespec="seconds"),
        recipe_id=recipe_id(t.cfg),
        recipe=recipe(t.cfg),
    )
