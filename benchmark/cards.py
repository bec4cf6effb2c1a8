"""Model cards: what a model is, where its weights come from, and the architecture traits
that decide which claims apply to it (never decided by try/except at run time)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .paths import CARDS_DIR, REPO_ROOT

# Every trait a card may declare, with the phrase used in "not applicable: <model> <phrase>".
TRAITS: dict[str, str] = {
    "t2i": "is not a text-to-image generator",
    "t2v": "is not a text-to-video generator",
    "dlm": "is not a diffusion language model",
    "arm": "is not an autoregressive language model",
    "diffusion": "is not a diffusion model",
    "lm": "is not a language model",
    "dit": "is not a diffusion transformer",
    "unet": "is not a U-Net with separate self- and cross-attention blocks (attn1/attn2)",
    "joint_attention": "has no joint text-image attention (text tokens are not keys of the image self-attention)",
    "cross_attention": "has no separate cross-attention to the text",
    "rope": "has no rotary position embedding (RoPE)",
    "abspe": "has no absolute position embedding",
    "qk_norm_per_head": "has no per-head QK-norm",
    "qk_norm_across_heads": "has no QK-norm across heads",
    "text_pad_tokens": "has no padded text sequence (EOS/PAD tokens) among its attention keys",
    "learned_pad_tokens": "has no learned pad tokens",
    "cfg": "has no classifier-free guidance branch",
    "guidance_distilled": "is not guidance-distilled",
    "flow_matching": "is not a flow-matching model",
    "bidirectional": "has no bidirectional attention",
    "causal_attention": "has no causal attention",
    "arm_initialized": "was not initialised from an autoregressive model",
    "remote_code": "does not need remote code",
    "natural_images": "generates a procedural shapes domain, not natural images (HPS-v2 and ImageReward are "
                      "human-preference models of natural images)",
}
KINDS = ("t2i", "t2v", "dlm", "arm")


class CardError(ValueError):
    """A model card is malformed or a model name is unknown."""


@dataclass(frozen=True)
class ModelCard:
    name: str
    title: str
    kind: str
    traits: frozenset[str]
    pipeline_class: str
    hub_id: str | None = None
    organism: bool = False
    weights: str | None = None          # organisms: directory relative to the repository root
    settings: Mapping[str, Any] = field(default_factory=dict)
    family: str | None = None           # the adapter family (benchmark.adapters.families) of a real DiT/U-Net
    attention: Mapping[str, Any] = field(default_factory=dict)   # layers (name pattern, kind, block, count), keys
    notes: str = ""
    path: Path | None = None

    @property
    def requires_gpu(self) -> bool:
        """Real checkpoints need a GPU; the organisms run on a CPU."""
        return not self.organism

    @property
    def marker(self) -> str:
        return "organism" if self.organism else self.name

    @property
    def weights_path(self) -> Path | None:
        return REPO_ROOT / self.weights if self.weights else None

    def missing_traits(self, required: list[str] | tuple[str, ...]) -> list[str]:
        return [t for t in required if t not in self.traits]


def _card_from_mapping(data: Mapping[str, Any], path: Path) -> ModelCard:
    where = f"{path}"
    for key in ("name", "title", "kind", "traits", "pipeline_class"):
        if key not in data:
            raise CardError(f"{where}: missing field '{key}'")
    name = data["name"]
    if path.stem != name:
        raise CardError(f"{where}: card name '{name}' must match the file name '{path.stem}'")
    if data["kind"] not in KINDS:
        raise CardError(f"{where}: field 'kind': '{data['kind']}' is not one of {list(KINDS)}")
    unknown = [t for t in data["traits"] if t not in TRAITS]
    if unknown:
        raise CardError(f"{where}: field 'traits': unknown trait(s) {unknown}; known: {sorted(TRAITS)}")
    organism = bool(data.get("organism", False))
    if organism and not data.get("weights"):
        raise CardError(f"{where}: an organism card needs 'weights'")
    if not organism and not data.get("hub_id"):
        raise CardError(f"{where}: a real model card needs 'hub_id'")
    family, attention = data.get("family"), data.get("attention") or {}
    _check_attention(where, family, attention)
    return ModelCard(
        name=name, title=data["title"], kind=data["kind"], traits=frozenset(data["traits"]),
        pipeline_class=data["pipeline_class"], hub_id=data.get("hub_id"), organism=organism,
        weights=data.get("weights"), settings=dict(data.get("settings") or {}),
        family=family, attention=attention, notes=data.get("notes", ""), path=path,
    )


def _check_attention(where: str, family: str | None, attention: Mapping[str, Any]) -> None:
    """A card's family and attention description use the adapters' vocabulary."""
    from .adapters.families import FAMILY_NAMES
    from .adapters.family import LAYER_KINDS
    from .adapters.segmentation import MODALITIES

    if family is not None and family not in FAMILY_NAMES:
        raise CardError(f"{where}: field 'family': {family!r} is not one of {list(FAMILY_NAMES)}")
    if attention and family is None:
        raise CardError(f"{where}: field 'attention' needs 'family'")
    for i, layer in enumerate(attention.get("layers", [])):
        missing = {"name", "kind", "block", "count"} - set(layer)
        if missing:
            raise CardError(f"{where}: field 'attention.layers.{i}': missing {sorted(missing)}")
        if layer["kind"] not in LAYER_KINDS:
            raise CardError(f"{where}: field 'attention.layers.{i}.kind': {layer['kind']!r} is not one of {sorted(LAYER_KINDS)}")
    for kind, order in (attention.get("keys") or {}).items():
        bad = [m for m in order if m not in MODALITIES]
        if kind not in LAYER_KINDS or bad:
            raise CardError(f"{where}: field 'attention.keys.{kind}': kinds are {sorted(LAYER_KINDS)}, "
                            f"modalities {list(MODALITIES)}")


def load_cards(directory: Path = CARDS_DIR) -> dict[str, ModelCard]:
    """All model cards, keyed by name, in a stable order (real models first, then organisms)."""
    cards = {}
    for path in sorted(directory.glob("*.yaml")):
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
        if not isinstance(data, Mapping):
            raise CardError(f"{path}: expected a mapping at the top level")
        card = _card_from_mapping(data, path)
        cards[card.name] = card
    if not cards:
        raise CardError(f"no model cards found in {directory}")
    return dict(sorted(cards.items(), key=lambda kv: (kv[1].organism, kv[0])))


def organism_card_for(directory: str | Path, cards: Mapping[str, ModelCard] | None = None) -> ModelCard | None:
    """The organism card a checkpoint directory belongs to: the card's own weights directory, or a copy or
    fine-tune of it (a training.json written by models/organism/train.py naming the card's arch, the weights
    directory's name, and a model_index.json of the card's pipeline class)."""
    import json

    root = Path(directory)
    if not root.is_dir():
        return None
    organisms = [c for c in (load_cards() if cards is None else cards).values() if c.organism and c.weights_path]
    for card in organisms:
        if card.weights_path.resolve() == root.resolve():
            return card
    try:
        arch = json.loads((root / "training.json").read_text()).get("arch")
        class_name = json.loads((root / "model_index.json").read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError):
        return None
    for card in organisms:
        if arch == card.weights_path.name and class_name == card.pipeline_class:
            return card
    return None


def applicability_gaps(card: ModelCard, requires: list[str], models: list[str] | None) -> list[str]:
    """Why a claim with these requirements does not apply to the card (empty when it applies).
    Each gap is a phrase completing "<model> ...", e.g. "has no rotary position embedding (RoPE)"."""
    if models is not None and card.name not in models:
        return [f"is not {' or '.join(models)}, the model(s) the claim is about"]
    return [TRAITS[t] for t in card.missing_traits(requires)]
