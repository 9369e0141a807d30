"""No code from a file: a crafted checkpoint is refused before anything in it runs."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from flowood.cli.app import main
from flowood.errors import CheckpointError, ConfigError
from flowood.train.checkpoint import load_checkpoint
from flowood.train.resume import rng_state, set_rng_state
from flowood.train.trainer import Trainer, train


class _Payload:
    """Unpickling this object would create ``marker`` (standing in for ``os.system(...)``)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _craft(path, marker):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {}, "epoch": 0, "evil": _Payload(marker)}, path)


def test_crafted_last_pt_is_refused_without_running(tmp_path, tiny_config, capsys):
    run = tmp_path / "run"
    train(tiny_config(epochs=1, sample_every=0), run, quiet=True)
    marker = tmp_path / "marker"
    _craft(run / "checkpoints" / "last.pt", marker)
    with pytest.raises(CheckpointError, match="refuses to unpickle"):
        load_checkpoint(run / "checkpoints" / "last.pt")
    assert not marker.exists()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert not marker.exists()
    assert "refuses to unpickle" in err and "last.pt" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_crafted_init_from_is_refused_without_running(tmp_path, tiny_config):
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pt"
    _craft(evil, marker)
    cfg = tiny_config(epochs=1)
    cfg.train.init_from = str(evil)
    with pytest.raises(ConfigError, match=r"train.init_from: .*refuses to unpickle"):
        Trainer(cfg, tmp_path / "fine", quiet=True)
    assert not marker.exists()
    # A run directory whose only weights are a crafted checkpoint.
    src = tmp_path / "src"
    _craft(src / "checkpoints" / "last.pt", marker)
    cfg.train.init_from = str(src)
    with pytest.raises(ConfigError, match="refuses to unpickle"):
        Trainer(cfg, tmp_path / "fine2", quiet=True)
    assert not marker.exists()


def test_cli_init_from_crafted_file_is_one_line(tmp_path, capsys):
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pt"
    _craft(evil, marker)
    args = ["train", "--preset", "demo", "--out", str(tmp_path / "run"), "--set", f"train.init_from={evil}"]
    assert main([*args, "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert not marker.exists() and "refuses to unpickle" in err and len(err.strip().splitlines()) == 1


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    torch.save({"model": {}, "rng": rng_state()}, tmp_path / "s.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_legacy_checkpoint_with_numpy_rng_state_still_loads(tmp_path):
    # flowood 0.1 stored np.random.get_state() as is; only numpy's array rebuilders are allowed for it.
    state = {"model": {}, "rng": {"numpy": np.random.get_state(), "python": random.getstate()}}
    torch.save(state, tmp_path / "old.pt")
    if not hasattr(torch.serialization, "safe_globals"):
        pytest.skip("torch < 2.5 has no scoped safe_globals")
    loaded = load_checkpoint(tmp_path / "old.pt")
    np.random.seed(0)
    set_rng_state({"torch": torch.get_rng_state(), **loaded["rng"]})
    np.testing.assert_array_equal(np.random.get_state()[1], state["rng"]["numpy"][1])
