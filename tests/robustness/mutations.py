"""Hypothesis strategies that damage seed files: byte flips, truncation, insertion, splicing."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st


def fuzz_settings(default: int = 30, most: int | None = None) -> settings:
    """``max_examples`` from ``$CNNKIT_FUZZ_EXAMPLES`` (at most ``most``: harnesses whose
    examples take seconds); derandomised in the default suite."""
    n = int(os.environ.get("CNNKIT_FUZZ_EXAMPLES", default))
    n = min(n, most) if most else n
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=n <= default,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _flip(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for pos, value in edits:
        if out:
            out[pos % len(out)] = value
    return bytes(out)


def _insert(data: bytes, pos: int, chunk: bytes) -> bytes:
    pos = pos % (len(data) + 1)
    return data[:pos] + chunk + data[pos:]


@st.composite
def mutated(draw, seeds: dict[str, bytes], max_edits: int = 8) -> tuple[str, bytes]:
    """``(seed name, damaged bytes)``: one of flip / truncate / insert / splice / combined."""
    names = sorted(seeds)
    name = draw(st.sampled_from(names))
    data = seeds[name]
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "splice", "flip+truncate"]))
    positions = st.integers(0, max(0, len(data) - 1))
    if "flip" in kind:
        # Most damage sits in headers: bias half of the positions to the first 64 bytes.
        pos = st.one_of(st.integers(0, min(63, max(0, len(data) - 1))), positions)
        edits = draw(st.lists(st.tuples(pos, st.integers(0, 255)), min_size=1, max_size=max_edits))
        data = _flip(data, edits)
    if "truncate" in kind:
        data = data[: draw(st.integers(0, len(data)))]
    if kind == "insert":
        chunk = draw(st.binary(min_size=1, max_size=16))
        data = _insert(data, draw(positions), chunk)
    if kind == "splice":
        other = seeds[draw(st.sampled_from(names))]
        cut_a = draw(st.integers(0, len(data)))
        cut_b = draw(st.integers(0, len(other)))
        data = data[:cut_a] + other[cut_b:]
    return f"{name}/{kind}", data
