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


def test_in_doubt_auto_times_the_candidates(monkeypatch):
    monkeypatch.setattr(P, "flags_decide", lambda: False)
    seconds = {"fp32": 0.004, "bf16": 0.002}
    p = P.choose_precision("auto", "cpu", probe=lambda c: seconds[c.value])
    assert p.value == "bf16" and p.channels_last
    assert "timed" in p.reason and "bf16 2.0 ms" in p.reason and "fp32 4.0 ms" in p.reason
    seconds = {"fp32": 0.002, "bf16": 0.012}
    assert P.choose_precision("auto", "cpu", probe=lambda c: seconds[c.value]).value == "fp32"
    # Flags that decide are trusted without timing; so is an explicit request.
    monkeypatch.setattr(P, "flags_decide", lambda: True)
    assert "timed" not in P.choose_precision("auto", "cpu", probe=lambda c: 1 / 0).reason
    assert P.choose_precision("fp32", "cpu", probe=lambda c: 1 / 0).value == "fp32"


def test_step_timer_leaves_model_and_rng_untouched():
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Dropout(0.5), nn.Flatten(), nn.Linear(144, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sample = torch.randn(8, 1, 8, 8)
    rng = torch.get_rng_state()
    probe = P.step_timer(model, sample, steps=2)
    for prec in (P.Precision("fp32", True, "cpu", ""), P.Precision("bf16", True, "cpu", "")):
        assert probe(prec) > 0
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_choose_for_model_times_once_per_model_and_shape(monkeypatch):
    from cnnkit.models import create_model

    monkeypatch.setattr(P, "flags_decide", lambda: False)
    calls = []
    real = P.step_timer

    def counting_timer(model, sample, steps=3):
        probe = real(model, sample, steps=1)
        return lambda prec: calls.append(prec.value) or probe(prec)

    monkeypatch.setattr(P, "step_timer", counting_timer)
    monkeypatch.setattr(P, "_PROBED", {})
    model = create_model("lenet5")
    first = P.choose_for_model("auto", "cpu", model, (4, 1, 28, 28))
    again = P.choose_for_model("auto", "cpu", model, (4, 1, 28, 28))
    assert first is again and calls == ["fp32", "bf16"] and "timed" in first.reason
