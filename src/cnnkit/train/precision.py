"""Choosing the numeric precision and memory layout from the hardware, never by assumption.

Measured on this project's machines (basic_convnet, batch 128): on a Zen 4 CPU with
AVX-512 bf16, bf16 autocast + channels_last trains 1.8x faster than fp32; on an AVX2-only
CPU bf16 autocast is about 6x *slower* and fp32 channels_last is the fast path. So
``auto`` uses bf16 only where the CPU has native bf16 instructions (``avx512_bf16`` or
AMX), fp32 + channels_last elsewhere, and bf16 (or fp16 without bf16) autocast on CUDA.
The choice and its reason are recorded in the run config.
"""

from __future__ import annotations

import copy
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from cnnkit.runs.inference import Precision
from cnnkit.train import distributed


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags from /proc/cpuinfo (empty where unavailable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU model name, e.g. ``AMD EPYC 9R14`` (falls back to platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) below the first one with bf16 dot products.
_ONEDNN_NO_BF16 = frozenset(
    {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"}
)


def onednn_isa_cap() -> str | None:
    """The ISA oneDNN is capped at by ``ONEDNN_MAX_CPU_ISA`` (or ``DNNL_MAX_CPU_ISA``), if any."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return cap.strip().upper() if cap else None


def cpu_has_native_bf16() -> bool:
    """True when the CPU executes bf16 dot products natively (AVX-512 bf16 or AMX).

    A oneDNN ISA cap below AVX512_CORE_BF16 (``ONEDNN_MAX_CPU_ISA=AVX2``, how an AVX2-only
    machine is reproduced on a newer one) turns the native kernels off, so it counts as none.
    """
    if onednn_isa_cap() in _ONEDNN_NO_BF16:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def _isa_text() -> str:
    cap = onednn_isa_cap()
    isa = torch.backends.cpu.get_cpu_capability()
    return f"{isa}, oneDNN capped at {cap}" if cap else isa


def flags_decide() -> bool:
    """Whether the CPU flags settle bf16 vs fp32: an x86 CPU whose flags could be read.

    Elsewhere (ARM, where /proc/cpuinfo lists ``Features``; macOS; Windows) ``auto`` is in
    doubt and, given a probe, times a few steps of each candidate instead.
    """
    return bool(cpu_flags()) and platform.machine().lower() in ("x86_64", "amd64", "i686")


Probe = Callable[["Precision"], float]
_PROBED: dict[Any, Precision] = {}


def choose_precision(
    requested: str = "auto",
    device: str | torch.device = "cpu",
    probe: Probe | None = None,
) -> Precision:
    """Resolve ``requested`` (``auto|fp32|bf16|fp16``) for ``device`` into a :class:`Precision`.

    Args:
        requested: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        device: where training runs.
        probe: seconds per training step of the model under a candidate precision; used by
            ``auto`` on a CPU whose flags do not decide (see :func:`flags_decide`). Without
            it, such a CPU gets fp32 + channels_last (:func:`choose_for_model` builds one).

    Raises:
        ValueError: fp16 requested on a CPU, or an unknown precision.
    """
    dev = torch.device(device).type
    if requested not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be auto, fp32, bf16 or fp16. Received: {requested!r}")
    if dev == "cuda":
        return _cuda_precision(requested)
    if requested == "fp16":
        raise ValueError("precision='fp16' needs a CUDA device; on a CPU use bf16 or fp32")
    isa = _isa_text()
    if requested == "bf16":
        why = "requested" + (
            "" if cpu_has_native_bf16() else " (this CPU has no native bf16: slow)"
        )
        return Precision("bf16", True, "cpu", why)
    if requested == "fp32":
        return Precision("fp32", True, "cpu", f"requested; channels_last for oneDNN ({isa})")
    if probe is not None and not flags_decide():
        return _timed_choice(probe)
    if cpu_has_native_bf16():
        return Precision(
            "bf16",
            True,
            "cpu",
            f"auto: CPU has native bf16 (avx512_bf16/amx), {isa}; bf16 autocast + channels_last",
        )
    return Precision(
        "fp32",
        True,
        "cpu",
        f"auto: CPU has no native bf16 ({isa}), where bf16 emulation is several times slower; "
        "fp32 + channels_last",
    )


def _timed_choice(probe: Probe) -> Precision:
    """Time each CPU candidate with ``probe`` and keep the faster."""
    candidates = [Precision("fp32", True, "cpu", ""), Precision("bf16", True, "cpu", "")]
    seconds = [probe(c) for c in candidates]
    best = min(range(len(candidates)), key=seconds.__getitem__)
    timing = ", ".join(
        f"{c.value} {1000 * t:.1f} ms" for c, t in zip(candidates, seconds, strict=True)
    )
    isa = platform.machine() or "unknown CPU"
    return Precision(
        candidates[best].value,
        True,
        "cpu",
        f"auto: CPU flags do not decide ({isa}); timed training steps with channels_last: "
        f"{timing} per step",
    )


def step_timer(model: torch.nn.Module, sample: torch.Tensor, steps: int = 3) -> Probe:
    """A probe for :func:`choose_precision`: median seconds of a forward + backward step.

    It trains a copy of ``model`` on ``sample`` (a batch of the real shape) and leaves the
    model, its gradients and the random number generators exactly as they were.

    Shape:
        sample: ``(B, C, H, W)`` float, as the model sees it.
    """

    def probe(prec: Precision) -> float:
        m, x = copy.deepcopy(model).train(), sample
        if prec.channels_last and sample.ndim == 4:
            m, x = m.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
        times = []
        with torch.random.fork_rng(devices=[]):
            for _ in range(steps + 1):  # the first step warms up oneDNN's kernel choice
                t0 = time.perf_counter()
                with prec.autocast():
                    out = m(x)
                out.float().square().mean().backward()
                times.append(time.perf_counter() - t0)
        return statistics.median(times[1:])

    return probe


def choose_for_model(
    requested: str, device: str | torch.device, model: torch.nn.Module, batch_shape: tuple
) -> Precision:
    """:func:`choose_precision` that can time ``model`` on batches of ``batch_shape``.

    The timing only happens for ``auto`` on a CPU whose flags do not decide, once per
    model type and batch shape in a process.
    """
    dev = torch.device(device)
    if requested != "auto" or dev.type != "cpu" or flags_decide():
        return choose_precision(requested, dev)
    card = getattr(getattr(model, "card", None), "name", None)
    key = (type(model).__qualname__, card, tuple(batch_shape))
    if key in _PROBED:
        return _PROBED[key]
    sample = torch.randn(batch_shape, generator=torch.Generator().manual_seed(0))
    chosen = choose_precision(requested, dev, step_timer(model, sample))
    _PROBED[key] = _agree_across_ranks(chosen)
    return _PROBED[key]


def _agree_across_ranks(chosen: Precision) -> Precision:
    """In a process group every rank takes rank 0's timed choice (timings differ per rank)."""
    if distributed.rank_world()[1] == 1:
        return chosen
    if distributed.broadcast_flag(chosen.value == "bf16") == (chosen.value == "bf16"):
        return chosen
    value = "fp32" if chosen.value == "bf16" else "bf16"
    return Precision(value, True, "cpu", chosen.reason + f"; {value} as timed on rank 0")


def _cuda_precision(requested: str) -> Precision:
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cuda"
    if requested == "fp32":
        return Precision("fp32", True, "cuda", f"requested ({name})")
    if requested == "fp16":
        return Precision("fp16", True, "cuda", f"requested ({name}); loss scaling on")
    if torch.cuda.is_bf16_supported():
        why = "requested" if requested == "bf16" else "auto: GPU supports bf16"
        return Precision("bf16", True, "cuda", f"{why} ({name})")
    return Precision("fp16", True, "cuda", f"auto: GPU lacks bf16, fp16 with loss scaling ({name})")
