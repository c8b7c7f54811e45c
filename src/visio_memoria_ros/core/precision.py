"""Numeric precision of the torch models on an accelerator: fp32, fp16 or bf16.

One rule for every model (DINOv3, YOLO, the dlib ResNet port): fp32 runs everywhere; fp16 needs
a CUDA device (on a CPU it is refused, except with device ``auto`` on a machine without a GPU,
where it runs fp32 with a warning, so one parameter file serves robots with and without one);
bf16 runs on CUDA and on CPUs (fast where the CPU has bf16 instructions, slow elsewhere).
"""

from __future__ import annotations

import logging

LOG = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "bf16")


def effective_precision(precision: str, device_type: str, *, auto: bool = False) -> str:
    """The precision that runs for ``precision`` on a device of ``device_type`` ('cpu', 'cuda').

    ValueError for an unknown name, and for fp16 off CUDA unless ``auto`` (then 'fp32').
    """
    name = (precision or "fp32").strip().lower()
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
    if name == "fp16" and device_type != "cuda":
        if auto:
            LOG.warning("precision fp16 needs CUDA; device auto found none: running fp32")
            return "fp32"
        raise ValueError(
            f"precision fp16 needs a CUDA device, got {device_type}; use fp32 or bf16 on the CPU"
        )
    return name


def device_type(device: str) -> str:
    """'cuda' for cuda / cuda:N (and auto with a visible GPU), 'mps', else 'cpu'."""
    name = (device or "cpu").strip().lower()
    if name == "auto":
        try:
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            return "cpu"
    if name.startswith("cuda") or name.isdigit():
        return "cuda"
    return "mps" if name.startswith("mps") else "cpu"


__all__ = ["PRECISIONS", "device_type", "effective_precision"]
