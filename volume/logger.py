"""Optional wandb logging (`logger=wandb`): off by default, offline unless told otherwise."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

TOP_ROWS = 100


def sweep_group() -> str | None:
    """Jobs of one hydra multirun share a wandb group: the sweep directory's path."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized() and HydraConfig.get().mode.name == "MULTIRUN":
        return str(HydraConfig.get().sweep.dir)
    return None


class NoLogger:
    def finish(self, summary: dict, run_dir: Path) -> None:
        pass


class WandbLogger:
    """Logs the resolved config at start; summary numbers, tables, histograms and figures
    at the end. WANDB_MODE in the environment (tests set 'disabled') wins over logger.mode."""

    def __init__(self, cfg: DictConfig, config: dict, run_dir: Path):
        import os

        import wandb

        self.wandb = wandb
        mode = os.environ.get("WANDB_MODE", cfg.logger.get("mode", "offline"))
        self.run = wandb.init(project=cfg.logger.get("project", "volume"), entity=cfg.logger.get("entity"),
                              group=cfg.logger.get("group") or sweep_group(), job_type=cfg.experiment.name,
                              name=cfg.logger.get("run_name"), mode=mode, dir=str(run_dir), config=config,
                              reinit="finish_previous")

    def finish(self, summary: dict, run_dir: Path) -> None:
        wandb = self.wandb
        flat = {k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool))}
        self.run.summary.update(flat)
        payload = {}
        for name in ("functions.csv", "classes.csv"):
            path = run_dir / name
            if path.exists():
                frame = pd.read_csv(path, nrows=TOP_ROWS if name == "functions.csv" else None)
                payload[name.removesuffix(".csv")] = wandb.Table(dataframe=frame)
                for column in ("log_p", "lz"):
                    if column in frame and name == "functions.csv":
                        full = pd.read_csv(path, usecols=[column])[column].to_numpy()
                        payload[f"hist/{column}"] = wandb.Histogram(full[np.isfinite(full)])
        for figure in summary.get("figures", []):
            payload[f"figures/{figure}"] = wandb.Image(str(run_dir / figure))
        if payload:
            self.run.log(payload)
        self.run.finish()


def make_logger(cfg: DictConfig, config: dict, run_dir: Path | None = None):
    if cfg.logger.get("name", "none") == "wandb":
        return WandbLogger(cfg, config, run_dir or Path("."))
    return NoLogger()
