"""results.json: the machine-readable record of a suite run (schema: benchmark/schemas/results.schema.json,
documented in docs/results-schema.md), written atomically after every test so that an interrupted or
killed run keeps everything it measured."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

import jsonschema

from .claims import PAPERS, Catalogue
from .context import RunContext
from .environment import environment
from .paths import SCHEMAS_DIR
from .verdict import ClaimOutcome, Verdict

SCHEMA_VERSION = "1.1"
READABLE_VERSIONS = ("1.0", "1.1")      # 1.1 added provenance and drift (both optional)
SCHEMA_PATH = SCHEMAS_DIR / "results.schema.json"


class ResultsError(ValueError):
    """A results.json does not follow the schema; the message gives the JSON path."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate_results(doc: Any) -> None:
    version = doc.get("schema_version") if isinstance(doc, Mapping) else None
    if isinstance(version, str) and version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise ResultsError(f"results.json does not follow schema {SCHEMA_VERSION} at schema_version: {version!r} is "
                           f"another major version (this SinkBench reads {', '.join(READABLE_VERSIONS)})")
    errors = sorted(jsonschema.Draft202012Validator(load_schema()).iter_errors(doc),
                    key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ResultsError(f"results.json does not follow schema {SCHEMA_VERSION} at {where}: {e.message}{more}")


def load_results(path: str | Path) -> dict[str, Any]:
    """Read and validate a results.json (or the results.json inside a report directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"no results.json at {path}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path} is not valid JSON: {exc}") from exc
    validate_results(doc)
    return doc


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; reports are meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dump_json(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=False, allow_nan=False) + "\n"


def summarize(results: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Verdict counts per paper and in total ('all')."""
    summary = {p: {v.value: 0 for v in Verdict} for p in [*PAPERS, "all"]}
    for r in results:
        summary[r["paper"]][r["verdict"]] += 1
        summary["all"][r["verdict"]] += 1
    return summary


def result_entry(*, claim_id: str, paper: str, model: str, nodeid: str, outcome: ClaimOutcome,
                 paper_figure: str | None, duration_s: float, samples_path: str | None) -> dict[str, Any]:
    return {
        "claim": claim_id, "paper": paper, "model": model, "nodeid": nodeid,
        "verdict": outcome.verdict.value, "reason": outcome.reason, "measured": outcome.measured,
        "value": outcome.value, "ci": list(outcome.ci) if outcome.ci else None, "n": outcome.n,
        "paper_figure": paper_figure, "stats": list(outcome.stats), "replication": outcome.replication,
        "samples_path": samples_path, "figures": list(outcome.figures), "duration_s": round(max(duration_s, 0.0), 4),
        "finished": now_iso(),
    }


def _weights_identity(card, ctx: RunContext) -> dict[str, Any] | None:
    """What the run measures for a model: --checkpoint, else the organism's directory, else the hub id. A
    directory (up to 2 GiB) also gets a full content hash: the identity hash samples large files and can miss
    a small edit."""
    from .environment import checkpoint_identity, directory_content_sha256, directory_identity

    if ctx.settings.checkpoint:
        identity = ctx.checkpoint_identity
    elif card.organism:
        path = card.weights_path
        identity = {"kind": "directory", **directory_identity(path)} if path and path.is_dir() else None
    else:
        identity = checkpoint_identity(card.hub_id) if card.hub_id else None
    if identity and identity.get("kind") == "directory":
        identity = {**identity, "content_sha256": directory_content_sha256(identity["path"])}
    return identity


def _prompt_set_identity(card, ctx: RunContext) -> dict[str, Any]:
    """The prompt set a model's claims draw from (each claim takes a stratified sample or a prefix of it,
    decided by N and the seeds, so its hash and the seeds pin every claim's prompts)."""
    from .measurements import prompt_spec
    from .prompts import PromptError, load_prompts

    spec = prompt_spec(card, ctx, 1).rsplit(":", 1)[0]
    try:
        prompts = load_prompts(spec, download=False)
    except PromptError as exc:
        return {"spec": spec, "sha256": None, "count": None, "unavailable": str(exc).split(". ")[0]}
    return {"spec": spec, "sha256": prompts.sha256, "count": len(prompts)}


def provenance(ctx: RunContext, models: Iterable[str]) -> dict[str, Any]:
    """What decides whether two runs are comparable, beyond settings and environment: per model the weights'
    identity, the generation settings and the prompt set (for models that can run in this session)."""
    from .prompts import ORGANISM_PROMPT_SEED
    from .suite import availability

    out: dict[str, Any] = {"seeds": {"base": ctx.settings.seed, "prompt_sample": 0,
                                     "organism_prompts": ORGANISM_PROMPT_SEED}, "models": {}}
    for name in models:
        card = ctx.cards[name]
        entry: dict[str, Any] = {"weights": None, "generation": dict(card.settings), "prompts": None}
        try:
            entry["weights"] = _weights_identity(card, ctx)
            # image and video generators; the language models (paper C) have no diffusion settings or prompt set
            if card.kind in ("t2i", "t2v") and availability(card, ctx) is None:
                entry["generation"] = _generation_settings(card, ctx)
                entry["prompts"] = _prompt_set_identity(card, ctx)
        except Exception as exc:   # provenance must not stop a run; the failure is recorded instead
            entry["error"] = f"{type(exc).__name__}: {exc}"
        out["models"][name] = entry
    return out


def _generation_settings(card, ctx: RunContext) -> dict[str, Any]:
    """The generation settings the model's images are made with (card, checkpoint marker, --steps/--dtype)."""
    from .adapters import resolve_checkpoint
    from .generate import settings_for
    from .measurements import checkpoint_source

    return settings_for(resolve_checkpoint(checkpoint_source(card, ctx)), ctx.generation_overrides()).to_dict()


class RunRecorder:
    """Collects the results of one suite run and keeps reports/<run-id>/ up to date on disk."""

    def __init__(self, ctx: RunContext, report_root: Path, *, command: list[str], models_in_scope: Iterable[str],
                 planned: Iterable[tuple[str, str, str]], deselected: Iterable[tuple[str, str]] = (),
                 run_id: str | None = None):
        self.ctx = ctx
        self.catalogue: Catalogue = ctx.catalogue
        self.report_root = Path(report_root)
        self.run_id = run_id or new_run_id()
        self.run_dir = self.report_root / self.run_id
        self.run_dir.mkdir(parents=True, exist_ok=False)
        ctx.run_dir = self.run_dir
        self.planned = list(planned)                      # (claim, model, nodeid) collected to run
        self.deselected = sorted(set(deselected))
        self.models_in_scope = [m for m in self.catalogue.cards if m in set(models_in_scope)]
        self.results: dict[str, dict[str, Any]] = {}      # nodeid -> result entry
        self.started = now_iso()
        self.environment = environment(ctx.settings.device)
        self.provenance = provenance(ctx, self.models_in_scope)
        self.drift: dict[str, Any] | None = None          # the comparison with --baseline, set before finish()
        self.command = command
        self._t0 = time.monotonic()
        self._write(status="running", exit_status=None, finished=None)
        self._point_latest()

    # -- recording ---------------------------------------------------------------------------
    def record(self, *, claim_id: str, model: str, nodeid: str, outcome: ClaimOutcome, duration_s: float) -> None:
        claim = self.catalogue[claim_id]
        samples_path = None
        if outcome.samples:
            rel = Path("samples") / f"{claim_id}__{model}.json"
            atomic_write_text(self.run_dir / rel, dump_json({k: list(v) for k, v in outcome.samples.items()}))
            samples_path = rel.as_posix()
        self.results[nodeid] = result_entry(
            claim_id=claim_id, paper=claim.paper.key, model=model, nodeid=nodeid, outcome=outcome,
            paper_figure=claim.paper_figure_for(model), duration_s=duration_s, samples_path=samples_path)
        self._write(status="running", exit_status=None, finished=None)

    def finish(self, *, status: str, exit_status: int | None) -> Path:
        """Write the final results.json, REPORT.md and figures; return the REPORT.md path."""
        from .report import write_report

        doc = self._write(status=status, exit_status=exit_status, finished=now_iso())
        path = write_report(doc, self.run_dir)
        self._point_latest()
        return path

    # -- the document --------------------------------------------------------------------------
    def document(self, *, status: str, exit_status: int | None, finished: str | None) -> dict[str, Any]:
        cards = self.catalogue.cards
        ran = {(r["claim"], r["model"]) for r in self.results.values()}
        not_run = [{"claim": c, "model": m, "why": "deselected (-m, -k, --model or --checkpoint)"}
                   for c, m in self.deselected if (c, m) not in ran]
        not_run += [{"claim": c, "model": m, "why": "not run: the session ended before this test ran"}
                    for c, m, nodeid in self.planned if nodeid not in self.results and (c, m) not in ran]
        not_applicable = [{"claim": claim.id, "model": m, "why": claim.gaps(cards[m])}
                          for claim in self.catalogue for m in self.models_in_scope if claim.gaps(cards[m])]
        results = sorted(self.results.values(), key=lambda r: (r["claim"], list(cards).index(r["model"])))
        doc = {
            "schema_version": SCHEMA_VERSION,
            "run": {"id": self.run_id, "started": self.started, "finished": finished, "status": status,
                    "exit_status": exit_status, "command": self.command},
            "environment": self.environment,
            "settings": self.ctx.settings.to_dict(),
            "models": {m: {"title": cards[m].title, "hub_id": cards[m].hub_id, "organism": cards[m].organism,
                           "checkpoint": self.ctx.checkpoint_identity if self.ctx.settings.checkpoint else None}
                       for m in self.models_in_scope},
            "papers": {c.paper.key: {"title": c.paper.title, "authors": c.paper.authors, "file": c.paper.file,
                                     "models": list(c.paper.models), "settings": c.paper.settings}
                       for c in self.catalogue},
            "claims": {c.id: {**c.to_dict(), "criterion": c.criterion} for c in self.catalogue},
            "results": results,
            "not_applicable": not_applicable,
            "not_run": not_run,
            "summary": summarize(results),
            "provenance": self.provenance,
        }
        if self.drift is not None:
            doc["drift"] = self.drift
        return doc

    def _write(self, *, status: str, exit_status: int | None, finished: str | None) -> dict[str, Any]:
        doc = self.document(status=status, exit_status=exit_status, finished=finished)
        atomic_write_text(self.run_dir / "results.json", dump_json(doc))
        return doc

    def _point_latest(self) -> None:
        """reports/latest -> this run (a relative symlink; a copy where symlinks are unavailable)."""
        latest = self.report_root / "latest"
        tmp = self.report_root / f".latest.{os.getpid()}"
        try:
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            tmp.symlink_to(self.run_id, target_is_directory=True)
            if latest.exists() and not latest.is_symlink():
                shutil.rmtree(latest)
            os.replace(tmp, latest)
        except OSError:
            if latest.is_symlink():
                latest.unlink()
            elif latest.exists():
                shutil.rmtree(latest)
            shutil.copytree(self.run_dir, latest)
            print(f"sinkbench: symlinks unavailable; copied the run to {latest}", file=sys.stderr)
