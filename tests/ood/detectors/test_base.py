"""``flowood.ood.detectors.base``: the registry, names and ``all``, settings given as keywords or an instance,
errors naming ``DETECTOR.FIELD``, the up-front ``check``, and which detectors the pytorch-ood adapter can run."""

from __future__ import annotations

import pytest

from flowood.errors import ConfigError, FieldError
from flowood.ood.detectors import (
    DETECTORS,
    WAIC,
    WAICSettings,
    adaptable_detectors,
    available_detectors,
    get_detector,
    parse_detectors,
)
from tests.ood.detectors.fakes import FakeContext, near, samples


def test_parse_detectors_puts_the_baseline_first_and_expands_all():
    assert parse_detectors(None) == ["log_likelihood"]
    assert parse_detectors("waic,typicality,waic") == ["log_likelihood", "waic", "typicality"]
    assert parse_detectors(["input_complexity", "bits_per_dim,log_likelihood"]) == [
        "log_likelihood",
        "input_complexity",
        "bits_per_dim",
    ]
    everything = set(available_detectors())
    assert set(parse_detectors("all")) == {n for n in everything if DETECTORS[n].in_all}
    assert "general_likelihood_ratio" not in parse_detectors("all")  # it needs a dataset only the user can name
    with pytest.raises(ConfigError, match="unknown score 'wiac'"):
        parse_detectors("wiac")


def test_settings_as_keywords_or_as_an_instance():
    assert get_detector("waic", ensemble_size=5).settings == WAICSettings(ensemble_size=5)
    given = WAICSettings(ensemble_size=4)
    assert WAIC(given).settings is given
    with pytest.raises(ConfigError, match="not both"):
        WAIC(given, ensemble_size=4)
    with pytest.raises(ConfigError, match="takes WAICSettings"):
        WAIC(object())


def test_a_bad_setting_is_one_line_naming_detector_and_field():
    with pytest.raises(FieldError) as err:
        get_detector("waic", ensemble_size=1)
    assert str(err.value) == "waic.ensemble_size must be >= 2, got 1" and err.value.field == "waic.ensemble_size"
    with pytest.raises(FieldError, match=r"^unknown key waic\.mutation_rate; valid: ensemble_size"):
        get_detector("waic", mutation_rate=0.1)
    with pytest.raises(FieldError, match=r"^dose\.estimator: 'gmm' is not one of kde, ocsvm"):
        get_detector("dose", estimator="gmm")


def test_unfitted_score_is_an_error():
    with pytest.raises(RuntimeError, match="fit"):
        get_detector("typicality_m1").score(samples("in", near(2.0)))


def test_image_detectors_refuse_vector_runs_in_check():
    with pytest.raises(ConfigError, match="only defined for image runs"):
        get_detector("input_complexity").check(FakeContext(is_image=False), [])


def test_adaptable_detectors_are_those_without_auxiliary_models_that_score_samples():
    adaptable = set(adaptable_detectors())
    # The list the adapter used to keep by hand is derived now; detectors added later join it by the same rule.
    assert {
        "log_likelihood",
        "bits_per_dim",
        "typicality_m1",
        "latent_typicality",
        "dose",
        "per_scale",
        "input_complexity",
        "compressed_size",
    } <= adaptable
    assert not adaptable & {"likelihood_ratio", "general_likelihood_ratio", "waic", "typicality", "embedding_gaussian"}
    for name in adaptable:
        assert not DETECTORS[name].info.auxiliary and not DETECTORS[name].info.per_batch
