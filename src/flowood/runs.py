"""Run directories: every file name in one place, the "is this a run" check, and ownership.

A run directory (``flowood train --out DIR``)::

    config.yaml              the validated config (resume reads it)
    metrics.csv              one row per epoch (and per partial epoch, marked in the ``partial`` column)
    model.safetensors        weights (+ model_ema.safetensors with train.ema_decay); metadata input_shape
    checkpoints/last.pt      full training state, loaded with weights_only=True
    standardize.json         vector data: the standardisation fitted on the training split
    labels.json              string class labels: {"class_names": [...]} (code i = class_names[i])
    samples/epoch_XXX.png    image runs: samples after each epoch
    tensorboard/             TensorBoard event files
    report.json, scores.npz, histogram.png     written by ``flowood evaluate``
    ood_scores.npz           per-sample values of the other detectors, "DETECTOR/SET"
    background/ ensemble/member-K/ general/NAME/ embedding-flow/   auxiliary models of the detectors (each an
                             ordinary run directory), embeddings/NAME/…  their CNN features
    features/PIPELINE/       one evaluation feature pipeline: train.npz / test.npz (the reference and test
                             features), embedding-flow/ (the flow on them), extractor/ (a learned extractor:
                             config.json, model.safetensors, metrics.json)
    model_card.md, model_card.json   what the run is and how it scored (``flowood benchmark``)
    figures/                 written by ``flowood visualize``;  report.html by ``flowood report``
    .flowood.lock            held (``flock``) by the process writing the run; it holds that PID

Ownership: a new run refuses a directory that already holds one unless told to replace it (``--force``,
which removes the files listed above — by name, and inside ``checkpoints/``, ``samples/``, ``tensorboard/``,
``figures/`` and the auxiliary models' folders only the files flowood writes there — and nothing else; a folder
whose ``config.yaml`` is not a flowood config is not a run and is never cleared); every command that writes
into a run (``train``, ``evaluate``, ``visualize``, ``report``, ``demo``) holds its lock, so a second writer is
stopped with an error naming the holder's PID (a lock left by a dead process is taken over: ``flock`` dies with
its process); temporary files of interrupted atomic writes are removed when the next writer starts.
"""

from __future__ import annotations

import csv
import errno
import os
from pathlib import Path
from typing import IO, ClassVar

from flowood.errors import CheckpointError, ConfigError, RunInUseError, RunWriteError
from flowood.evaluation import EvaluationReport

try:  # POSIX; elsewhere the lock falls back to the PID written in the file
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def _reason(err: OSError) -> str:
    if err.errno == errno.EROFS:
        return "read-only file system"
    if err.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if err.errno == errno.ENOSPC:
        return "no space left on device (disk full)"
    return err.strerror or str(err)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


CONFIG_SECTIONS = frozenset({"model", "data", "train", "seed", "device"})
"""The top-level keys of a flowood ``config.yaml`` (``flowood.train.config.RunConfig``'s sections)."""


def path_safe(name: str) -> str:
    """``name`` as one folder name: characters other than letters, digits and ``-_.`` become ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except IsADirectoryError:
        return  # a folder of the user's under one of flowood's file names: not ours to remove
    except OSError as err:
        raise RunWriteError(f"--force: cannot remove {path}: {_reason(err)}") from None


def _remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` when nothing (the user's files included) is left in it."""
    try:
        folder.rmdir()
    except FileNotFoundError:
        return
    except OSError as err:
        if err.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            return
        raise RunWriteError(f"--force: cannot remove {folder}: {_reason(err)}") from None


class RunDir:
    """Paths of one run directory and the operations that decide who may write it.

    Args:
        path: the directory (it need not exist yet).
    """

    CONFIG = "config.yaml"
    METRICS = "metrics.csv"
    MODEL = "model.safetensors"
    MODEL_EMA = "model_ema.safetensors"
    CHECKPOINTS = "checkpoints"
    CHECKPOINT = "checkpoints/last.pt"
    STANDARDIZE = "standardize.json"
    PROJECTION = "standardize_projection.npy"
    LABELS = "labels.json"
    REPORT = "report.json"
    SCORES = "scores.npz"
    OOD_SCORES = "ood_scores.npz"
    HISTOGRAM = "histogram.png"
    SAMPLES = "samples"
    TENSORBOARD = "tensorboard"
    FIGURES = "figures"
    HTML_REPORT = "report.html"
    LOCK = ".flowood.lock"
    BACKGROUND = "background"
    ENSEMBLE = "ensemble"
    GENERAL = "general"
    EMBEDDING_FLOW = "embedding-flow"
    EMBEDDINGS = "embeddings"
    FEATURES = "features"
    EXTRACTOR = "extractor"
    MODEL_CARD = "model_card.md"
    MODEL_CARD_JSON = "model_card.json"

    OWNED = (
        CONFIG,
        METRICS,
        MODEL,
        MODEL_EMA,
        CHECKPOINTS,
        STANDARDIZE,
        PROJECTION,
        LABELS,
        REPORT,
        SCORES,
        OOD_SCORES,
        HISTOGRAM,
        SAMPLES,
        TENSORBOARD,
        FIGURES,
        HTML_REPORT,
        BACKGROUND,
        ENSEMBLE,
        GENERAL,
        EMBEDDING_FLOW,
        EMBEDDINGS,
        FEATURES,
        MODEL_CARD,
        MODEL_CARD_JSON,
    )
    """What ``--force`` removes: the files flowood writes into a run directory (the auxiliary models of its
    detectors included: they were derived from the run being replaced), nothing else. Folders are emptied of
    :attr:`FOLDER_FILES` only and removed when nothing else is left in them."""

    FOLDER_FILES: ClassVar[dict[str, tuple[str, ...]]] = {
        CHECKPOINTS: ("last.pt",),
        SAMPLES: ("epoch_*.png",),
        TENSORBOARD: ("events.out.tfevents.*",),
        FIGURES: ("latents.png", "coupling_layer_*.png", "coupling_stats.json", "samples.png", "histograms.png"),
        EMBEDDINGS: ("*/*/train.npz", "*/*/test.npz"),
    }
    """The files flowood writes inside each of its folders (glob patterns): a user's own files there are kept."""

    RUN_FOLDERS: ClassVar[dict[str, tuple[str, ...]]] = {
        BACKGROUND: ("",),
        EMBEDDING_FLOW: ("",),
        ENSEMBLE: ("member-*",),
        GENERAL: ("*",),
    }
    """Folders (glob patterns below each name; ``""``: the folder itself) that hold auxiliary runs."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock_fh: IO[str] | None = None

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ---- paths -------------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def model(self) -> Path:
        return self.path / self.MODEL

    @property
    def model_ema(self) -> Path:
        return self.path / self.MODEL_EMA

    @property
    def checkpoint(self) -> Path:
        return self.path / self.CHECKPOINT

    @property
    def standardize(self) -> Path:
        return self.path / self.STANDARDIZE

    @property
    def labels(self) -> Path:
        return self.path / self.LABELS

    @property
    def report(self) -> Path:
        return self.path / self.REPORT

    @property
    def scores(self) -> Path:
        return self.path / self.SCORES

    @property
    def histogram(self) -> Path:
        return self.path / self.HISTOGRAM

    @property
    def samples(self) -> Path:
        return self.path / self.SAMPLES

    @property
    def tensorboard(self) -> Path:
        return self.path / self.TENSORBOARD

    @property
    def figures(self) -> Path:
        return self.path / self.FIGURES

    @property
    def report_html(self) -> Path:
        return self.path / self.HTML_REPORT

    @property
    def lock_file(self) -> Path:
        return self.path / self.LOCK

    @property
    def ood_scores(self) -> Path:
        return self.path / self.OOD_SCORES

    @property
    def background(self) -> Path:
        """The likelihood ratio's background flow (a run directory)."""
        return self.path / self.BACKGROUND

    def ensemble_member(self, index: int) -> Path:
        """WAIC's ensemble member ``index`` (a run directory)."""
        return self.path / self.ENSEMBLE / f"member-{index}"

    def general(self, dataset: str) -> Path:
        """The general model trained on ``dataset`` (a run directory)."""
        return self.path / self.GENERAL / path_safe(dataset)

    @property
    def embedding_flow(self) -> Path:
        """The tabular flow on CNN features (a run directory)."""
        return self.path / self.EMBEDDING_FLOW

    def embeddings(self, dataset: str, pipeline: str) -> Path:
        """The CNN features of ``dataset`` computed by the feature ``pipeline`` (e.g. ``efficientnet-lite0-64px``)."""
        return self.path / self.EMBEDDINGS / path_safe(dataset) / path_safe(pipeline)

    def feature_pipeline(self, pipeline: str) -> Path:
        """Everything one evaluation feature pipeline computed for this run (``features/PIPELINE``)."""
        return self.path / self.FEATURES / path_safe(pipeline)

    def pipeline_embedding_flow(self, pipeline: str) -> Path:
        """The tabular flow on the features of ``pipeline`` (a run directory)."""
        return self.feature_pipeline(pipeline) / self.EMBEDDING_FLOW

    def learned_extractor(self, pipeline: str) -> ExtractorDir:
        """The CNN learnt from this run's training split for ``pipeline``."""
        return ExtractorDir(self.feature_pipeline(pipeline) / self.EXTRACTOR)

    @property
    def model_card(self) -> Path:
        return self.path / self.MODEL_CARD

    @property
    def model_card_json(self) -> Path:
        return self.path / self.MODEL_CARD_JSON

    def sample_path(self, epoch: int) -> Path:
        """``samples/epoch_XXX.png`` for 1-based ``epoch``."""
        return self.samples / f"epoch_{epoch:03d}.png"

    # ---- what is here ------------------------------------------------------------------------
    def is_run(self) -> bool:
        """True when the directory holds a flowood run (its ``config.yaml``)."""
        return self.config.is_file()

    def has_run_files(self) -> bool:
        """True when any file of a run is present (also a run that died before writing its config)."""
        return any((self.path / name).exists() for name in (self.CONFIG, self.METRICS, self.MODEL, self.CHECKPOINT))

    def foreign_config(self) -> str | None:
        """Why ``config.yaml`` is not a flowood run's (``None`` when it is, or when there is none).

        Only a flowood config marks a run: a folder of the user's own that happens to hold a ``config.yaml``
        (and ``samples/``, ``checkpoints/``...) must never be taken for one and cleared by ``--force``.
        """
        if not self.config.is_file():
            return None
        import yaml  # the package imports without PyYAML; only an existing config needs it

        try:
            raw = yaml.safe_load(self.config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            return f"it cannot be read as YAML ({str(err).splitlines()[0][:80]})"
        if not isinstance(raw, dict) or not {"model", "data", "train"} <= raw.keys() <= CONFIG_SECTIONS:
            keys = ", ".join(map(str, raw)) if isinstance(raw, dict) else type(raw).__name__
            return f"its top level ({keys}) is not a flowood config's ({', '.join(sorted(CONFIG_SECTIONS))})"
        return None

    def require_run(self) -> RunDir:
        """Raise the one "not a run" error unless this is a run directory; returns ``self``."""
        if not self.is_run():
            raise CheckpointError(
                f"{self.path} is not a flowood run directory (no {self.CONFIG}); "
                "create one with `flowood train --out DIR` or `flowood demo`"
            )
        return self

    def weights(self, which: str = "auto") -> Path:
        """The weights file to load: ``auto`` (EMA when the run kept them), ``ema`` or ``raw``.

        Raises:
            CheckpointError: the file is missing, with what to do (resume or wait for an epoch).
        """
        if which not in ("auto", "ema", "raw"):
            raise CheckpointError(f"weights={which!r}: choose auto, ema or raw")
        path = self.model_ema if which == "ema" or (which == "auto" and self.model_ema.is_file()) else self.model
        if path.is_file():
            return path
        if self.checkpoint.is_file():
            raise CheckpointError(
                f"{path} is missing but {self.checkpoint} exists: continue the run with "
                f"`flowood train --resume {self.path}` (it rewrites the weights at the next epoch or limit)"
            )
        raise CheckpointError(f"{path} not found: the run in {self.path} has not finished an epoch yet")

    def unreadable_weights(self, path: Path, err: BaseException) -> CheckpointError:
        """The error for a truncated/corrupt weights file, saying how to get a good one."""
        if self.checkpoint.is_file():
            hint = (
                f"rewrite it from the checkpoint with `flowood train --resume {self.path} --epochs N` (N above the "
                "epochs done), or train the run again with --force"
            )
        else:
            hint = "train the run again with `flowood train ... --force`"
        return CheckpointError(f"{path} is unreadable ({str(err).splitlines()[0][:160]}); {hint}")

    def read_metrics(self) -> list[dict[str, str]]:
        """Rows of ``metrics.csv`` as strings (empty when absent)."""
        if not self.metrics.is_file():
            return []
        with self.metrics.open(newline="") as fh:
            return list(csv.DictReader(fh))

    def read_report(self) -> EvaluationReport | None:
        """``report.json`` (from ``flowood evaluate``), or None when the run has not been evaluated.

        Raises:
            ReportError: the file is unreadable, malformed or of a newer schema (the message names it).
        """
        return EvaluationReport.load(self.report) if self.report.is_file() else None

    # ---- ownership ---------------------------------------------------------------------------
    def claim(self, *, new: bool, force: bool = False) -> list[Path]:
        """Become this run's only writer; returns the stale temporary files removed.

        Nothing is removed here: with ``force`` the caller checks everything it can (config, data, options) and
        then calls :meth:`clear`, so a ``--force`` that fails validation leaves the old run as it was.

        Args:
            new: a new run (``--out``); False to continue an existing one (``--resume``).
            force: for a new run, the existing run here may be replaced (by the caller's :meth:`clear`).

        Raises:
            RunWriteError: the directory cannot be created or written (read-only, permissions, full disk).
            RunInUseError: another process writes this run (its PID named), or ``new`` and a run is already
                here without ``force``, or the folder's files are not a flowood run's (``--force`` never
                clears those).
            CheckpointError: not ``new`` and the directory is not a run.
        """
        if not new:
            self.require_run()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunWriteError(
                f"cannot create run directory {self.path}: {_reason(err)}; choose a writable --out"
            ) from None
        fresh_lock = not self.lock_file.exists()
        self._acquire_lock(hint="choose a writable --out" if new else "make it writable")
        try:
            if new and self.has_run_files():
                foreign = self.foreign_config()
                if foreign is not None or not self.is_run():
                    why = f"{self.config} is not a flowood config: {foreign}" if foreign else "no config.yaml"
                    raise RunInUseError(
                        f"{self.path} holds files that are not a flowood run's ({why}); flowood will not replace "
                        "them, even with --force: choose another --out"
                    )
                if not force:
                    raise RunInUseError(
                        f"{self.path} already holds a flowood run; continue it with `flowood train --resume "
                        f"{self.path}`, replace it with --force, or choose another --out"
                    )
            return self.clean_stale_tmp()
        except BaseException:
            self.release()
            if fresh_lock:
                self.lock_file.unlink(missing_ok=True)  # leave a folder that is not ours as it was
            raise

    def hold(self, command: str, *, elsewhere: str | None = None) -> RunDir:
        """Take the lock of this existing run for ``flowood COMMAND``, which writes into it; returns ``self``
        (a context manager that releases it).

        Args:
            command: the command, for the messages (``"evaluate"``).
            elsewhere: how to write the output somewhere else instead (``"pass --out FILE.html"``), when the
                command can.

        Raises:
            CheckpointError: not a run directory.
            RunInUseError: another process writes the run (training, evaluating: its PID named).
            RunWriteError: the run directory cannot be written (read-only, permissions).
        """
        self.require_run()
        instead = elsewhere or f"copy the run somewhere writable (cp -r {self.path} COPY) and run it on the copy"
        then = f"then run `flowood {command}` again" + (f", or {elsewhere}" if elsewhere else "")
        self._acquire_lock(hint=f"`flowood {command}` writes into the run directory: {instead}", then=then)
        self.clean_stale_tmp()
        return self

    def hold_output(self, command: str) -> RunDir:
        """Take the lock of an output folder that holds runs rather than being one (``flowood benchmark --out``,
        ``flowood reproduce --out``), creating it; returns ``self`` (a context manager that releases it).

        Raises:
            ConfigError: the path is a file.
            RunWriteError: it cannot be created or written (read-only, permissions, full disk).
            RunInUseError: another process writes into it (its PID named).
        """
        if self.path.is_file():
            raise ConfigError(f"--out {self.path} is a file; give a directory for `flowood {command}`'s output")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunWriteError(f"cannot create {self.path}: {_reason(err)}; choose a writable --out") from None
        self._acquire_lock(
            hint="choose a writable --out", then=f"then run `flowood {command}` again, or choose another --out"
        )
        return self

    def _acquire_lock(self, *, hint: str, then: str = "or choose another --out") -> None:
        try:
            fh = open(self.lock_file, "a+")  # noqa: SIM115 - held open while the run is written
        except OSError as err:
            raise RunWriteError(f"cannot write to {self.path}: {_reason(err)}; {hint}") from None
        holder = self._holder(fh)
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                raise self._in_use(holder, then) from None
            except OSError:
                # No flock here (some network file systems): trust the PID in the file.
                if holder is not None and holder != os.getpid() and _pid_alive(holder):
                    fh.close()
                    raise self._in_use(holder, then) from None
        elif holder is not None and holder != os.getpid() and _pid_alive(holder):
            fh.close()
            raise self._in_use(holder, then)
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
        except OSError as err:
            fh.close()
            raise RunWriteError(f"cannot write to {self.path}: {_reason(err)}; {hint}") from None
        self._lock_fh = fh

    @staticmethod
    def _holder(fh: IO[str]) -> int | None:
        fh.seek(0)
        text = fh.read().strip()
        return int(text) if text.isdigit() else None

    def _in_use(self, pid: int | None, then: str) -> RunInUseError:
        who = f"process {pid}" if pid is not None else "another process"
        return RunInUseError(
            f"{self.path} is being written by {who} (lock {self.lock_file}); wait for it to finish or stop it "
            f"(Ctrl-C / kill saves a checkpoint), {then}"
        )

    def release(self) -> None:
        """Give up the lock (the file stays; an unlocked lock file is free to take)."""
        if self._lock_fh is not None:
            fh, self._lock_fh = self._lock_fh, None
            try:
                fh.seek(0)
                fh.truncate()
            except OSError:
                pass
            fh.close()

    @property
    def locked(self) -> bool:
        """True while this object holds the lock."""
        return self._lock_fh is not None

    def clear(self) -> None:
        """Remove the run's own files (:attr:`OWNED`; inside its folders only :attr:`FOLDER_FILES` and the
        auxiliary runs' own files); other files in the directory and its folders are left alone.

        Raises:
            RunInUseError: ``config.yaml`` is not a flowood config (the folder is not a run: nothing is removed).
            RunWriteError: a file cannot be removed.
        """
        foreign = self.foreign_config()
        if foreign is not None:
            raise RunInUseError(
                f"{self.path} is not a flowood run ({self.config}: {foreign}); flowood will not remove files "
                "there: choose another --out"
            )
        for name in self.OWNED:
            target = self.path / name
            if name == self.FEATURES:
                self._clear_features(target)
            elif name in self.RUN_FOLDERS:
                for pattern in self.RUN_FOLDERS[name]:
                    for sub in [target] if not pattern else sorted(target.glob(pattern)):
                        if sub.is_dir() and not sub.is_symlink():
                            child = RunDir(sub)
                            child.clear()
                            _remove(child.lock_file)
                            _remove_if_empty(sub)
                _remove_if_empty(target)
            elif name in self.FOLDER_FILES:
                if target.is_dir() and not target.is_symlink():
                    for pattern in self.FOLDER_FILES[name]:
                        for path in target.glob(pattern):
                            _remove(path)
                    for path in sorted(target.rglob("*.tmp"), reverse=True):
                        if path.name.startswith("."):
                            _remove(path)  # an interrupted atomic write of one of flowood's files
                    for sub in sorted((p for p in target.rglob("*") if p.is_dir()), reverse=True):
                        _remove_if_empty(sub)
                    _remove_if_empty(target)
                elif target.is_symlink() or target.exists():
                    _remove(target)
            elif target.is_symlink() or target.is_file():
                _remove(target)
        self.clean_stale_tmp()

    PIPELINE_FILES: ClassVar[tuple[str, ...]] = ("train.npz", "test.npz")
    """The feature arrays flowood writes in each ``features/PIPELINE`` folder."""

    def _clear_features(self, target: Path) -> None:
        """``features/``: in each pipeline folder the embedding flow (a run), the learned extractor and the feature
        arrays, all derived from the run being replaced (a new run must not reuse them); other files are kept."""
        if not target.is_dir() or target.is_symlink():
            return
        for pipeline in sorted(p for p in target.iterdir() if p.is_dir() and not p.is_symlink()):
            flow = pipeline / self.EMBEDDING_FLOW
            if flow.is_dir() and not flow.is_symlink():
                child = RunDir(flow)
                child.clear()
                _remove(child.lock_file)
                _remove_if_empty(flow)
            extractor = pipeline / self.EXTRACTOR
            if extractor.is_dir() and not extractor.is_symlink():
                ExtractorDir(extractor).clear()
                _remove_if_empty(extractor)
            for name in self.PIPELINE_FILES:
                _remove(pipeline / name)
            _remove_if_empty(pipeline)
        _remove_if_empty(target)

    def clean_stale_tmp(self) -> list[Path]:
        """Remove temporary files that interrupted atomic writes left (``.NAME.XXXX.tmp``, ``config.yaml.tmp``)."""
        removed = []
        for folder in (self.path, self.path / self.CHECKPOINTS):
            if not folder.is_dir():
                continue
            for p in folder.iterdir():
                stale = p.name.endswith(".tmp") and (p.name.startswith(".") or p.name == f"{self.CONFIG}.tmp")
                if stale and p.is_file():
                    try:
                        p.unlink()
                    except OSError:
                        continue
                    removed.append(p)
        return removed

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ExtractorDir:
    """The files of a learned feature extractor's directory (:mod:`flowood.experiments.learned_features`)."""

    CONFIG = "config.json"
    MODEL = "model.safetensors"
    METRICS = "metrics.json"
    OWNED = (CONFIG, MODEL, METRICS)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def config(self) -> Path:
        """What the extractor was trained on and with (the reuse key)."""
        return self.path / self.CONFIG

    @property
    def model(self) -> Path:
        return self.path / self.MODEL

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    def clear(self) -> None:
        """Remove the extractor's files (:attr:`OWNED`), nothing else."""
        for name in self.OWNED:
            try:
                (self.path / name).unlink(missing_ok=True)
            except OSError as err:
                raise RunWriteError(f"cannot remove {self.path / name}: {_reason(err)}") from None
