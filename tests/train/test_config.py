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
    assert cfg.model.name == PRESETS[name].model["name"]


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
        ("model.name=iaf", "unknown flow 'iaf'"),
        ("train.nonfinite=ignore", "train.nonfinite"),
        ("device=tpu", "device must be"),
        ("bogus", "key=value"),
        ("train.loss_scale=bits", "train.loss_scale: 'bits' is not one of bits_per_dim, nats"),
        ("train.grad_clip_scope=layer", "train.grad_clip_scope: 'layer' is not one of global, per_group"),
        ("train.weight_decay_scope=none", "train.weight_decay_scope: 'none' is not one of gains, all"),
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


def test_loss_scale_and_clip_scope_defaults_are_flowoods_former_ones():
    t = config_from_dict(tiny_raw()).train
    assert (t.loss_scale, t.grad_clip_scope, t.weight_decay_scope) == ("bits_per_dim", "global", "gains")
    t = config_from_dict(apply_overrides(tiny_raw(), ["train.loss_scale=nats", "train.grad_clip_scope=per_group"]))
    assert (t.train.loss_scale, t.train.grad_clip_scope) == ("nats", "per_group")


@pytest.mark.parametrize("name", ["realnvp-fashionmnist", "realnvp-celeba", "glow-fashionmnist", "glow-celeba"])
def test_paper_presets_train_as_the_original_commands_ran(name):
    """train_unsup.py: nats loss, clip 100 per optimizer group, --weight_decay default 5e-5 (RealNVP: gains,
    Glow: all parameters), init_zeros=False (RealNVP st-nets random); Glow with plain 1x1 convolutions."""
    cfg = config_from_dict(get_preset(name))
    t = cfg.train
    assert (t.loss_scale, t.grad_clip_scope, t.grad_clip, t.weight_decay) == ("nats", "per_group", 100.0, 5e-5)
    if cfg.model.name == "realnvp":
        assert t.weight_decay_scope == "gains" and cfg.model.options["init_zeros"] is False
    else:
        assert t.weight_decay_scope == "all" and cfg.model.options["lu_decomposed"] is False
    assert "Remaining differences" in get_preset(name)["description"]


@pytest.mark.parametrize("name", [n for n in PRESETS if not PRESETS[n].paper])
def test_cpu_presets_keep_the_former_loss_and_clipping(name):
    t = config_from_dict(get_preset(name)).train
    assert (t.loss_scale, t.grad_clip_scope) == ("bits_per_dim", "global")


def test_model_given_as_a_flow_name_means_its_defaults():
    from flowood.train.config import config_from_dict

    cfg = config_from_dict({"model": "realnvp", "data": {"dataset": "fashionmnist-mini"}})
    assert cfg.model.name == "realnvp" and cfg.model.options == {}
