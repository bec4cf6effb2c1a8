"""The `sinkbench` command (also `python -m benchmark`)."""
from __future__ import annotations

import argparse
import json
import os
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


def _cmd_compare(args: argparse.Namespace) -> int:
    from .compare import EXIT_USAGE, CompareError, compare, exit_code, headline, parse_tolerance, render_markdown
    from .results import ResultsError, atomic_write_text, dump_json, load_results

    try:
        baseline, new = load_results(args.baseline), load_results(args.new)
        tolerances = {}
        if args.abs_tol is not None or args.rel_tol is not None:
            tolerances["*"] = {k: v for k, v in (("abs", args.abs_tol), ("rel", args.rel_tol)) if v is not None}
        for item in args.claim_tol or []:
            claim_id, sep, text = item.partition("=")
            if not sep or claim_id not in new["claims"]:
                raise CompareError(f"--claim-tol {item!r}: expected CLAIM=abs:X,rel:Y with a known claim id")
            tolerances[claim_id] = parse_tolerance(text)
        pairs = {}
        for item in args.pair or []:
            b, sep, n = item.partition("=")
            if not sep or not b or not n:
                raise CompareError(f"--pair {item!r}: expected BASELINE_MODEL=NEW_MODEL")
            pairs[b] = n
        drift = compare(baseline, new, baseline_label=str(args.baseline), new_label=str(args.new),
                        pairs=pairs or None, tolerances=tolerances, fail_on=args.fail_on)
    except (FileNotFoundError, ResultsError, CompareError) as exc:
        print(f"sinkbench compare: {exc}", file=sys.stderr)
        return EXIT_USAGE
    code = exit_code(drift, allow_incomparable=args.allow_incomparable)
    if args.out:
        out = Path(args.out)
        atomic_write_text(out / "drift.json", dump_json(drift))
        atomic_write_text(out / "DRIFT.md", render_markdown(drift))
        print(f"{out / 'DRIFT.md'}\n{out / 'drift.json'}")
    else:
        print(dump_json(drift) if args.json else render_markdown(drift), end="")
    print(f"sinkbench compare: {headline(drift)} (exit {code})", file=sys.stderr)
    return code


def _cmd_make_tiny(args: argparse.Namespace) -> int:
    import time

    from .tiny import make_tiny

    t0 = time.monotonic()
    try:
        path = make_tiny(args.family, args.directory, seed=args.seed, overwrite=args.overwrite)
    except FileExistsError as exc:
        print(f"sinkbench make-tiny: {exc}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    print(f"{path}: tiny {args.family} pipeline, {size / 1e6:.1f} MB, {time.monotonic() - t0:.1f} s "
          f"(random weights; load it with --checkpoint {path})")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from collections import Counter

    from .adapters import CheckpointNotFound, DiffusionAdapter, WrongFamily, resolve_checkpoint
    from .generate import settings_for

    overrides = {k: getattr(args, k) for k in ("height", "width", "num_frames", "max_sequence_length", "dtype")}
    try:
        settings = settings_for(resolve_checkpoint(args.checkpoint), overrides)
        adapter = DiffusionAdapter.load(args.checkpoint, settings, device=args.device)
    except (CheckpointNotFound, WrongFamily) as exc:
        print(f"sinkbench inspect: {exc}", file=sys.stderr)
        return 2
    layers = adapter.attention_layers()
    doc = {"family": adapter.family.name, "checkpoint": adapter.checkpoint.identity,
           "layers": len(layers), "by_kind_and_block": {f"{k}/{b}": n for (k, b), n in
                                                       Counter((l.kind, l.block) for l in layers).items()},
           "segmentation": {}}
    for layer in layers:
        if layer.kind not in doc["segmentation"]:
            seg = adapter.segment(args.prompt, layer)
            doc["segmentation"][layer.kind] = {"example_layer": layer.name, "n_keys": len(seg),
                                               "spans": seg.spans(), "counts": seg.counts(), "grid": seg.grid}
    print(json.dumps(doc, indent=2, default=str))
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    import time

    from .adapters import CheckpointNotFound, WrongFamily
    from .generate import GenerationJob, write_manifest
    from .prompts import PromptError, load_prompts

    try:
        prompt_set = load_prompts(args.prompts, seed=args.sample_seed)
    except PromptError as exc:
        print(f"sinkbench generate: {exc}", file=sys.stderr)
        return 2
    overrides = _generation_overrides(args)
    job = GenerationJob(checkpoint=args.checkpoint, prompts=prompt_set.pairs(), cache_dir=args.cache_dir,
                        base_seed=args.seed, device=args.device, cpu_offload=args.cpu_offload,
                        max_batch=args.batch, overrides=overrides, progress=not args.quiet)
    t0 = time.monotonic()
    try:
        manifest, stats = job.execute()
    except (CheckpointNotFound, WrongFamily, ValueError) as exc:
        print(f"sinkbench generate: {exc}", file=sys.stderr)
        return 2
    summary = {"requested": stats.requested, "cached": stats.cached, "generated": stats.generated,
               "seconds": round(time.monotonic() - t0, 2), "world_size": manifest["world_size"]}
    if args.out and int(os.environ.get("RANK", "0")) == 0:
        summary["manifest"] = str(write_manifest(manifest, args.out, png=args.png))
    # one write per line: under torchrun the ranks share stdout, and print() may split a line in two writes
    sys.stdout.write(json.dumps(summary) + "\n")
    sys.stdout.flush()
    return 0


def _generation_overrides(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k, None) for k in ("steps", "guidance", "height", "width", "num_frames",
                                                "max_sequence_length", "dtype")}


def _add_generation_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int)
    p.add_argument("--guidance", type=float)
    p.add_argument("--height", type=int)
    p.add_argument("--width", type=int)
    p.add_argument("--num-frames", dest="num_frames", type=int)
    p.add_argument("--max-sequence-length", dest="max_sequence_length", type=int)
    p.add_argument("--dtype", choices=["fp32", "fp16", "bf16"])


def _int_list(text: str | None):
    return None if text is None else tuple(int(x) for x in text.split(",") if x.strip())


def _cmd_measure(args: argparse.Namespace) -> int:
    from .adapters import CheckpointNotFound, WrongFamily
    from .probe.measure import run_measurement
    from .probe.session import ProbeSpec
    from .prompts import PromptError, load_prompts

    try:
        prompt_set = load_prompts(args.prompts, seed=args.sample_seed)
        probe = ProbeSpec(layers=_int_list(args.layers), steps=_int_list(args.steps_to_record),
                          stats=tuple(args.stats.split(",")), per_head=args.per_head, queries=args.queries,
                          branches=tuple(args.branches.split(",")), chunk=args.chunk)
        path = run_measurement(args.checkpoint, prompt_set.pairs(), args.out, probe, base_seed=args.seed,
                               device=args.device, overrides=_generation_overrides(args), progress=not args.quiet,
                               batch_size=args.batch_size)
    except (PromptError, CheckpointNotFound, WrongFamily, ValueError) as exc:
        print(f"sinkbench measure: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from .cards import CardError, load_cards
    from .probe.analysis import AnalysisError, load_vector, parse_segments, segments_from_spans, summarize

    try:
        vector = load_vector(args.importance)
        segments = parse_segments(args.segments) if args.segments else []
        if args.segments_from_card:
            cards = load_cards()
            if args.segments_from_card not in cards:
                raise AnalysisError(f"no model card {args.segments_from_card!r}; known: {', '.join(cards)}")
            spans = cards[args.segments_from_card].attention.get("spans")
            if not spans:
                raise AnalysisError(f"the {args.segments_from_card} card declares no attention.spans")
            segments = segments_from_spans(spans)
        doc = summarize(vector, segments, k=args.top)
    except (AnalysisError, CardError) as exc:
        print(f"sinkbench analyze: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(doc, indent=2))
    return 0


def _cmd_env(args: argparse.Namespace) -> int:
    from .side_envs import SIDE_ENVS, SideEnvMissing, check, create, describe

    names = [args.name] if getattr(args, "name", None) else list(SIDE_ENVS)
    try:
        if args.action == "create":
            create(args.name, args.root, torch=args.torch, force=args.force)
        elif args.action == "check":
            for name in names:
                print(f"{name}: ok ({check(name, args.root)})")
        else:
            for name in names:
                print(json.dumps(describe(name, args.root), indent=1))
    except (SideEnvMissing, KeyError) as exc:
        print(f"sinkbench env {args.action}: {exc}", file=sys.stderr)
        return 2
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

    from .tiny import TINY_FAMILIES

    p = sub.add_parser("make-tiny", help="write a tiny random-weight pipeline directory of a family",
                       description="Build a tiny pipeline of the real diffusers classes with random weights and "
                                   "offline tokenizers, and save it with save_pretrained (for tests and dry runs).")
    p.add_argument("family", choices=TINY_FAMILIES)
    p.add_argument("directory")
    p.add_argument("--seed", type=int, default=0, help="weight initialisation seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty directory")
    p.set_defaults(fn=_cmd_make_tiny)

    p = sub.add_parser("inspect", help="show a checkpoint's family, attention layers and key segmentation",
                       description="Load a checkpoint (hub id or directory) and print its attention layers by "
                                   "kind and the token segmentation of each layer kind for a prompt.")
    p.add_argument("checkpoint", help="hub id (owner/name) or local diffusers directory")
    p.add_argument("--prompt", default="a red circle, a blue square")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--height", type=int)
    p.add_argument("--width", type=int)
    p.add_argument("--num-frames", dest="num_frames", type=int)
    p.add_argument("--max-sequence-length", dest="max_sequence_length", type=int)
    p.set_defaults(fn=_cmd_inspect)

    p = sub.add_parser("generate", help="generate seed-paired images of a prompt set into the cache (resumable)",
                       description="Generate one image per prompt (seed = --seed + prompt index) from a checkpoint "
                                   "into the content-addressed cache; an interrupted run resumes. Under torchrun "
                                   "the work is sharded over the processes.")
    p.add_argument("--checkpoint", required=True, help="hub id (owner/name) or local diffusers directory")
    p.add_argument("--prompts", default="geneval:16", help="geneval, geneval:N, FILE or FILE:N (default geneval:16)")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the stratified prompt sample")
    p.add_argument("--seed", type=int, default=0, help="base seed: prompt i gets seed + i")
    p.add_argument("--cache-dir", default=".cache/sinkbench/generations")
    p.add_argument("--out", metavar="DIR", help="write manifest.json (and --png previews) here")
    p.add_argument("--png", action="store_true", help="also write PNGs into --out")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (torchrun: cuda picks LOCAL_RANK)")
    p.add_argument("--cpu-offload", action="store_true", help="diffusers model CPU offload")
    p.add_argument("--batch", type=int, default=1, help="items per forward (1 keeps images independent of batching)")
    _add_generation_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=_cmd_generate)

    p = sub.add_parser("measure", help="record attention statistics of a checkpoint over prompts",
                       description="Generate each prompt with the attention probe installed and write the "
                                   "records (docs/probe-format.md): per-item statistics per layer and step, "
                                   "and key importance per layer. Resumes an interrupted run.")
    p.add_argument("--checkpoint", required=True, help="hub id (owner/name) or local diffusers directory")
    p.add_argument("--prompts", required=True, help="geneval, geneval:N, FILE or FILE:N")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--seed", type=int, default=0, help="base seed: prompt i gets seed + i")
    p.add_argument("--stats", default="mass", help="comma list of mass,entropy,key_norm,value_norm")
    p.add_argument("--layers", help="comma list of layer indices (default: all)")
    p.add_argument("--steps-to-record", dest="steps_to_record", help="comma list of step indices (default: all)")
    p.add_argument("--per-head", action="store_true", help="keep per-head masses")
    p.add_argument("--queries", default="auto", choices=["auto", "all", "image", "text"],
                   help="queries averaged over (auto: image queries in joint layers, as paper A)")
    p.add_argument("--branches", default="cond", help="cond, uncond or cond,uncond")
    p.add_argument("--chunk", type=int, default=1024, help="queries per chunk (memory O(chunk x keys))")
    p.add_argument("--batch-size", type=int, default=1, help="prompts per pipeline call (each keeps its own seed)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true")
    _add_generation_options(p)
    p.set_defaults(fn=_cmd_measure)

    p = sub.add_parser("analyze", help="summarize a key-importance vector: shares, top keys, sink-to-random",
                       description="Read a key-importance vector (JSON list or .npy, e.g. "
                                   "key_importance/L012.npy from `sinkbench measure`) and print JSON: share of "
                                   "attention per segment, top-k keys with ratio x uniform, sink-to-random ratio.")
    p.add_argument("importance")
    p.add_argument("--segments", help="NAME:START-END,... inclusive, e.g. text:0-511,image:512-4607")
    p.add_argument("--segments-from-card", metavar="MODEL", help="segments from a model card's attention.spans")
    p.add_argument("--top", type=int, default=5, help="k for top keys and the sink-to-random ratio")
    p.set_defaults(fn=_cmd_analyze)

    p = sub.add_parser("env", help="create or check a metric's side environment (e.g. imagereward)",
                       description="Side environments hold metric packages that cannot live in the main "
                                   "environment (image-reward needs transformers 4). `create` builds one with pip "
                                   "(by default sharing this environment's torch), `check` runs its import check, "
                                   "`list` shows them.")
    env_sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (("create", "create a side environment"), ("check", "check side environments"),
                         ("list", "describe side environments")):
        q = env_sub.add_parser(action, help=text)
        q.add_argument("name", nargs=None if action == "create" else "?", help="imagereward")
        q.add_argument("--root", metavar="DIR", help="the environment's directory (default: $SINKBENCH_ENVS/NAME "
                                                     "or ~/.cache/sinkbench/envs/NAME)")
        if action == "create":
            q.add_argument("--torch", choices=["shared", "install"], default="shared",
                           help="share this environment's torch/torchvision (default) or install them")
            q.add_argument("--force", action="store_true", help="re-create it if it exists")
        q.set_defaults(fn=_cmd_env)

    p = sub.add_parser("report", help="re-render REPORT.md from a results.json",
                       description="Validate a results.json against its schema and write REPORT.md and figures/ "
                                   "next to it (or into --out).")
    p.add_argument("results", help="a results.json or a report directory (e.g. reports/latest)")
    p.add_argument("--out", metavar="DIR", help="write REPORT.md and figures/ here instead")
    p.set_defaults(fn=_cmd_report)

    p = sub.add_parser("compare", help="drift report of a new run against a baseline run (checkpoint CI)",
                       description="Compare two results.json (or report directories): verdict changes "
                                   "(regressions first), measured figures beyond tolerance, new SKIPPED reasons, "
                                   "and settings that make the runs incomparable. Exit status: 0 no failing "
                                   "change, 1 a failing change (a regression by default), 2 bad input, 3 the "
                                   "runs are not comparable. See docs/CHECKPOINT_CI.md.")
    p.add_argument("baseline", help="the baseline's results.json or report directory")
    p.add_argument("new", help="the new run's results.json or report directory")
    p.add_argument("--out", metavar="DIR", help="write DRIFT.md and drift.json here instead of printing")
    p.add_argument("--json", action="store_true", help="print the drift as JSON instead of markdown")
    p.add_argument("--fail-on", choices=["regression", "worse", "any"], default="regression",
                   help="what fails (exit 1): regression = REPRODUCED -> CONTRADICTED/ERROR and new errors "
                        "(default); worse = also weakened and no longer measured; any = any verdict change or "
                        "figure beyond tolerance")
    p.add_argument("--allow-incomparable", action="store_true",
                   help="report runs with different settings with exit 0/1 instead of 3")
    p.add_argument("--abs-tol", type=float, metavar="X", help="absolute tolerance for every claim (overrides the specs)")
    p.add_argument("--rel-tol", type=float, metavar="Y", help="relative tolerance for every claim (overrides the specs)")
    p.add_argument("--claim-tol", action="append", metavar="CLAIM=abs:X,rel:Y",
                   help="tolerance of one claim (repeatable), e.g. A05=rel:0.1")
    p.add_argument("--pair", action="append", metavar="BASE=NEW",
                   help="pair a baseline model with a new-run model (repeatable); default: the single model on "
                        "each side, else equal names")
    p.set_defaults(fn=_cmd_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
