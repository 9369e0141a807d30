"""Shared settings that make CLI runs train in about a second."""

TINY_OVERRIDES = [
    "model.num_blocks=1",
    "model.mid_channels=4",
    "data.limit=64",
    "data.test_limit=64",
    "train.batch_size=32",
    "train.max_minutes=null",
    "train.num_samples=4",
]

TINY_TRAIN_ARGS = [arg for override in TINY_OVERRIDES for arg in ("--set", override)] + ["--device", "cpu", "--quiet"]
"""``flowood train`` arguments: the demo preset as a 4-channel RealNVP on 64 images (2 steps per epoch)."""

HANG_SECONDS = 1800
"""A guard against a hung subprocess (a deadlock), never a measurement: a test must not fail because another
process slowed it down (issue 25, item 13), and no step of this suite takes a tenth of this on a loaded 2-core
machine. Tests compare what they mean (steps, files, exit codes), not how long it took."""
