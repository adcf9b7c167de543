"""The Keras-like summary: shapes against a forward pass, counts, Keras mode, frozen layers."""

from __future__ import annotations

import pytest
import torch

from cnnkit.models import create_model, summary
from cnnkit.models.layers import conv_output_size


def test_basic_convnet_rows_match_the_output_size_formula():
    s = summary(create_model("basic_convnet"))
    convs = [r for r in s.layers if r.type == "Conv2d"]
    h = 28
    expected = []
    for i, c in enumerate((32, 64, 128)):
        h = conv_output_size(h, 3)
        expected.append([c, h, h])
        if i < 2:
            h = conv_output_size(h, 2, 2)
    assert [r.output_shape for r in convs] == expected
    assert [r.params for r in convs] == [320, 18_496, 73_856]
    assert convs[0].mult_adds == 26 * 26 * 32 * 9
    assert s.layers[-1].output_shape == [10] and s.layers[-1].name == "fc"
    assert (s.total_params, s.trainable_params, s.non_trainable_params) == (104_202, 104_202, 0)
    assert sum(r.params for r in s.layers) == s.total_params


@pytest.mark.parametrize("name,shape", [("resnet18", (3, 32, 32)), ("googlenet", (3, 32, 32))])
def test_every_row_shape_matches_a_forward_pass(name, shape):
    model = create_model(name, num_classes=7, input_size=shape).eval()
    seen: dict[str, list[list[int]]] = {}
    hooks = [
        m.register_forward_hook(
            lambda m, i, o, n=n: seen.setdefault(n, []).append(list(o.shape[1:]))
        )
        for n, m in model.named_modules()
        if n and next(m.children(), None) is None
    ]
    with torch.no_grad():
        out = model(torch.rand(1, *shape))
    for h in hooks:
        h.remove()
    s = summary(model)
    assert s.layers[-1].output_shape == list(out.shape[1:]) == [7]
    for row in s.layers:
        assert row.output_shape in seen[row.name], row.name


def test_keras_mode_counts_batchnorm_statistics():
    torch_mode = summary("densenet121")
    keras_mode = summary("densenet121", param_mode="keras")
    assert torch_mode.total_params == 7_978_856
    assert keras_mode.total_params == 8_062_504
    assert keras_mode.trainable_params == 7_978_856
    assert keras_mode.non_trainable_params == 83_648
    assert summary("xception", param_mode="keras").total_params == 22_910_480
    assert summary("mobilenet", param_mode="keras").total_params == 4_253_864
    assert summary("mobilenet_v2", param_mode="keras").total_params == 3_538_984


def test_frozen_layers_are_non_trainable():
    model = create_model("basic_convnet")
    model.features.requires_grad_(False)
    s = summary(model)
    assert s.trainable_params == 11_530 and s.non_trainable_params == 104_202 - 11_530
    rows = {r.name: r for r in s.layers}
    assert rows["features.conv1"].trainable is False and rows["fc"].trainable is True


def test_summary_restores_training_mode_and_to_dict_fields():
    model = create_model("lenet5").train()
    d = summary(model).to_dict()
    assert model.training
    assert {
        "total_params",
        "trainable_params",
        "non_trainable_params",
        "mult_adds",
        "layers",
    } <= set(d)
    assert set(d["layers"][0]) >= {"name", "type", "output_shape", "params", "trainable"}
    assert d["layers"][0]["output_shape"] == [6, 28, 28]


def test_text_table_is_keras_like():
    text = str(summary("basic_convnet"))
    assert 'Model: "basic_convnet"' in text
    assert "features.conv1 (Conv2d)" in text and "(None, 32, 26, 26)" in text
    assert "Total params: 104,202" in text and "Non-trainable params: 0" in text


def test_summary_errors():
    with pytest.raises(ValueError, match="param_mode"):
        summary("lenet5", param_mode="tf")
    with pytest.raises(ValueError, match="too small for alexnet"):
        summary("alexnet", (3, 16, 16))
    with pytest.raises(ValueError, match="input_shape is required"):
        summary(torch.nn.Linear(2, 3))
    assert summary(torch.nn.Linear(2, 3), (2,)).total_params == 9
    with pytest.raises(ValueError, match=r"cannot run on input_shape=\(1, 32, 32\)"):
        summary(create_model("basic_convnet"), (1, 32, 32))  # Dense head built for 28x28
