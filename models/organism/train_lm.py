"""Train the language organisms of paper C on the arithmetic task (benchmark/lm/arithmetic.py), on one GPU.

    python models/organism/train_lm.py --kind mdlm --out /tmp/mdlm0 --max-context 3 --time-budget 420
    python models/organism/train_lm.py --kind mdlm --out models/organism/mdlm --init-from /tmp/mdlm0 --time-budget 480
    (the same with --kind arm; models/organism/README.md has the exact stages)

Both are transformers LlamaForCausalLM models of the same size, saved with save_pretrained (weights in fp16) with
the character tokenizer, so they load like a user's checkpoint:
- mdlm: a masked diffusion LM with bidirectional attention (config.is_causal = False) trained with LLaDA's
  objective: a ratio t ~ U(eps, 1), each token masked with probability t, cross-entropy on the masked tokens
  weighted 1/t and averaged over the sequence's maskable tokens. Half the batches mask the whole sequence
  (pre-training), half only the generation window (SFT: the answer, then <eos> to the window's end).
- arm: a causal LM, next-token cross-entropy on every token.
Deterministic from --seed (up to GPU kernels). Writes training.json (config, loss curve, exact-match accuracy of
the stored weights on 512 held-out problems) beside the weights.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmark.lm import arithmetic as task  # noqa: E402

MASK_EPS = 1e-3
EVAL_N = 512


def model_config(kind: str, hidden: int, layers: int, heads: int):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(task.VOCABULARY), hidden_size=hidden, intermediate_size=3 * hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=128, rope_theta=10000.0,
        tie_word_embeddings=False, is_causal=(kind == "arm"), attn_implementation="sdpa",
        bos_token_id=task.VOCABULARY.index("<bos>"), eos_token_id=task.VOCABULARY.index("<eos>"),
        pad_token_id=task.VOCABULARY.index("<pad>"))


INDEX = {t: i for i, t in enumerate(task.VOCABULARY)}


def encode(text: str) -> list[int]:
    return [INDEX[c] for c in text]


def batch(kind: str, seed: int, start: int, size: int, max_context: int = task.TRAIN_MAX_CONTEXT):
    """(ids, valid, answer_region) of training items start..start+size, right-padded with <pad>."""
    pad, bos, eos = (task.VOCABULARY.index(t) for t in ("<pad>", "<bos>", "<eos>"))
    rows, regions = [], []
    for i in range(start, start + size):
        prompt, answer = task.sample_text(seed, i, max_context=max_context)
        head = [bos] + encode(prompt)
        if kind == "mdlm":
            tail = encode(answer) + [eos] * (task.GEN_LENGTH - len(answer))
        else:
            tail = encode(answer) + [eos]
        rows.append(head + tail)
        regions.append((len(head), len(head) + len(tail)))
    n = max(len(r) for r in rows)
    ids = torch.full((size, n), pad, dtype=torch.long)
    valid = torch.zeros((size, n), dtype=torch.bool)
    region = torch.zeros((size, n), dtype=torch.bool)
    for r, (row, (lo, hi)) in enumerate(zip(rows, regions)):
        ids[r, :len(row)] = torch.tensor(row)
        valid[r, :len(row)] = True
        region[r, lo:hi] = True
    return ids, valid, region


class Batches(torch.utils.data.IterableDataset):
    """Training batches by step (worker w makes the steps = w mod workers; the loader interleaves them in order)."""

    def __init__(self, kind: str, seed: int, size: int, max_context: int):
        self.kind, self.seed, self.size, self.max_context = kind, seed, size, max_context

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        w, n = (info.id, info.num_workers) if info else (0, 1)
        step = w
        while True:
            yield batch(self.kind, self.seed, step * self.size, self.size, self.max_context)
            step += n


def mdlm_loss(model, ids, valid, region, generator):
    """LLaDA's objective on one batch (see the module docstring)."""
    mask_id = task.VOCABULARY.index("<mask>")
    b, n = ids.shape
    t = (1 - MASK_EPS) * torch.rand(b, 1, device=ids.device, generator=generator) + MASK_EPS
    sft = torch.rand(b, 1, device=ids.device, generator=generator) < 0.5
    maskable = torch.where(sft, region, valid)
    maskable[:, 0] = False                                            # <bos> is never masked
    masked = (torch.rand(b, n, device=ids.device, generator=generator) < t) & maskable
    noisy = torch.where(masked, torch.full_like(ids, mask_id), ids)
    # an explicit (B, 1, N, N) key-padding mask: bidirectional whatever the transformers version does with is_causal
    attention = valid[:, None, None, :].expand(b, 1, n, n)
    logits = model(input_ids=noisy, attention_mask=attention).logits.float()
    ce = F.cross_entropy(logits.transpose(1, 2), ids, reduction="none")
    per_seq = (ce * masked / t).sum(dim=1) / maskable.sum(dim=1).clamp_min(1)
    return per_seq.mean()


def arm_loss(model, ids, valid):
    n = ids.shape[1]
    causal = torch.ones(n, n, dtype=torch.bool, device=ids.device).tril()
    attention = causal[None, None] & valid[:, None, None, :]      # explicit 4D mask: the 2D path is slow
    logits = model(input_ids=ids, attention_mask=attention).logits.float()
    target = ids[:, 1:].masked_fill(~valid[:, 1:], -100)
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), target, ignore_index=-100)


def full_attention(n: int, device) -> torch.Tensor:
    return torch.ones(1, 1, n, n, dtype=torch.bool, device=device)


def check_attention(model, kind: str, device) -> bool:
    """Whether this transformers version gives the mdlm bidirectional (and the arm causal) attention from the
    config alone, without an explicit mask (training and evaluation pass one anyway)."""
    ids = torch.tensor([encode("12+34=46; 5*6=")], device=device)
    other = ids.clone()
    other[0, -1] = encode("7")[0]
    with torch.no_grad():
        first = model(input_ids=ids).logits[0, 0]
        changed = model(input_ids=other).logits[0, 0]
    sees_future = bool((first - changed).abs().max() > 1e-6)
    return sees_future == (kind == "mdlm")


def evaluate(directory: Path, kind: str, device, n: int = EVAL_N) -> dict:
    """Exact-match accuracy of the stored weights (reloaded in fp32) on held-out problems."""
    from transformers import LlamaForCausalLM

    from benchmark.lm.sampling import greedy_generate, llada_generate

    model = LlamaForCausalLM.from_pretrained(directory, dtype=torch.float32).to(device).eval()
    config_attention_ok = check_attention(model, kind, device)
    tok = task.build_tokenizer()
    correct, by_op = 0, {op: [0, 0] for op in task.OPERATORS}
    examples = []
    for p in task.problems(n):
        prompt = torch.tensor([tok.bos_token_id] + encode(p.prompt), device=device)
        if kind == "mdlm":
            gen = llada_generate(lambda x: model(input_ids=x, attention_mask=full_attention(x.shape[1], device)).logits,
                                 prompt, mask_id=tok.mask_token_id,
                                 gen_length=task.GEN_LENGTH, block_length=task.BLOCK_LENGTH, steps=task.GEN_LENGTH)
        else:
            def forward(x, cache):
                out = model(input_ids=x, past_key_values=cache, use_cache=True)
                return out.logits, out.past_key_values
            gen = greedy_generate(forward, prompt, eos_id=tok.eos_token_id, max_new_tokens=task.GEN_LENGTH)
        text = tok.decode(gen.generated.tolist(), skip_special_tokens=True)
        ok = task.is_correct(text, p.answer)
        correct += ok
        op = next(o for o in task.OPERATORS if o in p.query[1:])
        by_op[op][0] += ok
        by_op[op][1] += 1
        if len(examples) < 8:
            examples.append({"prompt": p.prompt, "answer": p.answer, "generated": text})
    return {"n": n, "accuracy": correct / n, "config_gives_the_attention": config_attention_ok, "by_operator": {k: v[0] / max(v[1], 1) for k, v in by_op.items()},
            "examples": examples}


def main(argv=None) -> None:
    from transformers import LlamaForCausalLM

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kind", choices=("mdlm", "arm"), required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=20000, help="optimizer steps (fixed by --time-budget when given)")
    ap.add_argument("--time-budget", type=float, help="seconds of training: fixes --steps from the speed of "
                                                      "steps 100-150 (recorded in training.json)")
    ap.add_argument("--max-seconds", type=float, default=1e9, help="safety stop: save and evaluate after this")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--eval-n", type=int, default=EVAL_N)
    ap.add_argument("--workers", type=int, default=4, help="data loader processes")
    ap.add_argument("--max-context", type=int, default=task.TRAIN_MAX_CONTEXT,
                    help="solved problems before the query: 0 to this many (the training mix)")
    ap.add_argument("--init-from", type=Path, help="continue from this directory's weights (a fresh optimizer)")
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    device = torch.device(args.device)
    parent = None
    if args.init_from:
        model = LlamaForCausalLM.from_pretrained(args.init_from, dtype=torch.float32).to(device).train()
        parent = json.loads((args.init_from / "training.json").read_text())
    else:
        model = LlamaForCausalLM(model_config(args.kind, args.hidden, args.layers, args.heads)).to(device).train()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    generator = torch.Generator(device=device).manual_seed(args.seed + 1)
    steps, log, t0, t_mark = args.steps, [], time.time(), None
    print(f"{args.kind}: {n_params:,} parameters on {device}", flush=True)
    step = 0
    loader = iter(torch.utils.data.DataLoader(Batches(args.kind, args.seed, args.batch, args.max_context), batch_size=None,
                                              num_workers=args.workers, prefetch_factor=8 if args.workers else None))
    while step < steps:
        if time.time() - t0 > args.max_seconds:
            print(f"stopping at step {step}: --max-seconds", flush=True)
            break
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * 0.5 * (1 + math.cos(math.pi * min(step / steps, 1.0)))
        for group in opt.param_groups:
            group["lr"] = lr
        ids, valid, region = (t.to(device, non_blocking=True) for t in next(loader))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = mdlm_loss(model, ids, valid, region, generator) if args.kind == "mdlm" else arm_loss(model, ids, valid)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step == 100:
            t_mark = time.time()
        if step == 150 and args.time_budget:
            per_step = (time.time() - t_mark) / 50
            steps = max(150, int(args.time_budget / per_step))
            print(f"{per_step * 1000:.1f} ms/step: {steps} steps in {args.time_budget:.0f} s", flush=True)
        if step % 200 == 0 or step == steps:
            log.append({"step": step, "loss": loss.item(), "lr": lr, "seconds": round(time.time() - t0, 1)})
            print(json.dumps(log[-1]), flush=True)
    train_seconds = time.time() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    model.eval().half().save_pretrained(args.out)
    task.build_tokenizer().save_pretrained(args.out)
    scores = evaluate(args.out, args.kind, device, args.eval_n)
    record = {"kind": args.kind, "args": {**vars(args), "out": str(args.out), "steps": steps,
                                          "init_from": str(args.init_from) if args.init_from else None},
              "parent": parent,
              "steps_done": step, "parameters": n_params, "train_seconds": round(train_seconds, 1),
              "final_loss": log[-1]["loss"] if log else None, "loss_curve": log, "eval": scores,
              "torch": torch.__version__, "transformers": __import__("transformers").__version__,
              "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"}
    (args.out / "training.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({"accuracy": scores["accuracy"], "by_operator": scores["by_operator"]}), flush=True)


if __name__ == "__main__":
    main()
