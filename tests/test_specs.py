"""The claim catalogue, its schema, and applicability decided from model cards."""
from pathlib import Path

import pytest
import yaml

from benchmark.cards import CardError, load_cards
from benchmark.claims import SpecError, load_catalogue, load_spec_file
from benchmark.paths import CARDS_DIR, SPECS_DIR

ALL_IDS = [f"A{i:02d}" for i in range(1, 32)] + [f"B{i:02d}" for i in range(1, 18)] + [f"C{i:02d}" for i in range(1, 8)]


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def test_catalogue_holds_every_claim_of_the_three_papers(catalogue) -> None:
    assert [c.id for c in catalogue] == ALL_IDS
    assert {c.paper.key for c in catalogue} == {"causal", "spiral", "dlm"}


def test_every_claim_applies_to_some_model(catalogue) -> None:
    for claim in catalogue:
        assert catalogue.applicable_models(claim), claim.id


@pytest.mark.parametrize("claim_id, applies, does_not_apply", [
    ("A15", ["sdxl"], ["sd3", "flux", "organism_abspe"]),             # SDXL attn1/attn2 only
    ("A07", ["sd3", "flux", "organism_rope"], ["sdxl", "pixart"]),    # joint attention only
    ("B09", ["flux", "qwen_image", "organism_rope"], ["sd3", "wan", "ltx"]),   # per-head QK-norm only
    ("B10", ["flux", "wan", "ltx"], ["sd3", "pixart", "organism_abspe"]),      # RoPE only
    ("B14", ["pixart", "sd3", "organism_abspe"], ["flux", "qwen_image"]),      # absolute PE only
    ("C06", ["mmada"], ["llada", "dream", "organism_mdlm"]),
    ("C07", ["llama", "organism_arm"], ["llada", "organism_mdlm"]),
])
def test_applicability_follows_architecture_traits(catalogue, claim_id, applies, does_not_apply) -> None:
    names = {c.name for c in catalogue.applicable_models(catalogue[claim_id])}
    assert set(applies) <= names
    assert not (set(does_not_apply) & names)


def test_not_applicable_reason_names_the_missing_trait(catalogue) -> None:
    cards = catalogue.cards
    assert catalogue["B10"].gaps(cards["sd3"]) == ["has no rotary position embedding (RoPE)"]
    assert catalogue["C06"].gaps(cards["llada"]) == ["is not mmada, the model(s) the claim is about"]


def test_paper_figure_lookup(catalogue) -> None:
    assert "9.5%" in catalogue["A01"].paper_figure_for("sd3")
    assert catalogue["A01"].paper_figure_for("organism_rope") is None
    assert "214" in catalogue["B01"].paper_figure_for("flux")


def _write_variant(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load((SPECS_DIR / "causal.yaml").read_text())
    edit(data)
    path = tmp_path / "causal.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _claim(data, cid):
    return next(c for c in data["claims"] if c["id"] == cid)


@pytest.mark.parametrize("edit, message", [
    (lambda d: _claim(d, "A09").__setitem__("metrics", ["clipt"]), "claim A09: field 'metrics.0': 'clipt' is not one of"),
    (lambda d: _claim(d, "A03").pop("criterion"), "claim A03: 'criterion' is a required property"),
    (lambda d: _claim(d, "A05").__setitem__("default_n", 0), "claim A05: field 'default_n': 0 is less than the minimum of 1"),
    (lambda d: _claim(d, "A06").__setitem__("requires", ["t2i", "ropee"]), "claim A06: field 'requires.1': 'ropee' is not one of"),
    (lambda d: _claim(d, "A01").__setitem__("paper_figures", {"sd4": "x"}), "claim A01: field 'paper_figures': 'sd4' is not one of"),
    (lambda d: _claim(d, "A02").__setitem__("tolerance", {}), "claim A02: field 'tolerance': {} should be non-empty"),
    (lambda d: _claim(d, "A04").__setitem__("colour", "red"), "claim A04: Additional properties are not allowed ('colour' was unexpected)"),
    (lambda d: _claim(d, "A08").__setitem__("id", "B08"), "claim B08: field 'id': claims of paper 'causal' must start with 'A'"),
    (lambda d: d["paper"].pop("title"), "field 'paper': 'title' is a required property"),
])
def test_malformed_spec_is_rejected_with_file_claim_and_field(tmp_path, edit, message) -> None:
    path = _write_variant(tmp_path, edit)
    with pytest.raises(SpecError) as err:
        load_spec_file(path, load_cards())
    assert str(err.value).startswith(str(path))
    assert message in str(err.value)


def test_invalid_yaml_and_duplicate_ids_are_rejected(tmp_path) -> None:
    bad = tmp_path / "causal.yaml"
    bad.write_text("paper: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec_file(bad, load_cards())
    specs = tmp_path / "specs"
    specs.mkdir()
    for path in SPECS_DIR.glob("*.yaml"):
        (specs / path.name).write_text(path.read_text())
    (specs / "copy.yaml").write_text((SPECS_DIR / "dlm.yaml").read_text())
    with pytest.raises(SpecError, match="claim C01 is defined twice"):
        load_catalogue(specs)


def test_cards_are_validated(tmp_path) -> None:
    for path in CARDS_DIR.glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text())
    assert len(load_cards(tmp_path)) == len(load_cards())
    card = yaml.safe_load((tmp_path / "flux.yaml").read_text())
    card["traits"].append("ropey")
    (tmp_path / "flux.yaml").write_text(yaml.safe_dump(card))
    with pytest.raises(CardError, match=r"flux.yaml: field 'traits': unknown trait\(s\) \['ropey'\]"):
        load_cards(tmp_path)
