"""Use cnnkit's fit loop with your own model and a callback, on a named dataset.

python examples/custom_loop.py
"""

from torch import nn

from cnnkit.data import load_dataset
from cnnkit.train import Callback, TrainConfig, fit


class PrintLR(Callback):
    def on_epoch_end(self, state):
        print(f"epoch {state.epoch}: lr {state.history[-1]['lr']:.2e}")


digits = load_dataset("digits")  # scikit-learn's 8x8 digits, uint8 (N, 1, 8, 8)
model = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 8 * 8, 10)
)
n = len(digits)
train = (digits.images[: n * 4 // 5], digits.labels[: n * 4 // 5])
val = (digits.images[n * 4 // 5 :], digits.labels[n * 4 // 5 :])
result = fit(
    model, train, val, TrainConfig(data="digits", epochs=5, batch_size=32), callbacks=[PrintLR()]
)
print(f"validation accuracy {result.history[-1]['val_accuracy']:.3f}")
