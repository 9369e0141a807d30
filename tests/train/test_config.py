"""Run configuration: presets validate, overrides parse, mistakes give clear errors."""

from __future__ import annotations

import pytest

from flowood.errors import ConfigError
from flowood.train.config import apply_overrides, config_from_dict, load_config
from flowood.train.presets import PRESETS, get_preset

from .conftest import tiny_raw


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_a_valid_config(name):
    cfg = config_from_dict(get_preset(name))
    assert cfg.model.name == PRESETS[name]["model"]["name"]


def test_overrides_parse_types():
    raw = apply_overrides(
        tiny_raw(),
        [
            "train.lr=5e-5",
            "train.epochs=3",
            "data.ood=[mnist-mini, glyphs]",
            "train.ema_decay=0.999",
            "model.st_net=convnet",
            "train.grad_clip=null",
        ],
    )
    cfg = config_from_dict(raw)
    assert cfg.train.lr == 5e-5 and cfg.train.epochs == 3 and cfg.data.ood == ["mnist-mini", "glyphs"]
    assert cfg.model.options["st_net"] == "convnet" and cfg.train.grad_clip is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lrr=1", "unknown key.*train.lrr"),
        ("train.epochs=two", "train.epochs must be an integer"),
        ("train.optimizer=sgd", "train.optimizer"),
        ("train.lr=-1", "train.lr must be > 0"),
        ("model.num_stepz=3", "model.num_stepz: not an option of realnvp"),
        ("model.name=maf", "unknown flow 'maf'"),
        ("train.nonfinite=ignore", "train.nonfinite"),
        ("device=tpu", "device must be"),
        ("bogus", "key=value"),
    ],
)
def test_bad_values_give_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(apply_overrides(tiny_raw(), [override]))


def test_config_roundtrip_through_yaml(tmp_path, tiny_config):
    cfg = tiny_config()
    cfg.save(tmp_path / "c.yaml")
    again = config_from_dict(load_config(tmp_path / "c.yaml"))
    assert again == cfg


def test_load_config_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        load_config(bad)


def test_model_given_as_a_flow_name_means_its_defaults():
    from flowood.train.config import config_from_dict

    cfg = config_from_dict({"model": "realnvp", "data": {"dataset": "fashionmnist-mini"}})
    assert cfg.model.name == "realnvp" and cfg.model.options == {}
