"""Drift between two suite runs: what changed on a new checkpoint relative to a baseline run one trusts.

Pure functions over loaded results documents (benchmark.results.load_results), used by `sinkbench compare`
and by the plugin's `--baseline` gate:

    drift = compare(baseline_doc, new_doc)      # a JSON-ready dict (DRIFT_VERSION)
    render_markdown(drift)                      # the drift report
    exit_code(drift)                            # 0 ok, 1 regression, 3 not comparable (2: bad input, by callers)

Rules (docs/CHECKPOINT_CI.md):
- models pair up by an explicit mapping, else when each run has exactly one model, else by equal name;
- a verdict change has a kind (TRANSITIONS); `fail_on` names the kinds that fail the gate;
- a measured figure moved when |new - baseline| > max(abs, rel * |baseline|), the tolerance coming from a
  per-claim override, a global override, the claim spec's `tolerance` (abs/rel), or DEFAULT_TOLERANCE;
- two runs are not comparable when a setting that changes measurements, a model's generation settings, its
  prompt set or the seeds differ; library, code and device differences are warnings.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

DRIFT_VERSION = 1

EXIT_OK, EXIT_REGRESSION, EXIT_USAGE, EXIT_INCOMPARABLE = 0, 1, 2, 3

# Verdicts on the axis "the claim holds": REPRODUCED > INCONCLUSIVE > CONTRADICTED. ERROR (a crash) and
# SKIPPED (not measured) are off the axis.
_RANK = {"REPRODUCED": 2, "INCONCLUSIVE": 1, "CONTRADICTED": 0}

# Kinds of verdict change, most severe first (the order of the report).
KINDS = ("regression", "new_error", "weakened", "not_measured", "improved", "newly_measured")
KIND_TEXT = {
    "regression": "regression", "new_error": "new error", "weakened": "weakened",
    "not_measured": "not measured", "improved": "improved", "newly_measured": "newly measured",
}
FAIL_ON = {
    "regression": ("regression", "new_error"),
    "worse": ("regression", "new_error", "weakened", "not_measured"),
    "any": KINDS,              # and any measured figure beyond its tolerance
}

# Settings (results.json `settings`) that change what is measured; a difference makes runs not comparable.
MEASUREMENT_SETTINGS = ("n_prompts", "steps", "seed", "dtype", "paper_settings")
# Settings that say where files go or which tests run, not what a test measures.
IGNORED_SETTINGS = ("models", "checkpoint", "cache_dir", "report_dir", "strict_verdicts", "gpu", "device",
                    "trust_remote_code", "allow_code_execution")
# Claim spec fields whose change can change a verdict (statement and source are text).
SPEC_FIELDS = ("criterion", "tolerance", "margins", "default_n", "paper_n", "metrics", "measurements",
               "interventions", "requires", "models")
# For claims whose spec gives no numeric tolerance (qualitative claims).
DEFAULT_TOLERANCE = {"rel": 0.25}


class CompareError(ValueError):
    """The two runs cannot be compared as asked (e.g. an explicit model pair names an unknown model)."""


# -- verdict transitions ---------------------------------------------------------------------------------

def transition_kind(before: str, after: str) -> str | None:
    """The kind of a verdict change (None when the verdict did not change)."""
    if before == after:
        return None
    if after == "ERROR":
        return "regression" if before == "REPRODUCED" else "new_error"
    if after == "SKIPPED":
        return "not_measured"
    if before == "SKIPPED":
        return "newly_measured"
    if before == "ERROR":
        return "improved"
    if before == "REPRODUCED" and after == "CONTRADICTED":
        return "regression"
    return "improved" if _RANK[after] > _RANK[before] else "weakened"


# -- tolerances --------------------------------------------------------------------------------------------

def parse_tolerance(text: str) -> dict[str, float]:
    """'abs:0.01', 'rel:0.1' or 'abs:0.01,rel:0.1' -> {'abs': 0.01, 'rel': 0.1}."""
    out: dict[str, float] = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition(":")
        if not sep or key not in ("abs", "rel"):
            raise CompareError(f"tolerance {text!r}: expected abs:X, rel:Y or abs:X,rel:Y")
        try:
            number = float(value)
        except ValueError:
            raise CompareError(f"tolerance {text!r}: {value!r} is not a number") from None
        if not math.isfinite(number) or number < 0:
            raise CompareError(f"tolerance {text!r}: needs a finite number >= 0")
        out[key] = number
    return out


def tolerance_for(claim_id: str, spec: Mapping[str, Any] | None,
                  overrides: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, Any]:
    """{'abs', 'rel', 'source'} for a claim: overrides[claim_id], then overrides['*'], then the spec's
    numeric tolerance, then DEFAULT_TOLERANCE."""
    overrides = overrides or {}
    for key, source in ((claim_id, "flag (claim)"), ("*", "flag")):
        if key in overrides:
            return {"abs": overrides[key].get("abs"), "rel": overrides[key].get("rel"), "source": source}
    tol = (spec or {}).get("tolerance") or {}
    if tol.get("abs") is not None or tol.get("rel") is not None:
        return {"abs": tol.get("abs"), "rel": tol.get("rel"), "source": "spec"}
    return {"abs": DEFAULT_TOLERANCE.get("abs"), "rel": DEFAULT_TOLERANCE.get("rel"), "source": "default"}


def _limit(tol: Mapping[str, Any], baseline: float) -> float:
    return max(tol.get("abs") or 0.0, (tol.get("rel") or 0.0) * abs(baseline))


# -- comparability -------------------------------------------------------------------------------------------

def _device_type(settings: Mapping[str, Any]) -> str:
    if settings.get("gpu"):
        return "cuda"
    device = str(settings.get("device") or "auto")
    return "cpu" if device == "auto" else device.split(":")[0]


def _item(what: str, baseline: Any, new: Any, why: str = "") -> dict[str, Any]:
    return {"what": what, "baseline": baseline, "new": new, **({"why": why} if why else {})}


def settings_differences(baseline: Mapping[str, Any], new: Mapping[str, Any], *,
                         prompt_sets_checked: bool = False) -> tuple[list[dict], list[dict]]:
    """(incomparable, warnings) between two runs' `settings`. The --prompts spec is compared by its string
    unless the prompt sets' hashes are compared elsewhere (`prompt_sets_checked`): a path may differ
    between machines for the same file."""
    incomparable, warnings = [], []
    for key in sorted(set(baseline) | set(new)):
        b, n = baseline.get(key), new.get(key)
        if b == n or key in IGNORED_SETTINGS:
            continue
        if key in MEASUREMENT_SETTINGS:
            incomparable.append(_item(f"settings.{key}", b, n, "changes what is measured"))
        elif key == "prompts":
            if not prompt_sets_checked:
                incomparable.append(_item("settings.prompts", b, n, "a different prompt set"))
        else:
            warnings.append(_item(f"settings.{key}", b, n, "a setting this comparison does not know"))
    if _device_type(baseline) != _device_type(new):
        warnings.append(_item("device", _device_type(baseline), _device_type(new),
                              "numerics differ between devices in the last bits"))
    return incomparable, warnings


def _environment_warnings(baseline: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict]:
    warnings = []
    b_pk, n_pk = baseline.get("packages") or {}, new.get("packages") or {}
    for name in sorted(set(b_pk) | set(n_pk)):
        if b_pk.get(name) != n_pk.get(name):
            warnings.append(_item(f"packages.{name}", b_pk.get(name), n_pk.get(name), "library version"))
    if baseline.get("python") != new.get("python"):
        warnings.append(_item("python", baseline.get("python"), new.get("python"), "Python version"))
    b_git, n_git = baseline.get("git") or {}, new.get("git") or {}
    if b_git.get("commit") != n_git.get("commit"):
        warnings.append(_item("git.commit", b_git.get("commit"), n_git.get("commit"),
                              "SinkBench's code differs: criteria may have changed"))
    if b_git.get("dirty") or n_git.get("dirty"):
        warnings.append(_item("git.dirty", b_git.get("dirty"), n_git.get("dirty"),
                              "uncommitted changes to SinkBench: the commit does not pin the code of that run"))
    b_gpus, n_gpus = (baseline.get("device") or {}).get("gpus"), (new.get("device") or {}).get("gpus")
    if b_gpus != n_gpus and (b_gpus or n_gpus):
        warnings.append(_item("device.gpus", b_gpus, n_gpus, "GPU model"))
    return warnings


def weights_id(identity: Mapping[str, Any] | None) -> str | None:
    """A short printable identity of a model's weights."""
    if not identity:
        return None
    if identity.get("content_sha256"):
        return identity["content_sha256"][:12]
    if identity.get("identity_sha256"):
        return identity["identity_sha256"][:12]
    if identity.get("kind") == "hub":
        rev = identity.get("revision")
        return f"{identity.get('hub_id')}@{rev[:12] if rev else 'unknown revision'}"
    return None


def _provenance_check(baseline: Mapping[str, Any], new: Mapping[str, Any],
                      pairs: Sequence[Mapping[str, str]]) -> tuple[list[dict], list[dict], bool]:
    """(incomparable, warnings, prompt sets compared) from the runs' provenance (results.json 1.1)."""
    b_prov, n_prov = baseline.get("provenance"), new.get("provenance")
    if not b_prov or not n_prov:
        old = " and ".join(side for side, p in (("baseline", b_prov), ("new", n_prov)) if not p)
        runs = "runs predate" if " and " in old else "run predates"
        return [], [_item("provenance", bool(b_prov), bool(n_prov),
                          f"the {old} {runs} results.json 1.1: weights, generation settings and prompt sets "
                          "cannot be checked")], False
    incomparable, warnings = [], []
    if b_prov.get("seeds") != n_prov.get("seeds"):
        incomparable.append(_item("seeds", b_prov.get("seeds"), n_prov.get("seeds"), "different seeds"))
    checked = bool(pairs)
    for pair in pairs:
        b = (b_prov.get("models") or {}).get(pair["baseline"]) or {}
        n = (n_prov.get("models") or {}).get(pair["new"]) or {}
        label = _pair_label(pair)
        if b.get("generation") != n.get("generation"):
            bg, ng = b.get("generation") or {}, n.get("generation") or {}
            for key in sorted(set(bg) | set(ng)):
                if bg.get(key) != ng.get(key):
                    incomparable.append(_item(f"generation.{key} ({label})", bg.get(key), ng.get(key),
                                              "generation settings"))
        bp, np_ = b.get("prompts") or {}, n.get("prompts") or {}
        if bp.get("sha256") and np_.get("sha256"):
            if bp["sha256"] != np_["sha256"]:
                incomparable.append(_item(f"prompts ({label})", f"{bp.get('spec')} {bp['sha256'][:12]}",
                                          f"{np_.get('spec')} {np_['sha256'][:12]}", "a different prompt set"))
        elif bp or np_:
            checked = False
            if bp.get("spec") != np_.get("spec"):
                incomparable.append(_item(f"prompts ({label})", bp.get("spec"), np_.get("spec"),
                                          "a different prompt set"))
            else:
                warnings.append(_item(f"prompts ({label})", bp.get("sha256"), np_.get("sha256"),
                                      "the prompt set's hash is unknown on one side"))
    return incomparable, warnings, checked


def _spec_changes(baseline: Mapping[str, Any], new: Mapping[str, Any], claim_ids: Iterable[str]) -> list[dict]:
    out = []
    for cid in sorted(set(claim_ids)):
        b, n = baseline["claims"].get(cid), new["claims"].get(cid)
        if b is None or n is None:
            continue
        fields = [f for f in SPEC_FIELDS if b.get(f) != n.get(f)]
        if fields:
            out.append({"claim": cid, "fields": fields})
    return out


# -- pairing ----------------------------------------------------------------------------------------------

def _measured_models(doc: Mapping[str, Any]) -> list[str]:
    """Models with at least one result, in the document's model order."""
    with_results = {r["model"] for r in doc["results"]}
    ordered = [m for m in doc["models"] if m in with_results]
    return ordered + sorted(with_results - set(ordered))


def pair_models(baseline: Sequence[str], new: Sequence[str],
                explicit: Mapping[str, str] | None = None) -> tuple[list[dict], list[str], list[str]]:
    """([{baseline, new, rule}], unpaired baseline models, unpaired new models)."""
    if explicit:
        for b, n in explicit.items():
            if b not in baseline:
                raise CompareError(f"--pair {b}={n}: the baseline has no results for {b} (it has: {', '.join(baseline)})")
            if n not in new:
                raise CompareError(f"--pair {b}={n}: the new run has no results for {n} (it has: {', '.join(new)})")
        pairs = [{"baseline": b, "new": n, "rule": "explicit (--pair)"} for b, n in explicit.items()]
    elif len(baseline) == 1 and len(new) == 1:
        pairs = [{"baseline": baseline[0], "new": new[0],
                  "rule": "same name" if baseline[0] == new[0] else "one model on each side"}]
    else:
        pairs = [{"baseline": m, "new": m, "rule": "same name"} for m in baseline if m in new]
    used_b, used_n = {p["baseline"] for p in pairs}, {p["new"] for p in pairs}
    return pairs, [m for m in baseline if m not in used_b], [m for m in new if m not in used_n]


def _pair_label(pair: Mapping[str, str]) -> str:
    return pair["new"] if pair["baseline"] == pair["new"] else f"{pair['baseline']} -> {pair['new']}"


# -- the comparison ------------------------------------------------------------------------------------------

def _side(doc: Mapping[str, Any], label: str) -> dict[str, Any]:
    prov = (doc.get("provenance") or {}).get("models") or {}
    models = {}
    for m in _measured_models(doc):
        identity = (prov.get(m) or {}).get("weights") or (doc["models"].get(m) or {}).get("checkpoint")
        models[m] = {"weights": weights_id(identity),
                     "checkpoint": ((doc["models"].get(m) or {}).get("checkpoint") or {}).get("path")
                     or ((doc["models"].get(m) or {}).get("checkpoint") or {}).get("hub_id")}
    return {"label": label, "run_id": doc["run"]["id"], "status": doc["run"]["status"],
            "schema_version": doc["schema_version"], "git_commit": (doc["environment"].get("git") or {}).get("commit"),
            "models": models}


def _content_hashed(doc: Mapping[str, Any], model: str) -> bool:
    prov = ((doc.get("provenance") or {}).get("models") or {}).get(model) or {}
    return bool((prov.get("weights") or {}).get("content_sha256"))


def _brief(r: Mapping[str, Any]) -> dict[str, Any]:
    return {"verdict": r["verdict"], "measured": r["measured"], "value": r["value"], "ci": r["ci"], "n": r["n"],
            "reason": r["reason"]}


def compare(baseline: Mapping[str, Any], new: Mapping[str, Any], *, baseline_label: str = "baseline",
            new_label: str = "new", pairs: Mapping[str, str] | None = None,
            tolerances: Mapping[str, Mapping[str, float]] | None = None, fail_on: str = "regression") -> dict[str, Any]:
    """The drift from `baseline` to `new` (two validated results.json documents).

    pairs: explicit model mapping baseline -> new; tolerances: {'*': {...}, claim_id: {...}} overriding the
    claim specs; fail_on: a key of FAIL_ON."""
    if fail_on not in FAIL_ON:
        raise CompareError(f"fail_on {fail_on!r}: one of {', '.join(FAIL_ON)}")
    model_pairs, unpaired_b, unpaired_n = pair_models(_measured_models(baseline), _measured_models(new), pairs)

    incomparable, warnings, prompts_checked = _provenance_check(baseline, new, model_pairs)
    inc, warn = settings_differences(baseline["settings"], new["settings"], prompt_sets_checked=prompts_checked)
    incomparable = inc + incomparable
    warnings = warn + warnings + _environment_warnings(baseline["environment"], new["environment"])
    for side, doc in (("baseline", baseline), ("new", new)):
        if doc["run"]["status"] != "complete":
            warnings.append(_item(f"run.status ({side})", baseline["run"]["status"], new["run"]["status"],
                                  f"the {side} run did not complete: its results may be partial"))
    b_side, n_side = _side(baseline, baseline_label), _side(new, new_label)
    notes = []
    for pair in model_pairs:
        b_w, n_w = b_side["models"][pair["baseline"]]["weights"], n_side["models"][pair["new"]]["weights"]
        if b_w and b_w == n_w:
            full = all(_content_hashed(doc, m) for doc, m in ((baseline, pair["baseline"]), (new, pair["new"])))
            why = ("the same weights on both sides (content hash): any change comes from code, settings or "
                   "environment" if full else "the same identity hash on both sides (it samples large files: "
                   "a small edit of the weights may keep it)")
            notes.append(_item(f"weights ({_pair_label(pair)})", b_w, n_w, why))

    b_res = {(r["claim"], r["model"]): r for r in baseline["results"]}
    n_res = {(r["claim"], r["model"]): r for r in new["results"]}
    changes, figures, skip_reasons = [], [], []
    only_b, only_n = [], []
    compared = unchanged = 0
    for pair in model_pairs:
        label = _pair_label(pair)
        b_claims = {c for c, m in b_res if m == pair["baseline"]}
        n_claims = {c for c, m in n_res if m == pair["new"]}
        only_b += [{"claim": c, "model": label, "verdict": b_res[(c, pair["baseline"])]["verdict"]}
                   for c in sorted(b_claims - n_claims)]
        only_n += [{"claim": c, "model": label, "verdict": n_res[(c, pair["new"])]["verdict"]}
                   for c in sorted(n_claims - b_claims)]
        for cid in sorted(b_claims & n_claims):
            b, n = b_res[(cid, pair["baseline"])], n_res[(cid, pair["new"])]
            compared += 1
            kind = transition_kind(b["verdict"], n["verdict"])
            if kind:
                changes.append({"claim": cid, "model": label, "kind": kind,
                                "from": b["verdict"], "to": n["verdict"], "baseline": _brief(b), "new": _brief(n)})
            if n["verdict"] == "SKIPPED" and (b["verdict"] != "SKIPPED" or b["reason"] != n["reason"]):
                skip_reasons.append({"claim": cid, "model": label, "reason": n["reason"],
                                     "baseline_verdict": b["verdict"],
                                     "baseline_reason": b["reason"] if b["verdict"] == "SKIPPED" else None})
            moved = _figure_drift(cid, label, b, n, new["claims"].get(cid) or baseline["claims"].get(cid), tolerances)
            if moved:
                figures.append(moved)
            if not kind and not moved:
                unchanged += 1

    changes.sort(key=lambda c: (KINDS.index(c["kind"]), c["to"] != "CONTRADICTED", c["claim"], c["model"]))
    counts = {k: sum(c["kind"] == k for c in changes) for k in KINDS}
    counts |= {"figures_beyond_tolerance": len(figures), "unchanged": unchanged, "compared": compared}
    gating = FAIL_ON[fail_on]
    failing = [f"{c['claim']}[{c['model']}]: {c['from']} -> {c['to']}" for c in changes if c["kind"] in gating]
    if fail_on == "any":
        failing += [f"{f['claim']}[{f['model']}]: {fmt(f['baseline'])} -> {fmt(f['new'])} (beyond tolerance)"
                    for f in figures]
    return {
        "drift_version": DRIFT_VERSION,
        "baseline": b_side,
        "new": n_side,
        "pairs": model_pairs,
        "unpaired": {"baseline": unpaired_b, "new": unpaired_n},
        "comparable": not incomparable,
        "incomparable": incomparable,
        "warnings": warnings,
        "notes": notes,
        "verdict_changes": changes,
        "figure_drift": figures,
        "new_skip_reasons": skip_reasons,
        "spec_changes": _spec_changes(baseline, new, {c for c, _ in b_res} & {c for c, _ in n_res}),
        "coverage": {"only_baseline": only_b, "only_new": only_n},
        "counts": counts,
        "gate": {"fail_on": fail_on, "failed": bool(failing), "failing": failing},
    }


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _figure_drift(cid: str, label: str, b: Mapping[str, Any], n: Mapping[str, Any],
                  spec: Mapping[str, Any] | None, tolerances) -> dict[str, Any] | None:
    if not (_finite(b["value"]) and _finite(n["value"])):
        return None
    tol = tolerance_for(cid, spec, tolerances)
    delta = n["value"] - b["value"]
    limit = _limit(tol, b["value"])
    if abs(delta) <= limit:
        return None
    ci = b["ci"]
    return {"claim": cid, "model": label, "from": b["verdict"], "to": n["verdict"],
            "baseline": b["value"], "new": n["value"], "delta": delta,
            "relative": delta / abs(b["value"]) if b["value"] else None, "limit": limit, "tolerance": tol,
            "outside_baseline_ci": bool(ci) and not (ci[0] <= n["value"] <= ci[1]),
            "n": [b["n"], n["n"]]}


def exit_code(drift: Mapping[str, Any], *, allow_incomparable: bool = False) -> int:
    """0: no failing change; 1: the gate failed (a regression, by default); 3: the runs are not comparable
    (unless allowed). Not comparable wins: a change across different settings says nothing about the checkpoint."""
    if not drift["comparable"] and not allow_incomparable:
        return EXIT_INCOMPARABLE
    return EXIT_REGRESSION if drift["gate"]["failed"] else EXIT_OK


# -- rendering ------------------------------------------------------------------------------------------------

def fmt(x: Any) -> str:
    return "" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)


MAX_CELL = 160      # characters of a measured figure or reason in a table (drift.json keeps them whole)


def _cell(text: Any) -> str:
    from .report import cell

    text = cell(text)
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 3].rstrip() + "..."


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    from tabulate import tabulate

    return tabulate([[_cell(c) for c in row] for row in rows], headers=list(headers), tablefmt="github",
                    disable_numparse=True)


def _tolerance_text(tol: Mapping[str, Any]) -> str:
    parts = [f"abs {fmt(tol['abs'])}" if tol.get("abs") is not None else "",
             f"rel {tol['rel']:.0%}" if tol.get("rel") is not None else ""]
    return f"{' or '.join(p for p in parts if p)} ({tol['source']})"


def _side_line(name: str, side: Mapping[str, Any]) -> str:
    models = []
    for m, info in side["models"].items():
        extra = [f"weights {info['weights']}" if info["weights"] else "", info["checkpoint"] or ""]
        extra = [e for e in extra if e]
        models.append(f"`{m}`" + (f" ({', '.join(extra)})" if extra else ""))
    status = "" if side["status"] == "complete" else f", **{side['status']}**"
    return f"- {name}: run `{side['run_id']}` (`{side['label']}`{status}); models {', '.join(models) or '(none)'}"


def _grouped(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """[(key, 'A01-A03, A05')] from (key, claim id) pairs, keys in first-seen order."""
    from .report import compress_ids

    by_key: dict[str, list[str]] = {}
    for key, cid in items:
        by_key.setdefault(key, []).append(cid)
    return [(k, compress_ids(ids)) for k, ids in by_key.items()]


def headline(drift: Mapping[str, Any]) -> str:
    """One line: the outcome of the comparison."""
    gate = drift["gate"]
    parts = []
    if not drift["comparable"]:
        parts.append("NOT COMPARABLE (" + "; ".join(f"{i['what']}: {fmt(i['baseline'])} -> {fmt(i['new'])}"
                                                    for i in drift["incomparable"]) + ")")
    if gate["failed"]:
        parts.append(f"{len(gate['failing'])} failing change(s) (--fail-on {gate['fail_on']}): "
                     + "; ".join(gate["failing"]))
    else:
        parts.append(f"no failing change (--fail-on {gate['fail_on']})")
    return ". ".join(parts)


def render_markdown(drift: Mapping[str, Any], *, level: int = 1) -> str:
    """The drift report; `level` 1 is a standalone document, 2 a section of REPORT.md."""
    h, hh = "#" * level, "#" * (level + 1)
    title = "SinkBench drift report" if level == 1 else "Drift against the baseline"
    out = [f"{h} {title}", "", _side_line("baseline", drift["baseline"]), _side_line("new", drift["new"])]
    out.append("- pairs: " + (", ".join(f"`{p['baseline']}` -> `{p['new']}` ({p['rule']})" for p in drift["pairs"])
                              or "**none**: no model of the baseline matches one of the new run (pair them with "
                                 "`--pair BASE=NEW`)"))
    out += ["", f"**{headline(drift)}**", ""]
    c = drift["counts"]
    out.append(", ".join(f"{KIND_TEXT[k]} {c[k]}" for k in KINDS)
               + f"; figures beyond tolerance {c['figures_beyond_tolerance']}; unchanged {c['unchanged']} of "
                 f"{c['compared']} compared (claim, model) results.")
    out += ["", f"{hh} Comparability", ""]
    if drift["incomparable"]:
        out.append("The runs differ in settings that change what is measured: the changes below may come from "
                   "those settings, not from the checkpoint.")
        out.append("")
    rows = ([["**not comparable**", i["what"], fmt(i["baseline"]), fmt(i["new"]), i.get("why", "")]
             for i in drift["incomparable"]]
            + [["warning", i["what"], fmt(i["baseline"]), fmt(i["new"]), i.get("why", "")] for i in drift["warnings"]]
            + [["note", i["what"], fmt(i["baseline"]), fmt(i["new"]), i.get("why", "")] for i in drift["notes"]])
    if rows:
        out.append(_table(["", "what", "baseline", "new", "why"], rows))
    else:
        out.append("Same settings, generation settings, prompt sets, seeds, libraries and code.")
    out += ["", f"{hh} Verdict changes", ""]
    if drift["verdict_changes"]:
        out.append(_table(["claim", "model", "change", "verdict", "baseline measured", "new measured", "new reason"],
                          [[v["claim"], v["model"], KIND_TEXT[v["kind"]], f"{v['from']} -> {v['to']}",
                            v["baseline"]["measured"], v["new"]["measured"], v["new"]["reason"]]
                           for v in drift["verdict_changes"]]))
    else:
        out.append("No verdict changed.")
    out += ["", f"{hh} Measured figures beyond tolerance", ""]
    if drift["figure_drift"]:
        out.append("The headline value (`value` in results.json) moved by more than max(abs, rel x |baseline|).")
        out.append("")
        out.append(_table(["claim", "model", "verdict", "baseline", "new", "change", "tolerance", "outside baseline CI", "N"],
                          [[f["claim"], f["model"], f["to"] if f["from"] == f["to"] else f"{f['from']} -> {f['to']}",
                            fmt(f["baseline"]), fmt(f["new"]),
                            f"{f['delta']:+.3g}" + (f" ({f['relative']:+.0%})" if f["relative"] is not None else ""),
                            _tolerance_text(f["tolerance"]), "yes" if f["outside_baseline_ci"] else "no",
                            " -> ".join(fmt(x) for x in f["n"]) if f["n"][0] != f["n"][1] else fmt(f["n"][1])]
                           for f in drift["figure_drift"]]))
    else:
        out.append("No measured figure moved beyond its tolerance.")
    out += ["", f"{hh} New SKIPPED reasons", ""]
    if drift["new_skip_reasons"]:
        groups = _grouped(((s["model"], s["reason"]), s["claim"]) for s in drift["new_skip_reasons"])
        out += [f"- {ids} ({model}): {reason}" for (model, reason), ids in groups]
    else:
        out.append("None.")
    if drift["spec_changes"]:
        out += ["", f"{hh} Claim specs that differ", ""]
        out += [f"- {s['claim']}: {', '.join(s['fields'])}" for s in drift["spec_changes"]]
    cov, unpaired = drift["coverage"], drift["unpaired"]
    if cov["only_baseline"] or cov["only_new"] or unpaired["baseline"] or unpaired["new"]:
        out += ["", f"{hh} Coverage", ""]
        for key, text in (("only_baseline", "only in the baseline"), ("only_new", "only in the new run")):
            for model, ids in _grouped((x["model"], x["claim"]) for x in cov[key]):
                out.append(f"- {text} ({model}): {ids}")
        for side in ("baseline", "new"):
            if unpaired[side]:
                out.append(f"- models of the {side} run without a counterpart: {', '.join(unpaired[side])}")
    out.append("")
    return "\n".join(out)
