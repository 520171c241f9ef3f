"""Training that survives an interruption: a checkpoint every epoch, and ``resume=RUN_DIR``.

Every epoch the run writes ``checkpoints/last.ckpt`` (Lightning's: weights, optimiser, epoch,
and the random number generators' states). ``vadflow-train <same overrides> resume=RUN_DIR``
continues from it: the resumed run sees the same data order and the same random draws from the
next epoch on as the uninterrupted run would, so it ends with the same weights and AUC. Why the
generators: the training loader's shuffle draws each epoch's order from torch's global
generator, which Lightning does not keep in its checkpoints.

A SIGTERM (a preempted SLURM job) or Ctrl-C during training stops the run at once, without
writing a checkpoint of the half-done epoch; the last complete epoch's checkpoint stays usable and
the command exits with code 143 (130 for Ctrl-C) naming the run directory to resume from.
(Lightning alone ignores SIGTERM outside SLURM and would train on.)

``resume=auto`` continues from the run directory's own ``last.ckpt`` if there is one and starts
afresh otherwise: a requeued SLURM job (``hydra/launcher=slurm`` requeues on preemption and
timeout) re-runs the same command in the same directory and so picks up where it stopped.
"""
from __future__ import annotations

import contextlib
import random
import signal
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from vadflow.data.types import DataError

CHECKPOINT_DIR = "checkpoints"
LAST = "last"  # Lightning's ModelCheckpoint file name, without ".ckpt"


def last_checkpoint(run_dir: str | Path) -> Path:
    """Where a run keeps its last complete epoch."""
    return Path(run_dir) / CHECKPOINT_DIR / f"{LAST}.ckpt"


class RandomState(L.Callback):
    """Saves and restores the torch, numpy and Python generators with each checkpoint (plain
    lists and tensors: the checkpoint still loads with ``weights_only=True``)."""

    def state_dict(self) -> dict:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        return {"torch": torch.get_rng_state(), "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
                "python": [list(v) if isinstance(v, tuple) else v for v in random.getstate()]}

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
        version, internal, gauss_next = state["python"]
        random.setstate((version, tuple(internal), gauss_next))


def epoch_checkpoints(out_dir: Path) -> list[L.Callback]:
    """Callbacks that write ``out_dir/checkpoints/last.ckpt`` at the end of every training epoch."""
    return [ModelCheckpoint(dirpath=str(last_checkpoint(out_dir).parent), filename=LAST, save_top_k=1, monitor=None,
                            every_n_epochs=1, save_on_train_epoch_end=True, enable_version_counter=False),
            RandomState()]


class Interrupted(BaseException):
    """Training stopped by SIGTERM or SIGINT (a BaseException: nothing on the way may swallow it,
    not even Lightning's KeyboardInterrupt handler, which would exit 1 without saying how to go on)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 143 for SIGTERM, 130 for SIGINT

    @property
    def what(self) -> str:
        return "Ctrl-C (SIGINT)" if self.signum == signal.SIGINT else signal.Signals(self.signum).name


@contextlib.contextmanager
def stop_on_signals(signals=(signal.SIGTERM, signal.SIGINT)):
    """Within the block, SIGTERM and SIGINT raise :class:`Interrupted` (Lightning composes its own
    handlers with these)."""
    def handler(signum, frame):
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def resume_checkpoint(run_dir: str | None, out_dir: str | Path | None = None) -> str | None:
    """The checkpoint to continue from (``resume=RUN_DIR``, or ``resume=auto``: this run's own
    ``out_dir`` if it holds one), or None to start afresh."""
    if not run_dir:
        return None
    if run_dir == "auto":
        found = last_checkpoint(out_dir) if out_dir is not None else None
        return str(found) if found is not None and found.is_file() else None
    path = last_checkpoint(run_dir)
    if not Path(run_dir).is_dir():
        raise DataError(f"resume={run_dir}: no such run directory")
    if not path.is_file():
        raise DataError(f"resume={run_dir}: no {path.relative_to(run_dir)} there (the run saved no epoch yet, or ran with save_every_epoch=false)")
    return str(path)
