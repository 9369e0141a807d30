"""``flowood.experiments.detector_settings`` and the CLI's ``--score-setting`` / alias flags: the nested settings
reach the detectors and the auxiliary models, and every bad value is refused before anything is scored, with the
flag, item or file key that gave it named."""

from __future__ import annotations

import pytest

from flowood.errors import ConfigError, FieldError
from flowood.experiments.aux_models import AuxBudget, AuxSettings
from flowood.experiments.benchmark import load_protocol
from flowood.experiments.detector_settings import configure, from_command_line, parse_setting_items


def test_sections_configure_detectors_and_auxiliary_models():
    detectors, aux = configure(
        "waic,typicality", {"waic": {"ensemble_size": 5}, "dose": {"estimator": "ocsvm"}, "aux": {"test_limit": 9}}
    )
    assert [d.info.name for d in detectors] == ["log_likelihood", "waic", "typicality"]
    assert detectors[1].settings.ensemble_size == 5  # type: ignore[attr-defined]
    assert aux.test_limit == 9 and aux.ensemble == AuxSettings().ensemble  # the rest keeps its defaults
    with pytest.raises(FieldError) as err:
        configure("waic", {"wiac": {"ensemble_size": 5}})
    assert err.value.field == "wiac" and "a detector" in str(err.value)
    with pytest.raises(FieldError) as err:
        configure("waic", {"aux": {"ensemble": {"minutes": 0}}})
    assert err.value.field == "aux.ensemble.minutes"


def test_items_parse_as_set_values_and_need_a_section():
    items = ["aux.features.train_limit=10000", "likelihood_ratio.mutation_rate=0.3", "aux.overrides=[a=1]"]
    assert parse_setting_items(items) == {
        "aux": {"features": {"train_limit": 10000}, "overrides": ["a=1"]},
        "likelihood_ratio": {"mutation_rate": 0.3},
    }
    # Values are read as `--set` reads them: YAML takes 1e-4 for a string, flowood for a float.
    assert parse_setting_items(["embedding_gaussian.reg_covar=1e-4"]) == {"embedding_gaussian": {"reg_covar": 1e-4}}
    with pytest.raises(ConfigError, match=r"write DETECTOR\.FIELD=VALUE"):
        parse_setting_items(["ensemble_size=5"])


def test_alias_flags_set_their_keys_and_items_win():
    aliases = {"--ensemble-size": 4, "--background-minutes": 2.0, "--mutation-rate": None}
    detectors, aux = from_command_line(["waic"], aliases, ["waic.ensemble_size=6"])
    assert detectors[1].settings.ensemble_size == 6  # type: ignore[attr-defined]
    assert aux.background == AuxBudget(minutes=2.0) and aux.general == AuxBudget(minutes=2.0)


@pytest.mark.parametrize(
    ("aliases", "items", "message"),
    [
        ({"--ensemble-size": 1}, [], "--ensemble-size must be >= 2, got 1"),
        ({"--mutation-rate": 2.0}, [], "--mutation-rate must be in [0, 1], got 2.0"),
        ({"--typicality-m": 0}, [], "--typicality-m must be >= 1, got 0"),
        ({"--aux-minutes": 0.0}, [], "--aux-minutes must be > 0, got 0.0"),
        ({"--dose-estimator": "gmm"}, [], "--dose-estimator: 'gmm' is not one of kde, ocsvm"),
        ({}, ["likelihood_ratio.mutation_rate=2"], "--score-setting likelihood_ratio.mutation_rate must be in [0, 1]"),
        ({}, ["aux.features.size=8"], "--score-setting aux.features.size must be >= 16, got 8"),
        ({}, ["waic.ensemble_sizee=3"], "unknown key --score-setting waic.ensemble_sizee; valid: ensemble_size"),
    ],
)
def test_a_bad_value_names_the_flag_or_item_that_gave_it(aliases, items, message):
    with pytest.raises(ConfigError) as err:
        from_command_line(["waic"], {**dict.fromkeys(["--ensemble-size"]), **aliases}, items)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_protocol_file_is_checked_with_its_keys_named(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text(
        "name: p\nin_distribution: fashionmnist-mini\nood: {far: [glyphs]}\ndetectors: [waic]\n"
        "budgets: {quick: {settings: {waic: {ensemble_size: 1}}}}\n"
    )
    with pytest.raises(ConfigError, match=r"budgets\.quick\.settings\.waic\.ensemble_size must be >= 2"):
        load_protocol(bad, "quick")
