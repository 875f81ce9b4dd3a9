"""Bad input at the CLI: checked before hydra writes anything, reported in one line, exit 2.

Hydra creates the run directory, `.hydra/` and the job log before it calls the task function,
so a check there is too late: a rejected call would leave a directory behind or overwrite a
finished run's record. ValidateFirst, a hydra callback, checks in `on_run_start`, before all
of that. (Sweep jobs are checked in the task function: conf/config.yaml keeps hydra from
writing `.hydra/`, the log opens at its first line, and a rejected job's empty directory is
removed.) `cli` gives hydra's own composition errors (unknown group option or key, unparsable
override) the same one line and exit 2; hydra prints some of them as a traceback.
"""
from __future__ import annotations

import copy
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write

from volume.errors import ConfigError


def job_config(config: DictConfig) -> DictConfig:
    """The config the task function receives: hydra's node removed (as hydra's run_job does)."""
    job = copy.deepcopy(config)
    with read_write(job), open_dict(job):
        del job["hydra"]
    return job


def fail(err: Exception, message: str, code: int) -> None:
    """One line on stderr; exit with `code` in a single run. In a sweep, re-raise: hydra
    records the job as failed, runs the others, then raises, so the sweep ends non-zero
    after every valid job."""
    print(f"error: {message}", file=sys.stderr)
    if HydraConfig.get().mode.name == "RUN":
        sys.exit(code)
    raise err


class ValidateFirst(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from volume.experiments import validate

        HydraConfig.instance().set_config(config)  # so ${hydra:...} in hydra.run.dir resolves
        try:
            validate(job_config(config), Path(str(config.hydra.run.dir)))
        except ConfigError as err:
            fail(err, str(err), 2)


def bad_call_message(err: BaseException) -> str | None:
    """The one-line message for an error in the call itself: a ConfigError, or an error raised
    inside hydra or omegaconf while composing (what hydra reports for a bad override). None
    for anything else: a bug, whose traceback must show."""
    if isinstance(err, ConfigError):
        return str(err)
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = "" if tb is None else tb.tb_frame.f_globals.get("__name__", "")
    if where.split(".")[0] in ("hydra", "omegaconf"):
        return " ".join(str(err).split()) or type(err).__name__
    return None


def cli(main: Callable[[], Any]) -> None:
    """Run hydra's `main` so that errors propagate to here (HYDRA_FULL_ERROR, hydra's switch),
    then report a bad call in one line with exit 2; bugs keep their full traceback. A user
    who sets HYDRA_FULL_ERROR=1 gets hydra's behaviour unchanged."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        main()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        main()
    except Exception as err:  # noqa: BLE001 - sorted into bad calls and bugs below
        message = bad_call_message(err)
        if message is None:
            traceback.print_exc()
            sys.exit(1)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
