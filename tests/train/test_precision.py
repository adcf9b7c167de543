import pytest
import torch

from cnnkit.train import precision as P


@pytest.fixture
def no_isa_cap(monkeypatch):
    """The suite also runs with ONEDNN_MAX_CPU_ISA=AVX2 (an AVX2-only machine reproduced)."""
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)


def test_auto_follows_cpu_flags(monkeypatch, no_isa_cap):
    monkeypatch.setattr(P, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_bf16"}))
    p = P.choose_precision("auto", "cpu")
    assert p.value == "bf16" and p.channels_last and "native bf16" in p.reason
    monkeypatch.setattr(P, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    p = P.choose_precision("auto", "cpu")
    assert p.value == "fp32" and p.channels_last and "no native bf16" in p.reason
    assert p.autocast_dtype is None


def test_explicit_choices_and_errors():
    assert P.choose_precision("bf16", "cpu").autocast_dtype == torch.bfloat16
    assert P.choose_precision("fp32", "cpu").value == "fp32"
    with pytest.raises(ValueError, match="fp16"):
        P.choose_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="precision must be"):
        P.choose_precision("int8", "cpu")


def test_cpu_model_is_text():
    assert isinstance(P.cpu_model(), str) and P.cpu_model()


@pytest.mark.parametrize(
    ("cap", "native"),
    [("AVX2", False), ("avx512_core", False), ("AVX512_CORE_BF16", True), (None, True)],
)
def test_onednn_isa_cap_turns_native_bf16_off(monkeypatch, no_isa_cap, cap, native):
    monkeypatch.setattr(P, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_bf16"}))
    if cap is not None:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    p = P.choose_precision("auto")
    assert (p.value == "bf16") is native
    if cap and not native:
        assert f"oneDNN capped at {cap.upper()}" in p.reason
