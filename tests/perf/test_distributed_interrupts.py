"""SIGTERM and ``train.max_minutes`` under torchrun (CPU, gloo, 2 processes): every rank stops after the
same step, rank 0 writes one loadable checkpoint, nothing hangs, and ``--resume`` finishes the run.

What the launcher reports (documented in the README, "Multi-GPU"): the ranks exit 130 and print the resume
command; ``torchrun`` itself exits 1 — with its ``ChildFailedError`` summary naming ``exitcode: 130`` when
one rank was signalled, or with its own ``SignalException`` when the launcher was (it forwards SIGTERM
to every rank and waits for them).
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from flowood.train.checkpoint import load_checkpoint
from tests.perf.test_distributed import REPO, _free_port, _torchrun
from tests.tiny import HANG_SECONDS
from tests.train.conftest import tiny_raw

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3 * HANG_SECONDS)]


def _launch(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    runner = _torchrun()
    if runner is None:
        pytest.skip("torchrun not found")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    cmd = [*runner, "--nproc_per_node=2", f"--master_port={_free_port()}", "-m", "flowood", "train", *args]
    # A session of its own, so that a hung launcher can be killed with everything it started (see _wait).
    return subprocess.Popen(
        [*cmd, "--device", "cpu", "--quiet"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait(proc: subprocess.Popen[str], timeout: float, what: str) -> str:
    """stderr of ``proc`` once it exits; after ``timeout`` s kill its whole process group and fail."""
    try:
        return proc.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        # torchrun starts each rank in a session of its own: kill the ranks by pid, then the launcher's group.
        for kid in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split():
            os.kill(int(kid), signal.SIGKILL)
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"torchrun hung {what}: {proc.communicate()[1][-3000:]}") from None


def _config(tmp_path: Path, **train: object) -> Path:
    # No batch norm, so that the two ranks' models are the same function (as in test_distributed.py).
    raw = tiny_raw(
        model={"name": "realnvp", "num_scales": 2, "num_blocks": 1, "mid_channels": 4, "use_batch_norm": False},
        batch_size=16,
        sample_every=0,
        **train,
    )
    raw["data"]["limit"] = 96  # 6 steps per epoch
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _rank_pid(launcher: int, rank: int) -> int:
    """The worker process of ``rank`` (a child of the torchrun launcher, told apart by its RANK)."""
    for kid in Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split():
        environ = Path(f"/proc/{kid}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in environ:
            return int(kid)
    raise AssertionError(f"no rank {rank} among the children of {launcher}")


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("target", ["rank 1 only", "the launcher"])
def test_sigterm_stops_all_ranks_at_one_step_and_resume_finishes(tmp_path, target):
    run = tmp_path / "run"
    proc = _launch(tmp_path, "--config", str(_config(tmp_path, epochs=500)), "--out", str(run))
    deadline = time.monotonic() + HANG_SECONDS
    # Signal in the middle of training: once the first epoch is logged, so a checkpoint from the interrupt
    # (not only from an epoch end) must appear.
    while not ((run / "metrics.csv").is_file() and len(_rows(run)) >= 1):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        if time.monotonic() > deadline:
            _wait(proc, 0, "before its first epoch ended")
        time.sleep(0.05)
    if target == "rank 1 only":
        # The disagreement case: only one rank knows; it must not stop alone (rank 0 would crash or hang).
        os.kill(_rank_pid(proc.pid, 1), signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    err = _wait(proc, HANG_SECONDS, f"after SIGTERM to {target}")

    assert proc.returncode == 1, err[-3000:]  # torchrun's own code; the ranks' 130 is in its summary
    if target == "rank 1 only":
        assert "exitcode: 130" in err, err[-3000:]
    assert "Connection closed by peer" not in err and "[rank0]:" not in err, err[-3000:]
    stops = re.findall(r"interrupted: .*? at step (\d+) \(epoch (\d+), (\d+)/6 steps\)", err)
    assert len(stops) == 2, err[-3000:]  # one line per rank
    assert stops[0] == stops[1], stops  # the same step on both ranks
    assert err.count("checkpoint saved to") == 1 and "rank 1: " in err  # only rank 0 writes
    step, epoch, _ = map(int, stops[0])
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]

    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["global_step"] == step  # the interrupted step, not the last epoch end
    if target == "the launcher":
        return  # resuming is the same as after the other case; one torchrun launch less

    resume = _launch(tmp_path, "--resume", str(run), "--epochs", str(epoch))
    err = _wait(resume, HANG_SECONDS, "resuming")
    assert resume.returncode == 0, err[-3000:]
    rows = _rows(run)
    assert [int(r["epoch"]) for r in rows] == list(range(1, epoch + 1))
    assert int(rows[-1]["step"]) == 6 * epoch and rows[-1]["partial"] == "0"
    assert load_checkpoint(run / "checkpoints" / "last.pt")["global_step"] == 6 * epoch


def test_max_minutes_stops_all_ranks_at_one_step(tmp_path):
    run = tmp_path / "run"
    # A cap of a few nanoseconds: reached after the first step on any machine; the ranks must agree on when.
    proc = _launch(tmp_path, "--config", str(_config(tmp_path, epochs=3, max_minutes=1e-10)), "--out", str(run))
    err = _wait(proc, HANG_SECONDS, "at train.max_minutes")
    assert proc.returncode == 0, err[-3000:]
    rows = _rows(run)
    assert len(rows) == 1 and rows[0]["partial"] == "1", rows
    assert 1 <= int(rows[0]["step"]) < 6
    assert load_checkpoint(run / "checkpoints" / "last.pt")["global_step"] == int(rows[0]["step"])
