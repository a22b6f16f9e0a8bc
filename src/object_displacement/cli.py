"""What entry points share: user errors become one line on stderr and exit code 2.

In a sweep (``-m``) a failed job does not stop the others: its error is recorded in its
job dir (``error.txt`` and ``displace.log``), and the sweep ends with a one-line tally and
exit code 2 if any job failed (:class:`RunChecks`, a Hydra callback). Ctrl-C ends any run
with one line and exit code 130; files are written whole or not at all, so none is left
half-written. ``--help`` loads Hydra and the configs, not the pipeline (:func:`main`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback

from object_displacement.errors import DisplacementError, message

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger(__name__)

USER_ERROR_EXIT = 2
INTERRUPTED_EXIT = 130
TERMINATED_EXIT = 143
SWEEP_MARK = ".sweep-started"
"""Touched in the sweep dir when a sweep starts: its jobs are the job dirs written after."""
ERROR_FILE = "error.txt"
"""A failed job's error line, in its run dir: what a sweep's tally counts."""


def exit_on_user_error(task: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a task so a :class:`DisplacementError` ends the process cleanly.

    Hydra would print a traceback for any exception; a user who mistyped a path needs
    only the message. Bugs (any other exception) keep their traceback. In a multirun the
    error is recorded and the sweep goes on to its next job.
    """

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        run_dir = _job_dir()
        if run_dir is not None:
            (run_dir / ERROR_FILE).unlink(missing_ok=True)  # a retried job starts clean
        try:
            return task(*args, **kwargs)
        except DisplacementError as err:
            line = one_line(err)
            log.debug("user error", exc_info=True)
            print(line, file=sys.stderr, flush=True)
            record_failure(line, run_dir)
            if _in_multirun():
                return None
            sys.exit(USER_ERROR_EXIT)
        except KeyboardInterrupt as err:
            record_failure(_stop_line(err), run_dir)
            interrupted(err)
        except Exception as err:
            stop = _stopped_by(err)  # Ctrl-C inside a C extension's import comes back as its error
            if stop is None:
                raise
            record_failure(_stop_line(stop), run_dir)
            interrupted(stop)

    return wrapper


def _stopped_by(err: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or SIGTERM an exception was raised from, if any (its cause or context)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return None


def one_line(err: BaseException) -> str:
    """``error: <message>`` on a single line, however the message was written."""
    return f"error: {message(err)}"


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler's time limit), raised in the main thread as Ctrl-C is,
    so the same clean-up runs: temporaries removed, a dataset's summary written. It may say
    why (a cluster job stopped at its time limit); its line is then that reason."""


def stop_on_sigterm() -> None:
    """Turn SIGTERM into :class:`Terminated` in this process (the main thread)."""

    def terminated(signum: int, frame: Any) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, terminated)


def _stop_line(err: BaseException | None) -> str:
    if isinstance(err, Terminated):
        return f"error: {message(err)}" if str(err) else "error: terminated"
    return "error: interrupted"


def interrupted(err: BaseException | None = None) -> None:
    """Ctrl-C: one line, exit code 130 (the shell's convention), no traceback; SIGTERM the
    same with ``error: terminated`` and 143 (128 + 15)."""
    print(_stop_line(err), file=sys.stderr, flush=True)
    sys.exit(TERMINATED_EXIT if isinstance(err, Terminated) else INTERRUPTED_EXIT)


def guard(main: Callable[[], Any]) -> Any:
    """Run a script's ``main`` so that Ctrl-C or SIGTERM outside the task (while Hydra
    starts, between sweep jobs) also ends with one line and exit code 130 (143)."""
    stop_on_sigterm()
    try:
        return main()
    except KeyboardInterrupt as err:
        interrupted(err)


def record_failure(line: str, run_dir: Path | None) -> None:
    """Put the error line into the run's log file(s) and ``error.txt``, not on the console
    again (the user already has it on stderr). Best effort: the disk may be the problem."""
    record = logging.LogRecord("object_displacement", logging.ERROR, __file__, 0, line, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            with contextlib.suppress(Exception):
                handler.handle(record)
                handler.flush()
    if run_dir is not None:
        with contextlib.suppress(OSError):
            (run_dir / ERROR_FILE).write_text(line + "\n")


def _job_dir() -> Path | None:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return Path(HydraConfig.get().runtime.output_dir)


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


class RunChecks(Callback):
    """Hydra callback: before a run or a sweep, check that its directory can be written (one
    line and exit 2, where Hydra would print a traceback; ``hydra/launcher=slurm`` checks its
    cluster itself); after a sweep, one line that counts its failed jobs (exit code 2 if any
    failed)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_dir(str(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_dir(str(config.hydra.sweep.dir))
        # the jobs of this sweep are those started after this mark (an earlier sweep's dirs may
        # be there); the mark is a file so both times come from the same clock, the disk's
        mark = Path(str(config.hydra.sweep.dir)) / SWEEP_MARK
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.touch()
        self.started = mark.stat().st_mtime

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(str(config.hydra.sweep.dir))
        started = getattr(self, "started", 0.0)
        jobs = sorted(
            (p for p in sweep.iterdir() if job_started(p) >= started), key=lambda p: (len(p.name), p.name)
        )
        failed = [p for p in jobs if (p / ERROR_FILE).is_file()]
        if not failed:
            print(f"sweep: {len(jobs)} jobs ok in {sweep}", flush=True)
            return
        first = (failed[0] / ERROR_FILE).read_text().strip().removeprefix("error: ")
        print(
            f"error: {len(failed)} of {len(jobs)} sweep jobs failed ({', '.join(p.name for p in failed)}); "
            f"job {failed[0].name}: {first}; see {failed[0] / ERROR_FILE}",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(USER_ERROR_EXIT)


def sweep_started(sweep_dir: Path) -> float:
    """When the sweep last run in ``sweep_dir`` started (its mark); 0 where none has: the
    jobs of that sweep are the dirs :func:`job_started` since."""
    try:
        return (sweep_dir / SWEEP_MARK).stat().st_mtime
    except OSError:
        return 0.0


def job_started(job_dir: Path) -> float:
    """When a sweep job started (Hydra writes its ``.hydra/`` first); -1 for no job dir."""
    try:
        return (job_dir / ".hydra" / "overrides.yaml").stat().st_mtime
    except OSError:
        return -1.0


def _check_dir(directory: str) -> None:
    from object_displacement.io import check_can_write

    try:
        check_can_write(Path(directory) / ".hydra" / "config.yaml")  # an earlier run's .hydra is fine
    except DisplacementError as err:
        print(one_line(err), file=sys.stderr, flush=True)
        sys.exit(USER_ERROR_EXIT)


class BelowLevel(logging.Filter):
    """Let through only records below ``level``: info on stdout, warnings on stderr."""

    def __init__(self, level: str | int = logging.WARNING) -> None:
        super().__init__()
        self.level = logging.getLevelName(level) if isinstance(level, str) else level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


def main() -> None:
    """The ``displace`` command (``pip install .`` puts it on PATH; ``scripts/displace.py``
    calls it): the Hydra app on the packaged or the repository's configs."""
    import hydra

    from object_displacement.config import CONFIG_NAME, config_dir

    @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=CONFIG_NAME)
    @exit_on_user_error
    def displace(cfg: DictConfig) -> None:
        # imported by the job, not before Hydra starts: `--help`, `--cfg` and `--info` never
        # need the pipeline (numpy, OpenCV and the components' modules)
        from object_displacement.jobs import run_job

        run_job(cfg)

    with group_listing_once() if asks_for_help(sys.argv[1:]) else contextlib.nullcontext():
        guard(displace)


HELP_FLAGS = frozenset({"--help", "-h", "--hydra-help"})


def asks_for_help(argv: list[str]) -> bool:
    """Whether Hydra will print a help page (``--help``/``-h``, ``--hydra-help``) for ``argv``."""
    return not HELP_FLAGS.isdisjoint(argv)


@contextlib.contextmanager
def group_listing_once() -> Iterator[None]:
    """Let Hydra list the config groups for its help page from one copy of its config
    repository, and each group once.

    Hydra 1.3 deep-copies the whole repository (every YAML file and structured config it
    knows) for each group it lists, about a hundred times for our ``conf/``, and walks the
    groups twice (Hydra's, then the app's): over a CPU second of the ~2 that ``--help``
    took. The repository does not change while a help page is printed, so the same page
    comes from one copy per set of overrides and one listing per group. A Hydra without the
    method this relies on lists the groups its own way.
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.object_type import ObjectType

    slow = getattr(ConfigLoaderImpl, "get_group_options", None)
    if slow is None or not hasattr(ConfigLoaderImpl, "_parse_overrides_and_create_caching_repo"):
        yield
        return
    repos: dict[tuple[Any, ...], Any] = {}
    listed: dict[tuple[Any, ...], list[str]] = {}

    def get_group_options(
        self: ConfigLoaderImpl,
        group_name: str,
        results_filter: ObjectType | None = ObjectType.CONFIG,
        config_name: str | None = None,
        overrides: list[str] | None = None,
    ) -> list[str]:
        setting = (self, config_name, tuple(overrides or ()))
        if setting not in repos:
            _, repos[setting] = self._parse_overrides_and_create_caching_repo(config_name, list(setting[2]))
        key = (*setting, group_name, results_filter)
        if key not in listed:
            listed[key] = repos[setting].get_group_options(group_name, results_filter)
        return list(listed[key])

    ConfigLoaderImpl.get_group_options = get_group_options  # type: ignore[method-assign]
    try:
        yield
    finally:
        ConfigLoaderImpl.get_group_options = slow  # type: ignore[method-assign]
