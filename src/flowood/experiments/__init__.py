"""Experiment layer: presets and end-to-end recipes built on the library subpackages."""
