"""Hydra callback that checks a single run's config before hydra writes anything.

Hydra creates the run directory, `.hydra/` and the job log before it calls the task
function, so a check there is too late: a rejected call would leave a directory behind or
overwrite a finished run's record. `on_run_start` runs before all of that.
(Sweep jobs are checked in the task function; conf/config.yaml keeps hydra from writing
`.hydra/` and, until the first record, the log, and a rejected job's empty directory is removed.)
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

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
        from volume.setup import validate

        HydraConfig.instance().set_config(config)  # so ${hydra:...} in hydra.run.dir resolves
        try:
            validate(job_config(config), Path(str(config.hydra.run.dir)))
        except ConfigError as err:
            fail(err, str(err), 2)
