"""The training loop: config in, run directory out.

    run = Run.create(cfg, ...)     # data, model, optimizer, run directory
    run.fit()                      # epochs of steps; emits events that callbacks subscribe to
    run.finish()                   # best checkpoint on the test set -> summary.json

Callbacks (progress bar, metrics file, TensorBoard, curves.png) see `on_train_start`, `on_step_end`,
`on_epoch_end`, `on_train_end`; the loop itself stays short.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
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

from . import UserError, __version__
from . import checkpoint as ckpt_io
from .config import Config, from_dict, save_yaml
from .data import Cifar10, Loader, load_cifar10, locate, recorded_source, split_train_val
from .evaluate import accuracy, predict_logits
from .hardware import (auto_micro_batch, device_description, dtype_name, keep_freed_memory, select_device,
                       select_precision)
from .io import atomic_write_json, atomic_write_text
from .models import build_model, count_flops, count_params
from .models.builder import WhiteningStem, whiten_init
from .optim import lr_factor, make_optimizer


class TrainingError(UserError):
    pass


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# -------------------------------------------------------------------------------------------- run
@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_acc: float | None
    lr: float
    epoch_time: float
    img_per_s: float
    step: int
    samples: int  # training images seen this epoch, summed over data-parallel ranks


@dataclass
class State:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken in all
    step_in_epoch: int = 0
    sums: list = field(default_factory=lambda: [0.0, 0.0, 0])  # running loss sum, correct, seen this epoch
    best_val_acc: float = -1.0
    history: list = field(default_factory=list)
    train_time: float = 0.0  # seconds spent in training steps (excl. evaluation)
    wall_time: float = 0.0  # seconds since the run started, accumulated over resumes


class Run:
    def __init__(self, cfg: Config, run_dir: Path, data: Cifar10, device: torch.device, callbacks=(),
                 dist=None):
        self.cfg, self.dir, self.device = cfg, Path(run_dir), device
        self.dist = dist  # a parallel.Dist when data-parallel, else None
        self.is_main = dist is None or dist.rank == 0
        self.dtype = select_precision(device, cfg.train.precision)
        keep_freed_memory(device)
        self.callbacks = list(callbacks)
        self.state = State()
        self.t0 = getattr(self, "t0", time.time())
        self.data_source = getattr(self, "data_source", "")
        self.stop_requested = None
        seed_everything(cfg.train.seed)
        self.classes = data.classes
        self._make_loaders(data)
        self._make_model()
        self.optimizer = make_optimizer(self.model, cfg.optim,
                                        ns_dtype=torch.bfloat16 if self.dtype == torch.bfloat16 else torch.float32)
        self.slow = None  # lookahead's slow weights
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None
        self.steps_per_epoch = len(self.train_loader)
        self.total_steps = max(1, int(round(cfg.train.epochs * self.steps_per_epoch)))

    # ------------------------------------------------------------------------------------- set-up
    @classmethod
    def create(cls, cfg: Config, out: str | Path = "runs", data_path: str | None = None, callbacks=(),
               run_dir: Path | None = None, dist=None) -> "Run":
        t0 = time.time()  # wall time includes finding and loading the data
        device = dist.device if dist else select_device(cfg.train.device)
        path = locate(data_path or cfg.data.dir)
        data = load_cifar10(path)
        if run_dir is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            run_dir = Path(out) / f"{stamp}-{cfg.name}"
            n = 1
            while run_dir.exists():  # two runs started in the same second
                run_dir = Path(out) / f"{stamp}-{cfg.name}-{n}"
                n += 1
        if dist is not None:  # every rank must write to (and resume from) rank 0's directory
            run_dir = dist.broadcast(run_dir)
        run = cls.__new__(cls)
        run.t0 = t0
        run.data_source = str(Path(path).resolve())  # saved in checkpoints: --resume and evaluate find the data again
        run.__init__(cfg, run_dir, data, device, callbacks, dist)
        if run.is_main:
            try:
                run.dir.mkdir(parents=True, exist_ok=True)
                save_yaml(cfg, run.dir / "config.yaml")
            except OSError as e:
                raise UserError(f"cannot write the run directory {run.dir} ({e.strerror or e}): "
                                "choose another --out") from None
        return run

    @classmethod
    def resume(cls, run_dir: Path, data_path: str | None = None, callbacks=(), epochs: float | None = None,
               dist=None) -> "Run":
        run_dir = Path(run_dir)
        last = run_dir / "last.pt"
        if not last.exists():
            raise UserError(f"cannot resume {run_dir}: no last.pt there (is it a run directory?)")
        ckpt = ckpt_io.load(last)
        cfg = from_dict(ckpt["config"])
        if epochs is not None:
            cfg.train.epochs = float(epochs)
        data_path = data_path or cfg.data.dir or recorded_source(run_dir, ckpt)
        run = cls.create(cfg, data_path=data_path, callbacks=callbacks, run_dir=run_dir, dist=dist)
        run.load_state(ckpt)
        return run

    def _make_loaders(self, data: Cifar10) -> None:
        c, d = self.cfg, self.cfg.data
        train_idx, val_idx = split_train_val(data.train_y, d.val_size)
        if d.train_subset:
            # a stratified slice: take the same share from each class by reusing the splitter
            keep = split_train_val(data.train_y[train_idx], min(d.train_subset, len(train_idx) - 1), seed=1)[1]
            train_idx = train_idx[keep]
        shard = (self.dist.rank, self.dist.world) if self.dist else (0, 1)
        cl = c.train.channels_last
        self.train_loader = Loader(data.train_x[train_idx], data.train_y[train_idx], d.batch_size, self.device,
                                   shuffle=True, drop_last=len(train_idx) > d.batch_size, augment=d.augment,
                                   seed=c.train.seed, channels_last=cl, shard=shard)
        self.val_loader = (Loader(data.train_x[val_idx], data.train_y[val_idx], d.eval_batch_size, self.device,
                                  channels_last=cl) if len(val_idx) else None)
        self.test_loader = Loader(data.test_x, data.test_y, d.eval_batch_size, self.device, channels_last=cl)
        self.n_train = len(train_idx)
        self._whiten_sample = data.train_x[train_idx[:5000]]

    def _make_model(self) -> None:
        model = build_model(self.cfg.model, num_classes=len(self.classes))
        batch, mb = self.cfg.data.batch_size, self.cfg.train.micro_batch
        if mb == 0:
            mb = auto_micro_batch(self.device, self.dtype) or batch
        self.micro_batch = mb if mb < batch else 0  # 0: one pass over the whole batch
        if self.micro_batch:
            # BN's running statistics now update once per micro-batch: keep their horizon the same in images
            k = -(-batch // mb)
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum:
                    m.momentum = 1 - (1 - m.momentum) ** (1 / k)
        if any(isinstance(m, WhiteningStem) for m in model.modules()):
            sample = self.train_loader.normalize(self._whiten_sample.to(self.device))
            whiten_init(model, sample.float().contiguous())
        model = model.to(self.device)
        if self.cfg.train.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model  # the plain module: checkpoints, evaluation
        self.ema = None
        if self.cfg.train.ema:
            self.ema = torch.optim.swa_utils.AveragedModel(
                model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(self.cfg.train.ema),
                use_buffers=True)
        net = model
        self.ddp = None
        if self.dist:
            net = self.ddp = self.dist.wrap(net)
        if self.cfg.train.compile:
            net = torch.compile(net)
        self.net = net  # what the training step calls
        self.n_params = count_params(model)
        self.flops = count_flops(model)

    # ---------------------------------------------------------------------------------- the loop
    @property
    def done(self) -> bool:
        return self.state.step >= self.total_steps

    @property
    def planned_epochs(self) -> int:
        """Epoch records the run will have when it ends; a resumed run may have ended one on a partial epoch."""
        s, spe = self.state, self.steps_per_epoch
        left = self.total_steps - s.step
        if left <= 0:
            return s.epoch
        return s.epoch + 1 + -(-max(0, left - (spe - s.step_in_epoch)) // spe)

    def fit(self) -> None:
        self._install_signal_handlers()
        self._emit("on_train_start")
        s = self.state
        try:
            while not self.done:
                self._train_epoch()
                if self.stop_requested:
                    return
                self._end_epoch()
        finally:
            self._restore_signal_handlers()

    def _train_epoch(self) -> None:
        s, cfg = self.state, self.cfg
        self.model.train()
        whiten_until = int(round(cfg.train.whiten_bias_epochs * self.steps_per_epoch))
        t_start = time.time()
        seen_at_start = s.sums[2]
        sync_every = 1 if self.device.type == "cpu" else cfg.train.log_every
        acc_loss = torch.zeros((), device=self.device)
        acc_correct = torch.zeros((), device=self.device)
        pending = 0
        for x, y in self.train_loader.epoch(s.epoch, s.step_in_epoch):
            if s.step >= self.total_steps:
                break
            factor = lr_factor(s.step, self.total_steps, self.steps_per_epoch, cfg.schedule)
            for g in self.optimizer.param_groups:
                g["lr"] = g["base_lr"] * factor
            if whiten_until and s.step == whiten_until:
                for m in self.model.modules():
                    if isinstance(m, WhiteningStem):
                        m.conv.bias.requires_grad_(False)
            loss, correct = self._step(x, y)
            s.step += 1
            self._lookahead(final=s.step == self.total_steps)
            acc_loss += loss.detach() * len(y)
            acc_correct += correct
            pending += len(y)
            s.step_in_epoch += 1
            if s.step_in_epoch % sync_every == 0 or s.step_in_epoch == self.steps_per_epoch:
                self._flush(acc_loss, acc_correct, pending)
                acc_loss.zero_(), acc_correct.zero_()
                pending = 0
                self._emit("on_step_end", loss=s.sums[0] / max(1, s.sums[2]), acc=s.sums[1] / max(1, s.sums[2]),
                           lr=self.optimizer.param_groups[0]["lr"])
            if self.dist is not None:  # all ranks must stop at the same step, or DDP would hang
                stop = self.dist.any(bool(self.stop_requested))
                self.stop_requested = self.stop_requested or ("SIGTERM" if stop else None)
            if self.stop_requested:
                break
        if pending:
            self._flush(acc_loss, acc_correct, pending)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.time() - t_start
        s.train_time += dt
        self._epoch_train_dt = dt
        self._epoch_speed = (s.sums[2] - seen_at_start) * (self.dist.world if self.dist else 1) / max(dt, 1e-9)
        if self.stop_requested:
            self._save_last()
            if self.is_main:
                self._emit("on_interrupt", signal=self.stop_requested)

    def _flush(self, acc_loss, acc_correct, n) -> None:
        loss_sum, correct = acc_loss.item(), acc_correct.item()
        if not math.isfinite(loss_sum):
            raise TrainingError(f"loss became {loss_sum} at step {self.state.step} (epoch {self.state.epoch + 1}); "
                                f"the last good checkpoint is kept in {self.dir}: lower optim.lr or enable grad_clip")
        s = self.state
        s.sums = [s.sums[0] + loss_sum, s.sums[1] + correct, s.sums[2] + n]

    def _step(self, x, y):
        """One optimizer step on a batch, its gradient accumulated over micro-batches; returns (mean loss, correct)."""
        cfg = self.cfg
        self.optimizer.zero_grad(set_to_none=True)
        chunks = list(zip(x.split(self.micro_batch), y.split(self.micro_batch))) if self.micro_batch else [(x, y)]
        loss_sum = correct = 0
        for i, (xc, yc) in enumerate(chunks):
            # DDP all-reduces gradients on every backward; only the batch's last one needs to
            last = i == len(chunks) - 1
            with contextlib.nullcontext() if last or self.ddp is None else self.ddp.no_sync():
                with torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
                    logits = self.net(xc)
                    # summed over the micro-batch, divided by the batch: the gradients add up to the batch mean's
                    loss = F.cross_entropy(logits.float(), yc, label_smoothing=cfg.optim.label_smoothing,
                                           reduction="sum") / len(y)
                (self.scaler.scale(loss) if self.scaler else loss).backward()
            loss_sum = loss_sum + loss.detach()
            correct = correct + (logits.argmax(-1) == yc).sum()
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if cfg.optim.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return loss_sum, correct

    @torch.no_grad()
    def _lookahead(self, final: bool = False) -> None:
        """Lookahead (Zhang et al. 2019) as in airbench: every k steps, slow <- lerp(slow, fast, 1 - decay) and
        fast <- slow, with decay rising as (t/T)^3 so early training is unhampered; at the end fast <- slow."""
        k = self.cfg.train.lookahead_every
        s = self.state
        if not k or (not final and s.step % k):
            return
        decay = 1.0 if final else 0.95 ** 5 * (s.step / self.total_steps) ** 3
        if self.slow is None:
            self.slow = [p.detach().clone() for p in self.model.state_dict().values() if p.is_floating_point()]
        fast = [p for p in self.model.state_dict().values() if p.is_floating_point()]
        for slow_p, fast_p in zip(self.slow, fast):
            slow_p.lerp_(fast_p, 1 - decay)
            fast_p.copy_(slow_p)

    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def evaluate(self, loader, tta: str = "none") -> tuple[float, float, torch.Tensor, torch.Tensor]:
        logits, y = predict_logits(self.eval_model(), loader, self.dtype, tta)
        return F.cross_entropy(logits, y).item(), accuracy(logits, y), logits, y

    def _end_epoch(self) -> None:
        s = self.state
        t = time.time()
        val_loss = val_acc = None
        if self.val_loader is not None:
            val_loss, val_acc, _, _ = self.evaluate(self.val_loader)
        dt_eval = time.time() - t
        loss_sum, correct, seen = s.sums
        if self.dist:
            loss_sum, correct, seen = self.dist.all_reduce_sums([loss_sum, correct, seen])
        rec = EpochRecord(epoch=s.epoch + 1, train_loss=loss_sum / max(1, seen), train_acc=correct / max(1, seen),
                          val_loss=val_loss, val_acc=val_acc, lr=self.optimizer.param_groups[0]["lr"],
                          epoch_time=round(self._epoch_train_dt + dt_eval, 3), img_per_s=round(self._epoch_speed, 1),
                          step=s.step, samples=int(seen))
        s.history.append(rec.__dict__)
        s.epoch += 1
        s.step_in_epoch = 0
        s.sums = [0.0, 0.0, 0]
        improved = val_acc is not None and val_acc > s.best_val_acc
        if improved:
            s.best_val_acc = val_acc
        self._save_last()
        if improved or self.val_loader is None:
            self._save("best.pt")
        if self.dist is not None:
            self.dist.barrier()
        if self.is_main:
            try:
                atomic_write_text(self.dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in s.history))
            except OSError as e:
                raise UserError(f"cannot write {self.dir / 'metrics.jsonl'} ({e.strerror or e}); "
                                "checkpoints are intact: resume with --resume") from None
        self._emit("on_epoch_end", record=rec)

    # ---------------------------------------------------------------------------------- the end
    def _best_epoch(self) -> int | None:
        """The epoch best.pt holds: the first with the top validation accuracy, or the last without a split."""
        hist = self.state.history
        if not hist:
            return None
        if self.val_loader is None:
            return hist[-1]["epoch"]
        return max(hist, key=lambda r: r["val_acc"])["epoch"]

    def finish(self) -> dict:
        """Evaluate the best checkpoint (by validation accuracy) on the test set; write summary.json."""
        if self.dist is not None:
            self.dist.barrier()
        best = self.dir / ("best.pt" if (self.dir / "best.pt").exists() else "last.pt")
        ckpt = ckpt_io.load(best, map_location=self.device)
        ckpt_io.load_weights(self.eval_model(), ckpt["ema"] if self.ema is not None else ckpt["model"], str(best))
        t = time.time()
        tta = self.cfg.eval.tta
        test_loss, test_acc, _, _ = self.evaluate(self.test_loader, tta)
        s = self.state
        s.wall_time += time.time() - self.t0
        self.t0 = time.time()
        hist = s.history
        summary = {
            "preset": self.cfg.name,
            "test_acc": test_acc, "test_loss": test_loss, "tta": tta,
            "best_val_acc": s.best_val_acc if s.best_val_acc >= 0 else None,
            "best_epoch": self._best_epoch(),
            "epochs": s.epoch, "epochs_trained": round(s.step / self.steps_per_epoch, 2), "steps": s.step,
            "wall_time_s": round(s.wall_time, 2), "train_time_s": round(s.train_time, 2),
            "test_eval_time_s": round(time.time() - t, 2),
            "train_img_per_s": round(sum(r["img_per_s"] for r in hist) / max(1, len(hist)), 1),
            "time_to_val_acc": {str(th): next((r["epoch"] for r in hist if (r["val_acc"] or 0) >= th / 100), None)
                                for th in (90, 93, 94)},
            "params": self.n_params, "flops_per_image": self.flops,
            "n_train": self.n_train, "n_val": len(self.val_loader.y) if self.val_loader else 0,
            "micro_batch": self.micro_batch or self.cfg.data.batch_size,
            "device": device_description(self.device), "dtype": dtype_name(self.dtype),
            "world_size": self.dist.world if self.dist else 1,
            "torch": torch.__version__, "python": platform.python_version(), "cifarlab": __version__,
            "seed": self.cfg.train.seed, "data": self.data_source,
            "finished": datetime.now().isoformat(timespec="seconds"),
        }
        if self.is_main:
            atomic_write_json(self.dir / "summary.json", summary)
        self._emit("on_train_end", summary=summary)
        return summary

    # ----------------------------------------------------------------------------- checkpoints
    def _checkpoint_state(self) -> dict:
        s = self.state
        st = {"optimizer": self.optimizer.state_dict(), "state": dict(s.__dict__), "data": self.data_source,
              "rng": {"torch": torch.get_rng_state(),
                      "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []}}
        if self.slow is not None:
            st["lookahead"] = list(self.slow)
        if self.ema is not None:
            st["ema"] = self.ema.module.state_dict()
            st["ema_n"] = self.ema.n_averaged
        if self.scaler is not None:
            st["scaler"] = self.scaler.state_dict()
        return st

    def _save(self, name: str) -> None:
        if self.is_main:
            s = self.state
            s.wall_time += time.time() - self.t0
            self.t0 = time.time()
            ckpt_io.save(self.dir / name, self.model, self.cfg, **self._checkpoint_state())

    def _save_last(self) -> None:
        self._save("last.pt")

    def load_state(self, ckpt: dict) -> None:
        ckpt_io.load_weights(self.model, ckpt["model"], ckpt["path"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.state = State(**ckpt["state"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if self.device.type == "cuda" and ckpt["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
        if "lookahead" in ckpt:
            self.slow = [t.to(self.device) for t in ckpt["lookahead"]]
        if self.ema is not None and "ema" in ckpt:
            self.ema.module.load_state_dict(ckpt["ema"])
            self.ema.n_averaged.copy_(ckpt["ema_n"])
        if self.scaler is not None and "scaler" in ckpt:
            self.scaler.load_state_dict(ckpt["scaler"])
        whiten_until = int(round(self.cfg.train.whiten_bias_epochs * self.steps_per_epoch))
        if whiten_until and self.state.step >= whiten_until:
            for m in self.model.modules():
                if isinstance(m, WhiteningStem):
                    m.conv.bias.requires_grad_(False)

    # --------------------------------------------------------------------------------- plumbing
    def _emit(self, event: str, **kw) -> None:
        if not self.is_main:
            return
        for cb in self.callbacks:
            fn = getattr(cb, event, None)
            if fn:
                fn(self, **kw)

    def _install_signal_handlers(self) -> None:
        self._old_handlers = {}

        def handler(signum, frame):
            if self.stop_requested:  # a second Ctrl-C means now
                raise KeyboardInterrupt
            self.stop_requested = signal.Signals(signum).name

        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old_handlers[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread (e.g. a notebook worker): no graceful stop
            self._old_handlers = {}

    def _restore_signal_handlers(self) -> None:
        for sig, h in self._old_handlers.items():
            signal.signal(sig, h)


def train(cfg: Config, out="runs", data_path=None, callbacks=(), resume: str | None = None, dist=None) -> tuple[Path, dict | None]:
    """Train a config end to end; returns (run directory, summary or None when interrupted)."""
    if resume:
        run = Run.resume(Path(resume), data_path, callbacks, dist=dist)
    else:
        run = Run.create(cfg, out, data_path, callbacks, dist=dist)
    run.fit()
    if run.stop_requested:
        return run.dir, None
    return run.dir, run.finish()
