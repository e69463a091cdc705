"""Training runs get killed: Ctrl-C and SIGKILL on a real ``python -m trainer`` process never lose the
last good checkpoint, and ``--resume`` always continues and finishes.

The run is tiny (an MLP autoencoder on 8x8 digits, a few steps per epoch), so the process spends most
of its time saving: a kill at a random moment often lands inside ``save_checkpoint``. Kills aimed at a
save are made certain with SIGSTOP: the process is frozen the moment the save's scratch directory
appears, the disk is checked while it cannot move, and only then is it killed (or resumed and retried).
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainer.checkpoint import (
    CONFIG_NAME,
    LATENTS_NAME,
    load_checkpoint,
    load_training_state,
    read_meta,
    recover,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--model", "ae", "--arch", "mlp", "--hidden", "64", "--latent-dim", "4", "--dataset", "digits",
         "--image-size", "8", "--batch-size", "512", "--device", "cpu", "--latents-sample", "100", "--seed", "3"]
WAIT = 180  # seconds: a safety net against a hung child, never a measurement
_LOG_LINE = re.compile(r"^epoch \d+/\d+ \|", re.M)


class Trainer:
    """A real trainer process writing to a log file (a pipe could fill up and block it)."""

    def __init__(self, out: Path, epochs: int, resume: bool):
        self.out = out
        self.log = out.parent / f"{out.name}.log"
        argv = [sys.executable, "-m", "trainer", *FLAGS, "--epochs", str(epochs), "--out", str(out)]
        if resume:
            argv.append("--resume")
        self._start_lines = self._lines()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)

    def _lines(self) -> int:
        return len(_LOG_LINE.findall(self.log.read_text())) if self.log.exists() else 0

    def wait_for_epochs(self, n: int = 1) -> None:
        """Until this process has finished ``n`` epochs (and so is inside its training loop)."""
        deadline = time.monotonic() + WAIT
        while self._lines() - self._start_lines < n:
            assert self.proc.poll() is None, f"trainer exited early ({self.proc.returncode}):\n{self.tail()}"
            assert time.monotonic() < deadline, f"trainer made no progress:\n{self.tail()}"
            time.sleep(0.01)

    def wait_until(self, condition) -> None:
        deadline = time.monotonic() + WAIT
        while not condition():
            assert self.proc.poll() is None, f"trainer exited early ({self.proc.returncode}):\n{self.tail()}"
            assert time.monotonic() < deadline, f"the moment never came:\n{self.tail()}"
            time.sleep(0.01)

    def freeze_when(self, condition) -> None:
        """SIGSTOP the process at a moment when ``condition()`` holds, checked while it is frozen."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"trainer exited before the moment came:\n{self.tail()}"
            if condition():
                os.kill(self.proc.pid, signal.SIGSTOP)
                self._wait_state("T")
                if condition():
                    return
                os.kill(self.proc.pid, signal.SIGCONT)  # missed it: let it run and try again
            time.sleep(0.0005)
        raise AssertionError(f"the moment never came:\n{self.tail()}")

    def _wait_state(self, state: str) -> None:
        stat = Path(f"/proc/{self.proc.pid}/stat")
        deadline = time.monotonic() + WAIT
        while stat.read_text().rsplit(")", 1)[1].split()[0] not in (state, state.lower()):
            assert time.monotonic() < deadline
            time.sleep(0.0005)

    def kill(self, sig: int = signal.SIGKILL) -> int:
        os.kill(self.proc.pid, sig)
        if sig != signal.SIGKILL:
            os.kill(self.proc.pid, signal.SIGCONT)  # a frozen process handles the signal once it runs again
        return self.wait()

    def wait(self) -> int:
        try:
            return self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def tail(self) -> str:
        return self.log.read_text()[-3000:] if self.log.exists() else ""


def _scratch(out: Path, what: str) -> Path:
    return out.parent / f".{out.name}.{what}"


def _check_on_disk(out: Path, done_before: float) -> float:
    """The checkpoint on disk loads as it is (the explorer's view), recovers, holds a resume state that is
    not behind the previous one. Returns its progress in epochs."""
    ck = load_checkpoint(out)  # falls back to the set-aside copy if the kill came between the two renames
    assert ck.kind == "ae"
    recover(out)
    assert not _scratch(out, "partial").exists() and not _scratch(out, "old").exists()
    ck = load_checkpoint(out)
    state = load_training_state(out)
    assert state is not None
    done = state["epoch"] + state["batch"] / 1000  # batches per epoch are far fewer than 1000
    assert done >= done_before, f"progress went backwards: {done} < {done_before}"
    assert len(ck.meta["history"]) >= state["epoch"]
    return done


def _finish(out: Path, epochs: int) -> None:
    t = Trainer(out, epochs, resume=True)
    assert t.wait() == 0, t.tail()
    ck = load_checkpoint(out)
    assert [h["epoch"] for h in ck.meta["history"]] == list(range(1, epochs + 1))
    assert ck.latents["z"].shape == (100, 4)
    assert load_training_state(out)["epoch"] == epochs
    assert "resuming" in t.tail()


def test_killed_and_interrupted_runs_always_resume(tmp_path):
    """One run, stopped seven ways; after each stop the checkpoint on disk loads and is never behind the
    last one, and a final --resume finishes it. One story rather than several tests: each phase needs a
    fresh interpreter (about 5 s of imports on 2 cores), so the phases share them."""
    out = tmp_path / "run"
    rng = random.Random(6)

    # 1. SIGKILL at a random moment once there is a checkpoint to lose
    t = Trainer(out, 1000, resume=False)
    t.wait_until(lambda: (out / CONFIG_NAME).exists())
    time.sleep(rng.uniform(0, 0.3))
    assert t.kill() == -signal.SIGKILL
    done = _check_on_disk(out, 0.0)

    # 2. SIGKILL while the new version is being written next to the old one
    t = Trainer(out, 1000, resume=True)
    t.wait_for_epochs(1)
    t.freeze_when(lambda: _scratch(out, "partial").exists())
    assert t.kill() == -signal.SIGKILL
    assert _scratch(out, "partial").exists()  # it really died mid-save
    done = _check_on_disk(out, done)

    # 3. SIGKILL during the swap: the old version set aside, not yet deleted
    t = Trainer(out, 1000, resume=True)
    t.wait_for_epochs(1)
    t.freeze_when(lambda: _scratch(out, "old").exists())
    assert t.kill() == -signal.SIGKILL
    assert _scratch(out, "old").exists()
    done = _check_on_disk(out, done)

    # 4. SIGKILL between the two renames, the narrowest window, made by hand: only the set-aside copy is
    #    left. Readers fall back to it, and the next --resume (phase 5) must recover from it.
    os.rename(out, _scratch(out, "old"))
    assert read_meta(out)["kind"] == "ae"
    assert load_checkpoint(out).kind == "ae"

    # 5. Ctrl-C in the middle of training: a resumable checkpoint, exit code 130, no traceback
    t = Trainer(out, 1000, resume=True)
    t.wait_for_epochs(2)
    assert t.kill(signal.SIGINT) == 130, t.tail()
    assert "saving a resumable checkpoint" in t.tail() and "Traceback" not in t.tail()
    before, done = done, _check_on_disk(out, done)
    assert done >= int(before) + 2  # both epochs seen in the log are kept

    # 6. SIGTERM (schedulers, torchrun) while an end-of-epoch checkpoint is being written: handled like
    #    Ctrl-C, and the epoch whose save was cut short is kept, not trained again
    t = Trainer(out, 1000, resume=True)
    t.wait_for_epochs(1)
    t.freeze_when(lambda: _scratch(out, "partial").exists())
    assert t.kill(signal.SIGTERM) == 130, t.tail()
    assert "interrupted after epoch" in t.tail() and "Traceback" not in t.tail()
    before, done = done, _check_on_disk(out, done)
    assert done > before

    # 7. Ctrl-C while the final checkpoint (the one with the explorer's latents) is being written:
    #    every epoch is kept, and --resume only has the final save left to do
    epochs = int(done) + 1
    t = Trainer(out, epochs, resume=True)
    t.freeze_when(lambda: (_scratch(out, "partial") / LATENTS_NAME).exists())  # only the final save has latents
    assert t.kill(signal.SIGINT) == 130, t.tail()
    assert "interrupted while writing the final checkpoint" in t.tail() and "Traceback" not in t.tail()
    done = _check_on_disk(out, done)
    assert done == epochs and not (out / LATENTS_NAME).exists()

    # 8. --resume finishes it
    _finish(out, epochs)
