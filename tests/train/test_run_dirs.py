"""Run directories are owned (``flowood.runs.RunDir``): --out onto a run refuses unless --force/--resume, one
writer at a time (lock naming the PID), stale .tmp files cleaned, usual file permissions; and writes that
fail (full disk) lose nothing (item 4)."""

from __future__ import annotations

import csv
import errno
import os
import stat
import subprocess
import sys

import pytest

import flowood.train.checkpoint as ckpt_mod
from flowood.cli.app import main
from flowood.errors import RunInUseError, RunWriteError
from flowood.runs import RunDir
from flowood.train.checkpoint import load_checkpoint, save_weights
from flowood.train.config import RunConfig, config_from_dict
from flowood.train.trainer import resume, train
from tests.tiny import TINY_TRAIN_ARGS
from tests.train.conftest import tiny_raw


def _cfg(**kw):
    return config_from_dict(tiny_raw(**{"sample_every": 0, "epochs": 1, **kw}))


def test_out_onto_an_existing_run_refuses_unless_force(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--preset", "demo", "--epochs", "1", "--out", str(run), *TINY_TRAIN_ARGS]
    assert main(args) == 0
    (run / "report.json").write_text("{}")  # an evaluation of the old model
    (run / "notes.txt").write_text("mine")  # not flowood's
    before = (run / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already holds a flowood run" in err and "--force" in err and "--resume" in err
    assert (run / "model.safetensors").read_bytes() == before  # nothing touched
    assert main([*args, "--force"]) == 0
    assert not (run / "report.json").exists() and (run / "notes.txt").read_text() == "mine"
    with (run / "metrics.csv").open() as fh:
        assert [r["epoch"] for r in csv.DictReader(fh)] == ["1"]  # not two runs interleaved
    assert main(["train", "--resume", str(run), "--force"]) == 2


def _tree(folder):
    """Every file below ``folder`` with its bytes (the lock file aside: it names whoever held it last)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} | {
        ".flowood.lock": b""
    }


@pytest.mark.parametrize(
    "bad",
    [
        ["--set", "data.dataset=npz:/nonexistent/flowood-missing.npz"],  # the data is not there
        ["--set", "model.mid_channels=1000000"],  # the model cannot be allocated
        ["--set", "train.lrr=1"],  # the config is wrong
    ],
    ids=["missing-data", "model-too-large", "bad-config"],
)
def test_force_that_cannot_start_removes_nothing(tmp_path, capsys, bad):
    """Issue 25, item 1: ``--force`` checks config, data and model before it removes the run it replaces."""
    run = tmp_path / "run"
    args = ["train", "--preset", "demo", "--epochs", "1", "--out", str(run), *TINY_TRAIN_ARGS]
    assert main([*args, "--set", "train.sample_every=0"]) == 0
    before = _tree(run)
    capsys.readouterr()
    assert main([*args, "--force", *bad]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert _tree(run) == before


def test_force_never_removes_a_users_files(tmp_path, capsys):
    """Issue 25, item 4: a folder whose config.yaml is not flowood's is not a run; in a run, --force removes
    flowood's files only (a user's own files in samples/, checkpoints/, figures/ stay)."""
    args = ["train", "--preset", "demo", "--epochs", "1", *TINY_TRAIN_ARGS, "--force"]
    mine = tmp_path / "mine"
    for rel, text in [
        ("config.yaml", "lr: 0.1\nlayers: 3\n"),  # another program's config
        ("samples/cat.png", "my picture"),
        ("checkpoints/model-best.ckpt", "my weights"),
        ("metrics.csv", "step,loss\n1,0.5\n"),
    ]:
        (mine / rel).parent.mkdir(parents=True, exist_ok=True)
        (mine / rel).write_text(text)
    before = _tree(mine)
    capsys.readouterr()
    assert main([*args, "--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert "not a flowood config" in err and "choose another --out" in err and len(err.strip().splitlines()) == 1
    assert _tree(mine) == before and not (mine / ".flowood.lock").exists()

    run = tmp_path / "run"
    assert main([*args, "--out", str(run)]) == 0
    (run / "samples" / "cat.png").write_text("my picture")
    (run / "checkpoints" / "model-best.ckpt").write_text("my weights")
    (run / "figures").mkdir()
    (run / "figures" / "notes.txt").write_text("my notes")
    (run / "ensemble" / "member-0" / "samples").mkdir(parents=True)
    (run / "ensemble" / "member-0" / "samples" / "keep.png").write_text("mine too")
    assert main([*args, "--out", str(run)]) == 0
    assert (run / "samples" / "cat.png").read_text() == "my picture"
    assert (run / "checkpoints" / "model-best.ckpt").read_text() == "my weights"
    assert (run / "figures" / "notes.txt").read_text() == "my notes"
    assert (run / "ensemble" / "member-0" / "samples" / "keep.png").read_text() == "mine too"
    assert (run / "checkpoints" / "last.pt").is_file()


def _hold_lock(path):
    code = (
        "import fcntl, sys, time\n"
        f"fh = open({str(path)!r}, 'a+'); fcntl.flock(fh, fcntl.LOCK_EX)\n"
        "fh.seek(0); fh.truncate(); fh.write(str(__import__('os').getpid())); fh.flush()\n"
        "print('locked', flush=True); time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_writer_is_stopped_naming_the_holder(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    holder = _hold_lock(run.lock_file)
    try:
        with pytest.raises(RunInUseError, match=rf"being written by process {holder.pid} "):
            run.claim(new=True)
        with pytest.raises(RunInUseError, match=str(holder.pid)):
            train(_cfg(), run.path, quiet=True)
    finally:
        holder.kill()
        holder.wait()
    # The holder is dead: its lock (file still naming that PID) is taken over.
    assert run.lock_file.read_text().strip() == str(holder.pid)
    run.claim(new=True)
    assert run.lock_file.read_text().strip() == str(os.getpid())
    with pytest.raises(RunInUseError, match=str(os.getpid())):
        RunDir(run.path).claim(new=True)  # also a second writer in the same process
    run.release()
    RunDir(run.path).claim(new=True)


def test_stale_tmp_files_are_cleaned_on_the_next_start(tmp_path):
    train(_cfg(), tmp_path / "run", quiet=True)
    stale = [
        tmp_path / "run" / "checkpoints" / ".last.pt.k3j2.tmp",
        tmp_path / "run" / ".model.safetensors.x81.tmp",
        tmp_path / "run" / "config.yaml.tmp",
    ]
    for p in stale:
        p.write_bytes(b"half")
    keep = tmp_path / "run" / "mine.tmp"
    keep.write_text("not an atomic-write leftover")
    resume(tmp_path / "run", quiet=True, epochs=2)
    assert not any(p.exists() for p in stale) and keep.exists()


def test_model_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        save_weights(tmp_path / "w.safetensors", {})
        assert stat.S_IMODE((tmp_path / "w.safetensors").stat().st_mode) == 0o644
        os.umask(0o002)
        save_weights(tmp_path / "w2.safetensors", {})
        assert stat.S_IMODE((tmp_path / "w2.safetensors").stat().st_mode) == 0o664
    finally:
        os.umask(old)


def test_read_only_output_directory_is_one_line(tmp_path, monkeypatch, capsys):
    def read_only(self, *a, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr("pathlib.Path.mkdir", read_only)
    out = tmp_path / "ro" / "run"
    assert main(["train", "--preset", "demo", "--out", str(out), *TINY_TRAIN_ARGS]) == 2
    err = capsys.readouterr().err
    assert f"cannot create run directory {out}: read-only file system; choose a writable --out" in err
    assert len(err.strip().splitlines()) == 1


def _torch_save_disk_full(obj, path):
    raise RuntimeError(  # what torch.save says on a full disk
        "[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file data/0: file write failed"
    )


def _no_space(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


def _rows_without_time(run):
    with (run / "metrics.csv").open() as fh:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)]


def test_full_disk_during_training_and_resume_loses_nothing(tmp_path, monkeypatch, capsys):
    full, run = tmp_path / "full", tmp_path / "run"
    train(_cfg(epochs=2), full, quiet=True)
    train(_cfg(epochs=1), run, quiet=True)
    with monkeypatch.context() as m:
        m.setattr(ckpt_mod.torch, "save", _torch_save_disk_full)
        with pytest.raises(RunWriteError, match=r"disk full.*the last checkpoint is kept; free space and continue"):
            resume(run, quiet=True, epochs=2)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 1  # the previous one, loadable
    logged = (run / "metrics.csv").read_text()
    assert logged.count("\n") == 3  # header, epoch 1, epoch 2 (logged before the save failed)
    with monkeypatch.context() as m:  # resuming while the disk is still full (small metrics writes still fit)
        m.setattr(ckpt_mod.torch, "save", _torch_save_disk_full)
        m.setattr(RunConfig, "save", _no_space)
        assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no space left on device" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert (run / "metrics.csv").read_text() == logged  # the failed resume deleted no row
    assert not list(run.rglob("*.tmp"))
    resume(run, quiet=True, epochs=2)  # space freed
    assert _rows_without_time(run) == _rows_without_time(full)


def test_garbage_metrics_csv_on_resume_is_one_line(tmp_path, capsys):
    train(_cfg(), tmp_path / "run", quiet=True)
    (tmp_path / "run" / "metrics.csv").write_bytes(b"\x00\x13garbage,,\nfoo,bar\n")
    assert main(["train", "--resume", str(tmp_path / "run"), "--epochs", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "metrics.csv" in err and "move it aside and resume again" in err and len(err.strip().splitlines()) == 1


def test_string_label_mapping_is_saved_with_the_run(tmp_path):
    import json

    rows = [f"{i * 0.1:.2f},{(i * 7 % 11) * 0.3:.2f},{['cat', 'dog'][i % 2]}" for i in range(60)]
    (tmp_path / "t.csv").write_text("a,b,kind\n" + "\n".join(rows) + "\n")
    raw = {
        "model": {"name": "tabular", "num_couplings": 2, "hidden_dim": 8, "num_layers": 1},
        "data": {"dataset": f"table:{tmp_path / 't.csv'}?label=kind", "classes": [1], "ood": []},
        "train": {"epochs": 1, "batch_size": 8},
        "device": "cpu",
    }
    train(config_from_dict(raw), tmp_path / "run", quiet=True)
    assert json.loads((tmp_path / "run" / "labels.json").read_text()) == {"class_names": ["cat", "dog"]}


def test_a_model_larger_than_memory_is_refused_before_it_is_built(tmp_path, monkeypatch, capsys):
    """Issue 25, item 9: the parameters are counted on the ``meta`` device, so a model the allocator would
    grant lazily (and the machine then swap or kill) is one line naming its size settings, before any work."""
    import flowood.train.build as build_mod

    monkeypatch.setattr(build_mod, "physical_memory", lambda: 2**20)  # a machine of 1 MiB
    built: list[object] = []
    real = build_mod.build_flow
    monkeypatch.setattr(build_mod, "build_flow", lambda *a, **k: built.append(a) or real(*a, **k))
    out = tmp_path / "run"
    assert (
        main(["train", "--preset", "demo", "--out", str(out), *TINY_TRAIN_ARGS, "--set", "model.mid_channels=64"]) == 2
    )
    err = capsys.readouterr().err
    assert "model.mid_channels=64" in err and "more than this machine's memory (0 GiB here)" in err
    assert len(built) == 1  # only the shape-only build on the meta device
    assert not (out / "config.yaml").exists()
