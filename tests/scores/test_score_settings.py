"""ScoreSettings refuses values no detector can use at construction, for API callers as for the CLI."""

from __future__ import annotations

import dataclasses

import pytest

from flowood.errors import ConfigError, FieldError
from flowood.experiments.auxiliary import ScoreSettings


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("mutation_rate", 1.5, "[0, 1]"),
        ("mutation_rate", -0.1, "[0, 1]"),
        ("dose_estimator", "gmm", "kde or ocsvm"),
        ("compressor", "zip", "png"),
        ("ensemble_size", 0, ">= 1"),
        ("mutation_copies", 0, ">= 1"),
        ("typicality_m", 0, ">= 1"),
        ("typicality_batches", 0, ">= 1"),
        ("dose_cv_folds", 1, ">= 2"),
        ("member_minutes", 0.0, "> 0"),
        ("background_minutes", -1.0, "> 0"),
        ("embedding_minutes", 0.0, "> 0"),
        ("aux_max_steps", 0, ">= 1"),
        ("aux_test_limit", 0, ">= 1"),
        ("typicality_train_limit", 0, ">= 1"),
        ("dose_train_limit", 0, ">= 1"),
    ],
)
def test_a_bad_value_is_refused_with_the_field_named(field: str, value: object, words: str):
    with pytest.raises(FieldError) as info:
        ScoreSettings(**{field: value})
    message = str(info.value)
    assert message.startswith(f"{field} ") and words in message and "\n" not in message
    assert info.value.field == field
    assert isinstance(info.value, ConfigError)
    # The template lets a caller say the same with its own name for the value (the CLI: its flag).
    assert info.value.template.format(name="--flag").startswith("--flag ")


def test_defaults_and_the_edges_of_each_range_are_accepted():
    ScoreSettings()
    ScoreSettings(mutation_rate=0.0, ensemble_size=1, typicality_m=1, dose_cv_folds=2, dose_estimator="ocsvm")
    ScoreSettings(mutation_rate=1.0, background_minutes=None, member_minutes=None, dose_train_limit=None)


def test_replace_validates_too():
    with pytest.raises(FieldError, match="typicality_m 0"):
        dataclasses.replace(ScoreSettings(), typicality_m=0)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("typicality_m", "abc", "expected int"),
        ("typicality_m", True, "expected int"),
        ("embedding_minutes", "long", "expected float"),
        ("dose_train_limit", 2.5, "expected int or None"),
        ("embedding_overrides", "data.pca_dim=8", "expected list"),
        ("embedding_preset", "demo", "embedding preset"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(field: str, value: object, words: str):
    with pytest.raises(FieldError, match=words) as info:
        ScoreSettings(**{field: value})
    assert info.value.field == field


def test_cli_score_setting_items_reach_the_settings_and_win_over_flags():
    from flowood.cli.evaluate_cmd import parse_score_settings, score_settings

    extra = parse_score_settings(["embedding_train_limit=10000", "mutation_rate=0.3", "embedding_overrides=[a=1]"])
    assert extra == {"embedding_train_limit": 10000, "mutation_rate": 0.3, "embedding_overrides": ["a=1"]}
    # Values are read as `--set` reads them: YAML takes 1e-4 for a string, flowood for a float.
    assert parse_score_settings(["gaussian_reg_covar=1e-4"]) == {"gaussian_reg_covar": 1e-4}
    s = score_settings(mutation_rate=0.2, extra=extra)
    assert (s.embedding_train_limit, s.mutation_rate, s.embedding_overrides) == (10000, 0.3, ["a=1"])
    with pytest.raises(ConfigError, match=r"^--score-setting mutation_rate 2: give a mutation rate"):
        score_settings(mutation_rate=0.2, extra=parse_score_settings(["mutation_rate=2"]))
    with pytest.raises(ConfigError, match=r"^--mutation-rate 2: give a mutation rate"):
        score_settings(mutation_rate=2.0)
