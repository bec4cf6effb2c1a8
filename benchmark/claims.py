"""Claim specifications: one YAML file per paper in benchmark/specs/, validated at load time.

A malformed spec fails loudly with the file, the claim id and the field named, so a typo in a
spec can never turn into a silently skipped (or silently passing) claim.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import jsonschema
import yaml

from .cards import TRAITS, ModelCard, applicability_gaps
from .paths import SPECS_DIR

# Paper key -> (claim id prefix, pytest marker). The marker is the paper key itself.
PAPERS: dict[str, str] = {"causal": "A", "spiral": "B", "dlm": "C"}

# Vocabularies: what a claim needs, and which issue builds it (for "not implemented yet" reasons).
METRICS: dict[str, str] = {
    "clip_t": "metrics (issue 6)", "hps_v2": "metrics (issue 6)", "image_reward": "metrics (issue 6)",
    "lpips": "metrics (issue 6)", "fid": "metrics (issue 6)", "kid": "metrics (issue 6)",
    "vqa_blip2": "metrics (issue 6)", "vqa_judge": "metrics (issue 6)", "aesthetics": "metrics (issue 6)",
    "detector": "the organism's detector (issue 7)",
    "gsm8k": "DLM benchmarks (issue 10)", "humaneval": "DLM benchmarks (issue 10)",
}
MEASUREMENTS: dict[str, str] = {
    "incoming_mass": "attention probes (issue 5)", "max_mass": "attention probes (issue 5)",
    "entropy": "attention probes (issue 5)", "topk_concentration": "attention probes (issue 5)",
    "top1_index": "attention probes (issue 5)", "key_importance": "attention probes (issue 5)",
    "sink_ratio": "attention probes (issue 5)", "token_budget": "attention probes (issue 5)",
    "activations": "attention probes (issue 5)", "key_norms": "attention probes (issue 5)",
    "qk_scores": "attention probes (issue 5)", "rope_band_energy": "attention probes (issue 5)",
    "value_norms": "attention probes (issue 5)", "intervention_mass": "interventions (issue 5)",
    "images": "the seed-paired generation runner (issue 4)",
    "sink_positions": "DLM probes (issue 10)", "accuracy": "DLM benchmarks (issue 10)",
}
INTERVENTIONS: dict[str, str] = {
    "per_head_topk": "interventions (issue 5)", "union_budget": "interventions (issue 5)",
    "score_path": "interventions (issue 5)", "value_path": "interventions (issue 5)",
    "random_control": "interventions (issue 5)", "phase_window": "interventions (issue 5)",
    "sink_side": "interventions (issue 5)", "index0": "interventions (issue 5)",
    "comma_padding": "prompt transforms (issue 4)", "content_swap": "interventions (issue 5)",
    "pe_edit": "interventions (issue 5)", "sampling_sweep": "the generation runner (issue 4)",
    "noop_probe": "attention probes (issue 5)", "dlm_sink_mask": "DLM masking (issue 10)",
}


class SpecError(ValueError):
    """A claim spec file is malformed. The message names the file, the claim id and the field."""


def spec_schema(model_names: Iterable[str]) -> dict[str, Any]:
    """The JSON Schema of a paper's spec file (vocabularies filled in from the code above)."""
    models = sorted(model_names)
    strings = {"type": "array", "items": {"type": "string"}}
    claim = {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "source", "statement", "paper_figures", "criterion", "tolerance", "requires",
                     "metrics", "measurements", "default_n"],
        "properties": {
            "id": {"type": "string", "pattern": "^[ABC][0-9]{2}$"},
            "source": {"type": "string", "minLength": 1},
            "statement": {"type": "string", "minLength": 1},
            "paper_figures": {"type": "object", "propertyNames": {"enum": models + ["all"]},
                              "additionalProperties": {"type": "string", "minLength": 1}},
            "criterion": {"type": "string", "minLength": 1},
            "tolerance": {"type": "object", "additionalProperties": False, "minProperties": 1,
                          "properties": {"abs": {"type": "number", "minimum": 0},
                                         "rel": {"type": "number", "minimum": 0},
                                         "note": {"type": "string"}}},
            "requires": {**strings, "items": {"enum": sorted(TRAITS)}},
            "models": {**strings, "minItems": 1, "items": {"enum": models}},
            "metrics": {**strings, "items": {"enum": sorted(METRICS)}},
            "measurements": {**strings, "items": {"enum": sorted(MEASUREMENTS)}},
            "interventions": {**strings, "items": {"enum": sorted(INTERVENTIONS)}},
            "margins": {"type": "object", "propertyNames": {"enum": sorted(METRICS)},
                        "additionalProperties": {"type": "number", "exclusiveMinimum": 0}},
            "default_n": {"type": "integer", "minimum": 1},
            "paper_n": {"type": ["integer", "null"], "minimum": 1},
            "notes": {"type": "string"},
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "required": ["paper", "claims"],
        "properties": {
            "paper": {
                "type": "object", "additionalProperties": False,
                "required": ["key", "title", "authors", "file", "models", "settings"],
                "properties": {
                    "key": {"enum": sorted(PAPERS)}, "title": {"type": "string"},
                    "authors": {"type": "string"}, "file": {"type": "string"},
                    "arxiv": {"type": "string"}, "models": {**strings, "items": {"enum": models}},
                    "settings": {"type": "string"},
                },
            },
            "claims": {"type": "array", "minItems": 1, "items": claim},
        },
    }


@dataclass(frozen=True)
class Paper:
    key: str
    title: str
    authors: str
    file: str
    models: tuple[str, ...]
    settings: str
    arxiv: str | None = None

    @property
    def prefix(self) -> str:
        return PAPERS[self.key]


@dataclass(frozen=True)
class Claim:
    id: str
    paper: Paper
    source: str
    statement: str
    paper_figures: Mapping[str, str]
    criterion: str
    tolerance: Mapping[str, Any]
    requires: tuple[str, ...]
    metrics: tuple[str, ...]
    measurements: tuple[str, ...]
    default_n: int
    interventions: tuple[str, ...] = ()
    models: tuple[str, ...] | None = None
    margins: Mapping[str, float] = field(default_factory=dict)
    paper_n: int | None = None
    notes: str = ""

    def paper_figure_for(self, model: str) -> str | None:
        """The paper's figure for this model, or the model-independent one, or None."""
        return self.paper_figures.get(model) or self.paper_figures.get("all")

    def gaps(self, card: ModelCard) -> list[str]:
        """Why the claim does not apply to the model (empty when it applies), decided from its card."""
        return applicability_gaps(card, list(self.requires), list(self.models) if self.models else None)

    def applies_to(self, card: ModelCard) -> bool:
        return not self.gaps(card)

    def needs(self) -> list[str]:
        """The components the claim's measurement needs, as named in the vocabularies."""
        return [*self.measurements, *self.interventions, *self.metrics]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "paper": self.paper.key, "source": self.source, "statement": self.statement,
            "paper_figures": dict(self.paper_figures), "criterion": self.criterion,
            "tolerance": dict(self.tolerance), "requires": list(self.requires),
            "models": list(self.models) if self.models else None, "metrics": list(self.metrics),
            "measurements": list(self.measurements), "interventions": list(self.interventions),
            "margins": dict(self.margins), "default_n": self.default_n, "paper_n": self.paper_n,
        }


def _describe(error: jsonschema.ValidationError, data: Any) -> str:
    path = list(error.absolute_path)
    if len(path) >= 2 and path[0] == "claims" and isinstance(path[1], int):
        item = data["claims"][path[1]]
        cid = item.get("id", f"#{path[1] + 1}") if isinstance(item, Mapping) else f"#{path[1] + 1}"
        rest = path[2:]
        if not rest and error.validator == "required":
            return f"claim {cid}: {error.message}"
        if not rest and error.validator == "additionalProperties":
            return f"claim {cid}: {error.message}"
        field_name = ".".join(str(p) for p in rest) or "(claim)"
        return f"claim {cid}: field '{field_name}': {error.message}"
    where = ".".join(str(p) for p in path) or "(top level)"
    return f"field '{where}': {error.message}"


def load_spec_file(path: Path, cards: Mapping[str, ModelCard]) -> list[Claim]:
    """Load and validate one paper's spec file."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    validator = jsonschema.Draft202012Validator(spec_schema(cards))
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise SpecError(f"{path}: " + _describe(errors[0], data)
                        + (f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""))
    p = data["paper"]
    paper = Paper(key=p["key"], title=p["title"], authors=p["authors"], file=p["file"],
                  models=tuple(p["models"]), settings=p["settings"], arxiv=p.get("arxiv"))
    claims = []
    for c in data["claims"]:
        if not c["id"].startswith(paper.prefix):
            raise SpecError(f"{path}: claim {c['id']}: field 'id': claims of paper '{paper.key}' "
                            f"must start with '{paper.prefix}'")
        claims.append(Claim(
            id=c["id"], paper=paper, source=c["source"], statement=c["statement"],
            paper_figures=dict(c["paper_figures"]), criterion=c["criterion"], tolerance=dict(c["tolerance"]),
            requires=tuple(c["requires"]), metrics=tuple(c["metrics"]),
            measurements=tuple(c["measurements"]), interventions=tuple(c.get("interventions", ())),
            models=tuple(c["models"]) if c.get("models") else None, margins=dict(c.get("margins", {})),
            default_n=c["default_n"], paper_n=c.get("paper_n"), notes=c.get("notes", ""),
        ))
    return claims


class Catalogue:
    """All claims of all papers, in id order, with their applicable models."""

    def __init__(self, claims: list[Claim], cards: Mapping[str, ModelCard]):
        seen: dict[str, Claim] = {}
        for claim in claims:
            if claim.id in seen:
                raise SpecError(f"claim {claim.id} is defined twice ({claim.paper.file} and {seen[claim.id].paper.file})")
            seen[claim.id] = claim
        self.claims: dict[str, Claim] = dict(sorted(seen.items()))
        self.cards = dict(cards)

    def __iter__(self):
        return iter(self.claims.values())

    def __len__(self) -> int:
        return len(self.claims)

    def __getitem__(self, claim_id: str) -> Claim:
        try:
            return self.claims[claim_id]
        except KeyError:
            raise KeyError(f"unknown claim id {claim_id!r}") from None

    def for_paper(self, paper: str) -> list[Claim]:
        if paper not in PAPERS:
            raise KeyError(f"unknown paper {paper!r}; known: {sorted(PAPERS)}")
        return [c for c in self if c.paper.key == paper]

    def applicable_models(self, claim: Claim) -> list[ModelCard]:
        return [card for card in self.cards.values() if claim.applies_to(card)]


def load_catalogue(specs_dir: Path = SPECS_DIR, cards: Mapping[str, ModelCard] | None = None) -> Catalogue:
    """Load every paper's spec file (benchmark/specs/*.yaml) against the model cards."""
    from .cards import load_cards

    cards = load_cards() if cards is None else cards
    files = sorted(specs_dir.glob("*.yaml"))
    if not files:
        raise SpecError(f"no claim spec files found in {specs_dir}")
    claims: list[Claim] = []
    for path in files:
        claims.extend(load_spec_file(path, cards))
    return Catalogue(claims, cards)
