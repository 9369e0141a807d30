"""Errors that reach users as one clear message (the CLI prints them without a traceback)."""


class FlowoodError(Exception):
    """Base class: a user-facing problem with an actionable message."""


class ConfigError(FlowoodError, ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


class FieldError(ConfigError):
    """A bad value of one field of a settings dataclass. ``template`` names the field as ``{name}``, so that a
    caller that took the value under another name (a CLI flag, a flat config keyword) can re-raise the same
    message with that name: ``ConfigError(err.template.format(name="--flag"))``."""

    def __init__(self, field: str, template: str) -> None:
        self.field, self.template = field, template
        super().__init__(template.format(name=field))


class DatasetError(FlowoodError):
    """A dataset is unknown, missing, corrupt or has the wrong shape."""


class CheckpointError(FlowoodError):
    """A checkpoint or run directory cannot be read."""


class ReportError(CheckpointError):
    """A ``report.json`` is missing, malformed or of a schema this version cannot read (the message names it)."""


class RunWriteError(CheckpointError):
    """A run-directory file cannot be written (disk full, read-only, no permission); what was there is kept."""


class RunInUseError(CheckpointError):
    """Another process holds the run directory's lock, or ``--out`` names an existing run."""


class TrainingInterruptedError(FlowoodError):
    """SIGINT/SIGTERM stopped training after a checkpoint was written; the CLI exits with status 130."""

    exit_code = 130
