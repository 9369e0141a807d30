"""Module paths renamed in 0.2 keep working for one release, with a DeprecationWarning naming the new home."""

import importlib
import sys

import pytest

RENAMED = [
    ("flowood.flows.model", "flowood.flows.flow", "NormalizingFlow"),
    ("flowood.flows.models", "flowood.flows.architectures", "build_flow"),
    ("flowood.ood.scoring", "flowood.ood.likelihood", "score_bits_per_dim"),
    ("flowood.experiments.presets", "flowood.train.presets", "get_preset"),
    ("flowood.ood.scores", "flowood.ood.detectors", "mutate_images"),
]


@pytest.mark.parametrize(("old", "new", "name"), RENAMED)
def test_old_path_warns_and_gives_the_same_object(old: str, new: str, name: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)


def test_unsqueeze_lives_beside_squeeze() -> None:
    from flowood.flows import multiscale, reshape

    assert reshape.Unsqueeze is multiscale.Unsqueeze
    assert reshape.Unsqueeze.__module__ == "flowood.flows.reshape"
