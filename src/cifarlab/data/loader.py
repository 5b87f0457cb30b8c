"""Batches on the model's device: uint8 images kept there, normalized (and augmented) a whole batch at once."""

from __future__ import annotations

import torch

from .augment import batch_augment, train_size
from .cifar10 import MEAN, STD


class Loader:
    """Serves (images, labels) batches from uint8 tensors kept on `device`.

    Images are normalized to float on the fly; augmentation (if any) is applied to the whole batch at
    once. Every batch is a pure function of (seed, epoch, step): the shuffle and the augmentation draw
    from generators seeded by those numbers, so a run stopped mid-epoch resumes bit for bit.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        device: torch.device,
        shuffle: bool = False,
        drop_last: bool = False,
        augment=None,
        seed: int = 0,
        channels_last: bool = True,
        shard: tuple[int, int] = (0, 1),
    ):
        self.device = torch.device(device)
        self.x = x.to(self.device)
        self.y = y.to(self.device)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.augment, self.seed, self.channels_last = augment, seed, channels_last
        self.rank, self.world = shard  # data-parallel: this process serves every world-th image
        self.mean = torch.tensor(MEAN, device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(STD, device=self.device).view(1, 3, 1, 1) * 255
        # Per-image flip parity for 'alternate' flipping: each image flips on every other epoch.
        g = torch.Generator().manual_seed(seed)
        self.flip_parity = torch.randint(0, 2, (len(y),), generator=g).bool().to(self.device)

    def _shard_size(self) -> int:
        return len(self.y) // self.world if self.world > 1 else len(self.y)

    def __len__(self) -> int:
        n = self._shard_size()
        return n // self.batch_size if self.drop_last and n >= self.batch_size else -(-n // self.batch_size)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x.contiguous()

    def order(self, epoch: int) -> torch.Tensor:
        n = len(self.y)
        if not self.shuffle:
            idx = torch.arange(n)
        else:
            idx = torch.randperm(n, generator=torch.Generator().manual_seed(_mix(self.seed, epoch)))
        if self.world > 1:  # equal-sized, disjoint shards of the same permutation
            m = self._shard_size()
            idx = idx[self.rank : m * self.world : self.world]
        return idx.to(self.device)

    def epoch(self, epoch: int = 0, start: int = 0):
        """Yield batches of `epoch`, starting at batch `start`."""
        order = self.order(epoch)
        n = len(order)
        size = train_size(self.augment, epoch, self.x.shape[-1]) if self.augment is not None else None
        for i in range(start, len(self)):
            idx = order[i * self.batch_size : min(n, (i + 1) * self.batch_size)]
            x = self.x[idx]
            if self.augment is not None:
                g = torch.Generator().manual_seed(_mix(self.seed, epoch, i + 1))
                parity = self.flip_parity[idx] ^ bool(epoch % 2)
                x = batch_augment(x, self.augment, g, parity, self.normalize, size, epoch + i / len(self))
            else:
                x = self.normalize(x)
            yield x, self.y[idx]

    def __iter__(self):
        return self.epoch(0)


def _mix(*numbers: int) -> int:
    """A well-spread 63-bit seed from small integers (so nearby seeds give unrelated streams)."""
    h = 0x9E3779B97F4A7C15
    for n in numbers:
        h = ((h ^ (n + 0x632BE59BD9B4E019)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF
