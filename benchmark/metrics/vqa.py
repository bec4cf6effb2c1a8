"""VQA alignment: the probability that a judge answers "yes" to questions about an image.

Paper A (A28) asks BLIP2-VQA whether the image shows the prompt; paper B (B17) asks TIIF-Bench's yes/no
questions with GPT-4o as the judge. The judge is pluggable (`VQAJudge`): SinkBench ships BLIP-2 (transformers,
default Salesforce/blip2-opt-2.7b). A verdict obtained with another judge than the paper's is reported as such
and is not a replication of the paper's number.
"""
from __future__ import annotations

from importlib import metadata
from typing import Any, Protocol, Sequence

import numpy as np

from .base import Metric, MetricUnavailable

DEFAULT_QUESTION = "Does this image show {prompt}?"
BLIP2_DEFAULT = "Salesforce/blip2-opt-2.7b"


class VQAJudge(Protocol):
    def identity(self) -> dict[str, Any]: ...

    def p_yes(self, images: Sequence[np.ndarray], questions: Sequence[str]) -> np.ndarray:
        """P(answer = yes | image, question), from the judge's yes/no answer probabilities."""


class VQAScore(Metric):
    """Mean P(yes) over an item's questions; a prompt alone becomes DEFAULT_QUESTION."""

    name = "vqa"
    pairs = "text"

    def __init__(self, judge: VQAJudge, question_template: str = DEFAULT_QUESTION, paper_judge: str | None = None):
        self.judge, self.template, self.paper_judge = judge, question_template, paper_judge
        self.batch_size = 8

    def identity(self) -> dict[str, Any]:
        ident = {"metric": self.name, "judge": self.judge.identity(), "question_template": self.template}
        if self.paper_judge:
            ident["note"] = f"the paper's judge is {self.paper_judge}; this judge differs: not a replication"
        return ident

    def _score_batch(self, images: Sequence[np.ndarray], others: Sequence[Any]) -> np.ndarray:
        flat_images, flat_questions, owner = [], [], []
        for i, (image, other) in enumerate(zip(images, others)):
            questions = list(other) if isinstance(other, (list, tuple)) else [self.template.format(prompt=other)]
            for q in questions:
                flat_images.append(image)
                flat_questions.append(q)
                owner.append(i)
        p = np.asarray(self.judge.p_yes(flat_images, flat_questions), dtype=np.float64)
        owner = np.asarray(owner)
        return np.array([p[owner == i].mean() for i in range(len(images))])

    def score(self, images, others, **kwargs):
        # question lists are part of the cache key as text
        return super().score(images, [tuple(o) if isinstance(o, list) else o for o in others], **kwargs)


class Blip2Judge:
    """BLIP-2 (transformers): P(yes) = softmax over the logits of the first answer token "yes" vs "no"
    after "Question: {q} Answer:"."""

    def __init__(self, model, processor, *, model_id: str, device: str = "cpu"):
        self.model, self.processor, self.model_id, self.device = model.eval().to(device), processor, model_id, device
        tok = processor.tokenizer
        self.yes = tok(" yes", add_special_tokens=False).input_ids[-1]
        self.no = tok(" no", add_special_tokens=False).input_ids[-1]

    @classmethod
    def load(cls, model_id: str = BLIP2_DEFAULT, device: str = "cpu") -> "Blip2Judge":
        try:
            from transformers import Blip2ForConditionalGeneration, Blip2Processor
        except ImportError as exc:
            raise MetricUnavailable(f"the BLIP-2 judge needs transformers ({exc})") from exc
        try:
            processor = Blip2Processor.from_pretrained(model_id, local_files_only=True)
            model = Blip2ForConditionalGeneration.from_pretrained(model_id, local_files_only=True)
        except OSError as exc:
            raise MetricUnavailable(
                f"BLIP-2 weights {model_id} are not in the local Hugging Face cache; get them with "
                f"`hf download {model_id}` (or set HF_HOME / HF_HUB_CACHE to a cache that has them)") from exc
        return cls(model, processor, model_id=model_id, device=device)

    def identity(self) -> dict[str, Any]:
        return {"judge": "BLIP-2", "model": self.model_id, "transformers": metadata.version("transformers"),
                "prompt": "Question: {q} Answer:", "p_yes": "softmax over the ' yes' / ' no' first-token logits"}

    def p_yes(self, images, questions) -> np.ndarray:
        import torch
        from PIL import Image

        inputs = self.processor(images=[Image.fromarray(np.asarray(i)) for i in images],
                                text=[f"Question: {q} Answer:" for q in questions], return_tensors="pt",
                                padding=True).to(self.device)
        with torch.inference_mode():
            logits = self.model(**inputs).logits
        # the next-token logits after each question's own last token: with right padding (BLIP-2's OPT
        # tokenizer) position -1 of a shorter question is a pad; query tokens, if the model prepends them
        # outside input_ids, shift every position by the same offset
        mask = inputs["attention_mask"]
        last = mask.shape[1] - 1 - mask.flip(1).argmax(dim=1) + (logits.shape[1] - mask.shape[1])
        pair = logits[torch.arange(len(last)), last][:, [self.yes, self.no]].float()
        return torch.softmax(pair, dim=-1)[:, 0].cpu().numpy()
