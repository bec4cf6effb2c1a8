"""The `sinkbench` command (also `python -m benchmark`)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from tabulate import tabulate


def _cmd_claims(args: argparse.Namespace) -> int:
    from .claims import PAPERS, load_catalogue

    cat = load_catalogue()
    if args.model and args.model not in cat.cards:
        print(f"sinkbench claims: unknown model {args.model!r}; known: {', '.join(cat.cards)}", file=sys.stderr)
        return 2
    rows = []
    for claim in cat:
        if args.paper and claim.paper.key != args.paper:
            continue
        models = [c.name for c in cat.applicable_models(claim)]
        if args.model and args.model not in models:
            continue
        rows.append(claim.to_dict() | {"applicable_models": models})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [[r["id"], r["paper"], r["source"], r["statement"] if args.full else r["statement"][:70],
              ", ".join(r["applicable_models"])] for r in rows]
    print(tabulate(table, headers=["id", "paper", "source", "statement", "applies to"], tablefmt="simple"))
    print(f"\n{len(rows)} claim(s); papers: " + ", ".join(f"{k} ({v}xx)" for k, v in PAPERS.items()))
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from .cards import load_cards

    cards = load_cards()
    if args.json:
        print(json.dumps({n: {"title": c.title, "hub_id": c.hub_id, "organism": c.organism, "kind": c.kind,
                              "traits": sorted(c.traits), "settings": dict(c.settings)} for n, c in cards.items()},
                         indent=2))
        return 0
    rows = [[c.name, c.kind, c.hub_id or f"(organism) {c.weights}", " ".join(sorted(c.traits))] for c in cards.values()]
    print(tabulate(rows, headers=["name (pytest marker)", "kind", "weights", "traits"], tablefmt="simple"))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report
    from .results import ResultsError, load_results

    try:
        doc = load_results(args.results)
    except (FileNotFoundError, ResultsError) as exc:
        print(f"sinkbench report: {exc}", file=sys.stderr)
        return 2
    source = Path(args.results)
    out = Path(args.out) if args.out else (source if source.is_dir() else source.parent)
    path = write_report(doc, out)
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sinkbench",
        description="SinkBench: verify published claims about attention sinks in diffusion models. "
                    "The claims themselves run under pytest: `pytest suites/` (see README).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("claims", help="list the claims, filtered by paper or model",
                       description="List the claim catalogue (benchmark/specs/*.yaml) and the models each claim applies to.")
    p.add_argument("--paper", choices=["causal", "spiral", "dlm"], help="only this paper's claims")
    p.add_argument("--model", metavar="NAME", help="only claims that apply to this model")
    p.add_argument("--full", action="store_true", help="do not shorten statements")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(fn=_cmd_claims)

    p = sub.add_parser("models", help="list the model cards (names are the pytest markers)",
                       description="List the model cards in models/cards/ with their architecture traits.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(fn=_cmd_models)

    from .prompts import add_cli_arguments, cli_prompts

    p = sub.add_parser("prompts", help="show a prompt set (GenEval, stratified samples, files, transforms)",
                       description="Load a prompt set (geneval, geneval:N, FILE, FILE:N) and print it.")
    add_cli_arguments(p)
    p.set_defaults(fn=cli_prompts)

    p = sub.add_parser("report", help="re-render REPORT.md from a results.json",
                       description="Validate a results.json against its schema and write REPORT.md and figures/ "
                                   "next to it (or into --out).")
    p.add_argument("results", help="a results.json or a report directory (e.g. reports/latest)")
    p.add_argument("--out", metavar="DIR", help="write REPORT.md and figures/ here instead")
    p.set_defaults(fn=_cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
