"""results.json schema and REPORT.md rendering (golden file)."""
import copy
import re
import json
import os
import shutil
from pathlib import Path

import pytest

from benchmark.cli import main as cli_main
from benchmark.report import cell, compress_ids, render_markdown
from benchmark.results import ResultsError, load_results, summarize, validate_results

DATA = Path(__file__).parent / "data" / "results_example.json"
GOLDEN = Path(__file__).parent / "golden" / "REPORT_example.md"


@pytest.fixture
def doc() -> dict:
    return json.loads(DATA.read_text())


def test_example_follows_the_schema(doc) -> None:
    validate_results(doc)
    assert load_results(DATA) == doc


@pytest.mark.parametrize("break_it, where", [
    (lambda d: d["results"][0].__setitem__("verdict", "PASSED"), "results/0/verdict"),
    (lambda d: d["results"][0].pop("reason"), "results/0"),
    (lambda d: d["results"][0].__setitem__("ci", [0.1]), "results/0/ci"),
    (lambda d: d.__setitem__("schema_version", "0.9"), "schema_version"),
    (lambda d: d["run"].__setitem__("status", "done"), "run/status"),
    (lambda d: d.__setitem__("extra", 1), "(top level)"),
])
def test_schema_rejects_broken_documents(doc, break_it, where) -> None:
    broken = copy.deepcopy(doc)
    break_it(broken)
    with pytest.raises(ResultsError, match=re.escape(f"at {where}")):
        validate_results(broken)


def test_summary_counts_match_results(doc) -> None:
    assert summarize(doc["results"]) == doc["summary"]


def test_report_matches_golden_file(doc) -> None:
    text = render_markdown(doc, ["figures/verdicts.png"])
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_report_content(doc) -> None:
    text = render_markdown(doc)
    assert text.startswith("# SinkBench claim-verification report")
    summary_at, spiral_at, env_at = (text.index(h) for h in ("## Summary", "## B. ", "## Environment"))
    assert summary_at < spiral_at < env_at
    # the paper's figure is shown against the paper's own model, with the measured figure and CI
    b05 = next(line for line in text.splitlines() if line.startswith("| B05"))
    assert "| flux " in b05 and "deep/shallow ratio 3.1" in b05 and "[2, 4]" in b05 and "**REPRODUCED**" in b05
    assert "organism_rope: SinkBench's own trained model organism(s)" in text
    assert "0123456789abcdef0123456789abcdef01234567" in text


def test_cli_report_rerenders_from_results(tmp_path, doc) -> None:
    shutil.copy(DATA, tmp_path / "results.json")
    assert cli_main(["report", str(tmp_path)]) == 0
    assert (tmp_path / "REPORT.md").read_text() == GOLDEN.read_text()
    assert (tmp_path / "figures" / "verdicts.png").stat().st_size > 1000
    (tmp_path / "results.json").write_text("{}")
    assert cli_main(["report", str(tmp_path / "results.json")]) == 2


def test_cells_cannot_break_tables() -> None:
    assert cell("a|b\nc") == "a\\|b c"
    assert cell(None) == ""


def test_compress_ids() -> None:
    assert compress_ids(["A03", "A01", "A02", "A05", "B06", "B07"]) == "A01-A03, A05, B06-B07"
    assert compress_ids([]) == ""
