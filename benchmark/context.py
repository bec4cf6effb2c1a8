"""The settings of one suite run and the context a claim test receives."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .cards import ModelCard
from .claims import Catalogue

DTYPES = ("fp32", "fp16", "bf16")


class SettingsError(ValueError):
    """A command-line setting is invalid; the message says which and why."""


def _check_prompt_spec(spec: str) -> None:
    """--prompts takes the forms of prompts.load_prompts: geneval, geneval:N, organism, organism:N, FILE, FILE:N."""
    import re

    text = spec.strip()
    if re.fullmatch(r"(geneval|organism)(:[1-9][0-9]*)?", text, flags=re.IGNORECASE):
        return
    match = re.fullmatch(r"(.+):([1-9][0-9]*)", text)
    path = Path(match.group(1) if match and not Path(text).exists() else text).expanduser()
    if not path.exists():
        raise SettingsError(f"--prompts {spec!r}: no such file (forms: geneval, geneval:N, FILE, FILE:N)")


@dataclass(frozen=True)
class RunSettings:
    """Everything on the command line that can change a measurement (recorded in the report)."""

    gpu: bool = False
    models: tuple[str, ...] | None = None       # --model, None = every applicable model
    checkpoint: str | None = None                # --checkpoint PATH_OR_HUB_ID
    n_prompts: int | None = None                 # None = each claim's default N
    prompts: str | None = None                   # --prompts geneval | geneval:N | FILE | FILE:N
    steps: int | None = None                     # None = the model card's steps
    seed: int = 0
    dtype: str | None = None                     # None = the model card's dtype
    device: str = "auto"
    cache_dir: str = ".cache/sinkbench"
    report_dir: str = "reports"
    paper_settings: bool = False
    strict_verdicts: bool = False
    trust_remote_code: bool = False              # --trust-remote-code: run checkpoints' own modeling code
    allow_code_execution: bool = False           # --allow-code-execution: run model-written code (HumanEval)

    def __post_init__(self) -> None:
        if self.n_prompts is not None and self.n_prompts < 1:
            raise SettingsError(f"--n-prompts must be >= 1, got {self.n_prompts}")
        if self.steps is not None and self.steps < 1:
            raise SettingsError(f"--steps must be >= 1, got {self.steps}")
        if self.seed < 0:
            raise SettingsError(f"--seed must be >= 0, got {self.seed}")
        if self.dtype is not None and self.dtype not in DTYPES:
            raise SettingsError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise SettingsError(f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.prompts is not None:
            _check_prompt_spec(self.prompts)
        if self.paper_settings and (self.steps is not None or self.n_prompts is not None):
            raise SettingsError("--paper-settings uses each paper's steps and N: drop --steps / --n-prompts")

    @property
    def runs_real_models(self) -> bool:
        """Real-checkpoint tests run with --gpu, or on the CPU when asked for explicitly (tiny checkpoints)."""
        return self.gpu or self.device == "cpu"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["models"] = list(self.models) if self.models else None
        return d


@dataclass
class RunContext:
    """What a claim test gets: the settings, the catalogue and where to put things."""

    settings: RunSettings
    catalogue: Catalogue
    run_dir: Path | None = None
    checkpoint_identity: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cards(self) -> dict[str, ModelCard]:
        return self.catalogue.cards

    @property
    def device(self) -> str:
        """Where models run: CUDA with --gpu, else --device (auto = the CPU)."""
        return "cuda" if self.settings.gpu else ("cpu" if self.settings.device == "auto" else self.settings.device)

    def generation_overrides(self, **more: Any) -> dict[str, Any]:
        """--steps / --dtype (when given) over the model card's settings, plus `more` (None values dropped)."""
        base = {k: v for k, v in (("steps", self.settings.steps), ("dtype", self.settings.dtype)) if v is not None}
        base.update({k: v for k, v in more.items() if v is not None})
        return base

    def n_for(self, claim_default_n: int, paper_n: int | None) -> int:
        """The number of prompts a claim uses in this run."""
        if self.settings.paper_settings and paper_n:
            return paper_n
        return self.settings.n_prompts or claim_default_n

    def describe(self) -> str:
        return json.dumps(self.settings.to_dict(), sort_keys=True)
