"""LPIPS between paired images (lpips package; AlexNet trunk by default, VGG as an option).

The lpips wheel ships only its linear heads; the trunk is torchvision's ImageNet AlexNet/VGG16, looked for in
TORCH_HOME/hub/checkpoints (what torchvision downloads) or $SINKBENCH_LPIPS_TRUNK. Images are compared at
their own resolution (both must match); inputs are scaled to [-1, 1] as lpips expects.
"""
from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import Metric, MetricUnavailable, WeightFile, file_sha256, to_float_batch, torch_home

TRUNKS = {
    "alex": ("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
    "vgg": ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
}


def trunk_weight_file(net: str) -> WeightFile:
    name, url = TRUNKS[net]
    return WeightFile(name=name, env_var="SINKBENCH_LPIPS_TRUNK", source=url,
                      candidates=(torch_home() / "hub" / "checkpoints" / name,))


class LPIPSMetric(Metric):
    name = "lpips"
    pairs = "image"
    higher_is_better = False

    def __init__(self, model, *, net: str, trunk: Path | None, device: str = "cpu"):
        self.model = model.eval().to(device)
        self.net, self.trunk, self.device = net, trunk, device

    @classmethod
    def load(cls, net: str = "alex", trunk: str | None = None, device: str = "cpu") -> "LPIPSMetric":
        try:
            import lpips
            import torch
        except ImportError as exc:
            raise MetricUnavailable(f"LPIPS needs the lpips package: pip install 'sinkbench[metrics]' ({exc})") from exc
        if net not in TRUNKS:
            raise ValueError(f"LPIPS net {net!r} is not one of {sorted(TRUNKS)}")
        path = trunk_weight_file(net).resolve(trunk)
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)   # heads from the wheel
        state = torch.load(path, map_location="cpu", weights_only=True)
        trunk_module = model.net
        _load_trunk(trunk_module, state, net)
        return cls(model, net=net, trunk=path, device=device)

    @classmethod
    def random(cls, net: str = "alex", seed: int = 0, device: str = "cpu") -> "LPIPSMetric":
        """A random trunk with the shipped heads (tests): the same code path without a weight file."""
        import lpips
        import torch

        torch.manual_seed(seed)
        return cls(lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False), net=net, trunk=None,
                   device=device)

    def identity(self) -> dict[str, Any]:
        return {"metric": self.name, "package": "lpips", "version": metadata.version("lpips"), "net": self.net,
                "trunk": str(self.trunk) if self.trunk else None,
                "trunk_sha256": file_sha256(self.trunk) if self.trunk else "random-init", "heads": "lpips v0.1"}

    def _score_batch(self, images: Sequence[np.ndarray], references: Sequence[Any]) -> np.ndarray:
        import torch

        for a, b in zip(images, references):
            if np.asarray(a).shape != np.asarray(b).shape:
                raise ValueError(f"LPIPS compares images of one size, got {np.asarray(a).shape} and {np.asarray(b).shape}")
        x = to_float_batch(images).to(self.device) * 2 - 1
        y = to_float_batch(references).to(self.device) * 2 - 1
        with torch.inference_mode():
            return self.model(x, y).flatten().float().cpu().numpy()


def _load_trunk(trunk_module, state: dict, net: str) -> None:
    """Copy torchvision's ImageNet feature weights into lpips' sliced trunk (same layers, same order)."""
    import torch

    features = [v for k, v in state.items() if k.startswith("features.")]
    params = [p for p in trunk_module.parameters()]
    if len(features) != len(params):
        raise MetricUnavailable(f"the {net} trunk file does not match lpips' {net} layers "
                                f"({len(features)} tensors vs {len(params)})")
    with torch.no_grad():
        for p, w in zip(params, features):
            if p.shape != w.shape:
                raise MetricUnavailable(f"the {net} trunk file does not match lpips' layers ({tuple(w.shape)} vs {tuple(p.shape)})")
            p.copy_(w)
