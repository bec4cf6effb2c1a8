"""REPORT.md and figures from a results document (the report never recomputes anything)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from tabulate import tabulate

from .claims import PAPERS
from .verdict import Verdict

VERDICT_ORDER = [v.value for v in Verdict]
LEGEND = (
    "REPRODUCED: measured, the criterion holds (pytest: passed). "
    "CONTRADICTED: measured, the criterion fails (pytest: failed). "
    "INCONCLUSIVE: measured, but the data cannot decide, e.g. N too small for the equivalence margin (pytest: skipped). "
    "SKIPPED: not measured, with the reason (pytest: skipped). "
    "ERROR: the measurement crashed, a bug rather than a verdict (pytest: failed)."
)
_VERDICT_COLOURS = {"REPRODUCED": "#2e7d32", "CONTRADICTED": "#c62828", "INCONCLUSIVE": "#f9a825",
                    "SKIPPED": "#9e9e9e", "ERROR": "#6a1b9a"}


def cell(text: Any) -> str:
    """A markdown table cell: no pipes or newlines can break the table."""
    if text is None:
        return ""
    return str(text).replace("|", "\\|").replace("\r", " ").replace("\n", " ").strip()


def fmt_num(x: float | None) -> str:
    return "" if x is None else f"{x:.3g}"


def fmt_ci(ci: list[float] | None) -> str:
    return "" if not ci else f"[{fmt_num(ci[0])}, {fmt_num(ci[1])}]"


def _generic_reason(r: Mapping[str, Any], models: Mapping[str, Any]) -> str:
    """The reason with the model's own name and hub id abstracted, so equal reasons can share a row."""
    reason = r["reason"]
    hub = (models.get(r["model"]) or {}).get("hub_id")
    if hub:
        reason = reason.replace(hub, "<hub id>")
    return reason.replace(f"-m {r['model']} ", "-m <model> ").replace(f"organism {r['model']} ", "organism <model> ")


def _claim_rows(claim: Mapping[str, Any], results: list[Mapping[str, Any]], models: Mapping[str, Any],
                paper_models: list[str]) -> list[list[str]]:
    """One row per model, the paper's own models first; consecutive SKIPPED models with the same
    reason and no paper figure share a row."""
    results = sorted(results, key=lambda r: r["model"] not in paper_models)
    groups: list[tuple[list[Mapping[str, Any]], str]] = []
    for r in results:
        mergeable = r["verdict"] == Verdict.SKIPPED.value and not r["paper_figure"]
        key = _generic_reason(r, models) if mergeable else None
        if key is not None and groups and groups[-1][1] == key:
            groups[-1][0].append(r)
        else:
            groups.append(([r], key or ""))
    rows = []
    for i, (members, generic) in enumerate(groups):
        first = members[0]
        reason = first["reason"] if len(members) == 1 else generic
        figures = " ".join(f"[fig]({f})" for m in members for f in m["figures"])
        rows.append([
            claim["id"] if i == 0 else "", claim["statement"] if i == 0 else "",
            ", ".join(m["model"] for m in members), first["paper_figure"],
            first["measured"], fmt_ci(first["ci"]), "" if first["n"] is None else str(first["n"]),
            f"**{first['verdict']}**", (reason + (" " + figures if figures else "")).strip(),
        ])
    return [[cell(c) for c in row] for row in rows]


def compress_ids(ids: Iterable[str]) -> str:
    """'A01, A02, A03, A05' -> 'A01-A03, A05'."""
    ids = sorted(set(ids))
    runs: list[list[str]] = []
    for cid in ids:
        if runs and runs[-1][-1][0] == cid[0] and int(runs[-1][-1][1:]) + 1 == int(cid[1:]):
            runs[-1].append(cid)
        else:
            runs.append([cid])
    return ", ".join(r[0] if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def _short_paper(key: str, papers: Mapping[str, Any]) -> str:
    authors = papers.get(key, {}).get("authors", "")
    first = authors.split(",")[0].split("&")[0].split()
    who = f"{first[-1]} et al." if first else key
    return f"{PAPERS[key]}. {who} ({key})"


def _summary_table(summary: Mapping[str, Mapping[str, int]], papers: Mapping[str, Any]) -> str:
    rows = []
    for key in [*PAPERS, "all"]:
        counts = summary[key]
        label = "all" if key == "all" else _short_paper(key, papers)
        rows.append([label, *(counts[v] for v in VERDICT_ORDER), sum(counts.values())])
    return tabulate(rows, headers=["paper", *VERDICT_ORDER, "total"], tablefmt="github")


def _grouped_claims(pairs: Iterable[tuple[str, str]], claims_per_paper: Mapping[str, int] | None = None) -> str:
    """'A09-A14, A16 (why); B14 (why)' from (claim, why) pairs; a paper none of whose claims apply
    is named once, with its most common reason."""
    pairs = list(pairs)
    parts = []
    if claims_per_paper:
        for prefix, total in claims_per_paper.items():
            mine = [(c, w) for c, w in pairs if c[0] == prefix]
            if total and len(mine) == total:
                whys = [w for _, w in mine]
                parts.append(f"all of paper {prefix} ({max(set(whys), key=whys.count)})")
                pairs = [(c, w) for c, w in pairs if c[0] != prefix]
    by_why: dict[str, list[str]] = {}
    for claim, why in pairs:
        by_why.setdefault(why, []).append(claim)
    parts += [f"{compress_ids(ids)} ({why})" for why, ids in by_why.items()]
    return "; ".join(parts)


def render_markdown(doc: Mapping[str, Any], figures: Iterable[str] = ()) -> str:
    run, env, settings = doc["run"], doc["environment"], doc["settings"]
    models, papers, claims = doc["models"], doc.get("papers", {}), doc["claims"]
    organisms = [m for m, info in models.items() if info["organism"]]
    out = ["# SinkBench claim-verification report", ""]
    out.append(f"Run `{run['id']}`, {run['status']}; started {run['started']}, finished {run['finished'] or '(running)'}.")
    if run["status"] == "interrupted":
        out.append("")
        out.append("**This run was interrupted**: the results below are what was measured before it stopped.")
    out.append("")
    out.append("Models in scope: " + (", ".join(f"`{m}`" for m in models) or "(none)") + ".")
    if organisms:
        out.append("")
        out.append(f"> {', '.join(organisms)}: SinkBench's own trained model organism(s). Their verdicts are real "
                   "verdicts about the organisms, not about the papers' models.")
    out += ["", "## Summary", "", _summary_table(doc["summary"], papers), ""]
    for fig in figures:
        out += [f"![{Path(fig).stem}]({fig})", ""]
    out += [LEGEND, ""]
    if doc.get("drift"):        # pytest --baseline: what changed against the baseline run
        from .compare import render_markdown as render_drift

        out += [render_drift(doc["drift"], level=2)]
    results_by_claim: dict[str, list[Mapping[str, Any]]] = {}
    for r in doc["results"]:
        results_by_claim.setdefault(r["claim"], []).append(r)
    for key, prefix in PAPERS.items():
        info = papers.get(key, {})
        out += [f"## {prefix}. {info.get('authors', key)}: {info.get('title', '')}".rstrip(": "), ""]
        if info.get("settings"):
            out += [f"Paper settings: {info['settings']}", ""]
        rows = []
        for cid, claim in claims.items():
            if claim["paper"] == key and cid in results_by_claim:
                rows += _claim_rows(claim, results_by_claim[cid], models, info.get("models", []))
        if rows:
            out.append(tabulate(rows, headers=["claim", "statement", "model", "paper figure", "measured", "CI", "N",
                                               "verdict", "reason"], tablefmt="github"))
        else:
            out.append("No claim of this paper ran in this session.")
        out.append("")
        shown = [(r["claim"], r["model"], f) for cid, claim in claims.items() if claim["paper"] == key
                 for r in results_by_claim.get(cid, []) for f in r.get("figures", [])]
        if shown:        # inline, where people would rather look than read the tables
            out += [f"### Figures ({prefix})", ""]
            for cid, model, fig in shown:
                out += [f"**{cid}, {model}**", "", f"![{cid} {model}]({fig})", ""]
    if doc["not_applicable"]:
        out += ["## Not applicable", "", "Decided from the model cards (models/cards/), never at run time.", ""]
        by_model: dict[str, list[tuple[str, str]]] = {}
        for na in doc["not_applicable"]:
            by_model.setdefault(na["model"], []).append((na["claim"], "; ".join(na["why"])))
        per_paper = {PAPERS[k]: sum(1 for c in claims.values() if c["paper"] == k) for k in PAPERS}
        for model, pairs in by_model.items():
            out.append(f"- **{model}**: {_grouped_claims(pairs, per_paper)}")
        out.append("")
    if doc["not_run"]:
        out += ["## Not run in this session", ""]
        by_model = {}
        for nr in doc["not_run"]:
            by_model.setdefault(nr["model"], []).append((nr["claim"], nr["why"]))
        for model, pairs in by_model.items():
            out.append(f"- **{model}**: {_grouped_claims(pairs)}")
        out.append("")
    out += ["## Environment", ""]
    git = env.get("git", {})
    device = env.get("device", {})
    dev = device.get("gpus") and ", ".join(device["gpus"]) or f"CPU ({device.get('cpu', '')}, {device.get('cpu_count')} cores)"
    env_rows = [
        ["python", env.get("python")], ["platform", env.get("platform")], ["device", dev],
        ["git commit", f"{git.get('commit') or 'unknown'}{' (uncommitted changes)' if git.get('dirty') else ''}"],
        ["packages", ", ".join(f"{k} {v}" for k, v in env.get("packages", {}).items() if v)],
        ["command", " ".join(run.get("command", []))],
    ]
    for m, info in models.items():
        if info.get("checkpoint"):
            ck = info["checkpoint"]
            ident = ck.get("identity_sha256") or ck.get("revision") or "revision unknown"
            env_rows.append([f"checkpoint ({m})", f"{ck.get('path') or ck.get('hub_id')} [{ident}]"])
    for m, prov in ((doc.get("provenance") or {}).get("models") or {}).items():
        from .compare import weights_id

        prompts = prov.get("prompts") or {}
        parts = [f"weights {weights_id(prov.get('weights')) or 'unknown'}"]
        if prompts:
            parts.append(f"prompts {prompts['spec']} ({prompts['count']}, sha256 {(prompts['sha256'] or 'unknown')[:12]})")
        env_rows.append([f"provenance ({m})", ", ".join(parts)])
    out.append(tabulate([[cell(a), cell(b)] for a, b in env_rows], headers=["", ""], tablefmt="github"))
    out += ["", "## Settings", ""]
    out.append(tabulate([[k, cell("default" if v is None else v)] for k, v in settings.items()],
                        headers=["setting", "value"], tablefmt="github"))
    out += ["", "Per-sample numbers behind each verdict: `samples/` (paths in results.json, field `samples_path`).", ""]
    return "\n".join(out)


def verdict_figure(doc: Mapping[str, Any], path: Path) -> bool:
    """Stacked bars of verdict counts per paper. False when matplotlib is unavailable."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    papers = list(PAPERS)
    fig, ax = plt.subplots(figsize=(6, 2.6))
    left = [0] * len(papers)
    for verdict in VERDICT_ORDER:
        counts = [doc["summary"][p][verdict] for p in papers]
        ax.barh([f"{PAPERS[p]} ({p})" for p in papers], counts, left=left, color=_VERDICT_COLOURS[verdict], label=verdict)
        left = [a + b for a, b in zip(left, counts)]
    ax.set_xlabel("(claim, model) tests")
    ax.invert_yaxis()
    ax.legend(ncol=3, fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(doc: Mapping[str, Any], run_dir: Path) -> Path:
    """Write figures/ and REPORT.md into run_dir; return the REPORT.md path."""
    from .results import atomic_write_text

    figures = []
    if verdict_figure(doc, run_dir / "figures" / "verdicts.png"):
        figures.append("figures/verdicts.png")
    path = run_dir / "REPORT.md"
    atomic_write_text(path, render_markdown(doc, figures))
    return path
