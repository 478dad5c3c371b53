"""The Hydra baseline: the quickstart's configuration as a structured config (--cfg job)."""

from dataclasses import dataclass, field

import hydra
from hydra.core.config_store import ConfigStore


@dataclass
class Model:
    kind: str = "gpt2"
    layers: int = 2
    heads: int = 4
    width: int = 128
    context: int = 16
    vocab_lo: int = 0
    vocab_hi: int = 199


@dataclass
class Data:
    kind: str = "arithmetic"
    ops: list = field(default_factory=lambda: ["+", "-"])
    max: int = 100
    train: int = 4500
    test: int = 500


@dataclass
class Optimizer:
    kind: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.01


@dataclass
class Train:
    optimizer: Optimizer = field(default_factory=Optimizer)
    schedule: str = "cosine"
    warmup: int = 25
    batch: int = 32
    steps: int = 300
    eval_every: int = 50


@dataclass
class Config:
    model: Model = field(default_factory=Model)
    data: Data = field(default_factory=Data)
    policy: str = "full"
    train: Train = field(default_factory=Train)
    metrics: list = field(default_factory=lambda: ["loss", "exact_match"])


ConfigStore.instance().store(name="config", node=Config)


@hydra.main(version_base=None, config_name="config")
def main(cfg: Config) -> None:
    print(cfg)


if __name__ == "__main__":
    main()
