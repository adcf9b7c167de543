"""Keras' usual recipe on a class-per-folder set: the book's convnet, Adam 1e-3, fixed epochs.

Usage (TensorFlow venv): python keras_folder.py TRAIN TEST EPOCHS  -> one JSON line
"""

import json
import sys

import keras
import numpy as np
from PIL import Image


def _shape(folder: str) -> tuple[int, int, str]:
    first = next(p for p in __import__("pathlib").Path(folder).rglob("*.png"))
    img = Image.open(first)
    return img.height, img.width, "rgb" if img.mode == "RGB" else "grayscale"


def main() -> None:
    train, test, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    h, w, mode = _shape(train)
    common = dict(image_size=(h, w), color_mode=mode, batch_size=32, seed=0, label_mode="int")
    tr, va = keras.utils.image_dataset_from_directory(
        train, validation_split=0.2, subset="both", **common
    )
    te = keras.utils.image_dataset_from_directory(test, shuffle=False, **common)
    k = len(tr.class_names)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((h, w, 3 if mode == "rgb" else 1)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(32, 3, activation="relu", padding="same" if h < 16 else "valid"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, activation="relu", padding="same"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(128, 3, activation="relu", padding="same"),
            keras.layers.Flatten(),
            keras.layers.Dense(k, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(tr, validation_data=va, epochs=epochs, verbose=0)
    _, acc = model.evaluate(te, verbose=0)
    print(
        json.dumps(
            {"test_accuracy": float(acc), "val_images": int(np.sum([len(b[1]) for b in va]))}
        )
    )


if __name__ == "__main__":
    main()
