"""ImageReward worker: runs inside the `imagereward` side environment (benchmark/side_envs.py).

Protocol: one JSON object per line on stdin, one JSON answer per line on stdout ({"ok": true, ...} or
{"ok": false, "error": ...}); logs go to stderr.

    {"op": "load", "weights": PATH|null, "med_config": PATH, "tokenizer": DIR, "device": "cpu",
     "seed": 0, "allow_pickle": false}            -> {"ok": true, "identity": {...}}
    {"op": "score", "batch": NPZ, "prompts": [...]}  -> {"ok": true, "scores": [...]}
    {"op": "quit"}

NPZ holds uint8 images img_0 .. img_{n-1} (H, W, 3). The score is ImageReward's: the BLIP text encoder's [CLS]
state (prompt cross-attending to the image) through the MLP head, standardised by the package's mean and std,
computed for a batch at once exactly as the package's score() does for one pair. Only the scoring modules of
image-reward are imported (its package __init__ pulls in training code needing diffusers, datasets and clip).
"""
import importlib.util
import json
import os
import sys
import traceback
import types

STATE = {}


def import_scoring_modules():
    spec = importlib.util.find_spec("ImageReward")
    if spec is None:
        raise ImportError("image-reward is not installed in this environment")
    root = list(spec.submodule_search_locations)[0]
    for name, path in (("ImageReward", root), ("ImageReward.models", os.path.join(root, "models"))):
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = [path]
            sys.modules[name] = module
    import ImageReward.models.BLIP.blip as blip
    import ImageReward.models.BLIP.blip_pretrain as blip_pretrain
    return blip, blip_pretrain


def load(request):
    import torch
    from transformers import BertTokenizer

    blip, blip_pretrain = import_scoring_modules()
    tokenizer_dir = request["tokenizer"]

    def init_tokenizer():           # BLIP's own, from a local bert-base-uncased directory instead of the hub
        tokenizer = BertTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
        tokenizer.add_special_tokens({"bos_token": "[DEC]"})
        tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
        tokenizer.enc_token_id = tokenizer.additional_special_tokens_ids[0]
        return tokenizer

    blip.init_tokenizer = blip_pretrain.init_tokenizer = init_tokenizer
    from ImageReward.ImageReward import ImageReward

    torch.manual_seed(int(request.get("seed", 0)))
    device = request.get("device", "cpu")
    model = ImageReward(med_config=request["med_config"], device=device)
    identity = {"parameters": sum(p.numel() for p in model.parameters())}
    if not request.get("weights"):
        # random weights (tests): the package initialises its head with std 1/769 per layer, which makes every
        # output ~1e-10 and all scores equal; PyTorch's default init keeps the random head informative
        for layer in model.mlp.layers:
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
    else:
        try:
            state = torch.load(request["weights"], map_location="cpu", weights_only=True)
        except Exception as exc:
            if not request.get("allow_pickle"):
                raise RuntimeError(f"{request['weights']} cannot be loaded with torch.load(weights_only=True) "
                                   f"({type(exc).__name__}: {exc}); pass allow_pickle only if you trust the file")
            state = torch.load(request["weights"], map_location="cpu", weights_only=False)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        result = model.load_state_dict(state, strict=False)
        needed = [k for k in result.missing_keys if k.startswith(("mlp.", "blip.visual_encoder.", "blip.text_encoder."))]
        if needed:
            raise RuntimeError(f"{request['weights']} lacks {len(needed)} scoring tensors, e.g. {needed[:3]}")
        identity.update(missing_keys=len(result.missing_keys), unexpected_keys=len(result.unexpected_keys))
    STATE["model"] = model.to(device).eval()
    STATE["device"] = device
    import timm
    import transformers

    identity.update(torch=torch.__version__, transformers=transformers.__version__, timm=timm.__version__,
                    image_reward=_version("image-reward"), mean=model.mean, std=model.std)
    return {"identity": identity}


def _version(dist):
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def score(request):
    import numpy as np
    import torch
    from PIL import Image

    model = STATE.get("model")
    if model is None:
        raise RuntimeError("score before load")
    with np.load(request["batch"]) as data:
        images = [data[f"img_{i}"] for i in range(len(request["prompts"]))]
    device = STATE["device"]
    text = model.blip.tokenizer(list(request["prompts"]), padding="max_length", truncation=True, max_length=35,
                                return_tensors="pt").to(device)
    pixels = torch.stack([model.preprocess(Image.fromarray(np.asarray(image, np.uint8))) for image in images]).to(device)
    with torch.inference_mode():
        image_embeds = model.blip.visual_encoder(pixels)
        image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=device)
        out = model.blip.text_encoder(text.input_ids, attention_mask=text.attention_mask,
                                      encoder_hidden_states=image_embeds, encoder_attention_mask=image_atts,
                                      return_dict=True)
        rewards = (model.mlp(out.last_hidden_state[:, 0, :].float()) - model.mean) / model.std
    return {"scores": [float(x) for x in rewards.squeeze(-1).cpu()]}


def main():
    handlers = {"load": load, "score": score}
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if request.get("op") == "quit":
                break
            answer = {"ok": True, **handlers[request["op"]](request)}
        except Exception as exc:   # answered, not raised: the parent turns it into a clear error
            traceback.print_exc(file=sys.stderr)
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
