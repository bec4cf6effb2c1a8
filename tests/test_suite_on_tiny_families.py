"""Every claim runs, without ERROR, on each family's tiny pipeline given as --checkpoint (issue 8). Verdicts on
random weights mean nothing; they must still be computed (a claim whose metric weights are not on this machine
is SKIPPED with the how-to after its images were generated)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GENEVAL = REPO.parent / "shared" / "data" / "geneval" / "evaluation_metadata.jsonl"
FAMILIES = ("sd3", "sdxl", "flux", "pixart", "qwen_image", "z_image", "wan", "ltx")


@pytest.mark.parametrize("family", FAMILIES)
def test_claims_run_on_the_tiny_checkpoint(family, tiny_dirs, tmp_path):
    if not GENEVAL.is_file():
        pytest.skip(f"GenEval prompts not at {GENEVAL}")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/", "-q", "-p", "no:cacheprovider", "-m", family,
         "--checkpoint", str(tiny_dirs(family)), "--device", "cpu", "--n-prompts", "2", "--prompts", str(GENEVAL),
         "--report-dir", str(tmp_path / "reports"), "--cache-dir", str(tmp_path / "cache")],
        cwd=REPO, capture_output=True, text=True, timeout=600, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "reports" / "latest" / "results.json").read_text())
    rows = [r for r in doc["results"] if r["model"] == family]
    errors = [f"{r['claim']}: {r['reason']}" for r in rows if r["verdict"] == "ERROR"]
    assert not errors, errors
    measured = [r for r in rows if r["verdict"] in ("REPRODUCED", "CONTRADICTED", "INCONCLUSIVE")]
    assert len(measured) >= 5, [(r["claim"], r["verdict"], r["reason"][:80]) for r in rows]
    # a claim may be skipped only because a metric's weights or a prompt set are not on this machine (the
    # images were generated first); nothing is left unimplemented
    allowed = ("metric unavailable", "prompts unavailable")
    skipped = [r for r in rows if r["verdict"] == "SKIPPED" and not r["reason"].startswith(allowed)]
    assert not skipped, [(r["claim"], r["reason"][:120]) for r in skipped]
