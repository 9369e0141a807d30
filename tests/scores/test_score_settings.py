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
