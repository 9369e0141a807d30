"""``flowood.train.data.load_split``: the split a run trains or scores on, shaped like its flow's input, and the
note line that says a set was converted to fit (loading itself prints nothing; this is where it is said)."""

from __future__ import annotations

import pytest

from flowood.train.config import DataConfig
from flowood.train.data import load_split


def test_a_converted_set_is_noted_once_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = DataConfig(dataset="fashionmnist-mini")
    ds = load_split(cfg, "test", name="mnist-mini", limit=8, like_shape=(3, 32, 32))
    assert ds.shape == (3, 32, 32)
    out, err = capsys.readouterr()
    assert out == "" and err == "note: mnist-mini (test): grey -> RGB; resized 28x28 -> 32x32 (bilinear)\n"
    same = load_split(cfg, "test", limit=8, like_shape=(1, 28, 28))
    assert same.shape == (1, 28, 28) and capsys.readouterr() == ("", "")
