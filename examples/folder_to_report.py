"""Train on a folder of class sub-folders and open the report.

python examples/folder_to_report.py path/to/folder runs/my-run
"""

import sys

from cnnkit.report import render_report
from cnnkit.train import TrainConfig, train_run

data, out = sys.argv[1], sys.argv[2]
config = TrainConfig(
    data=data, model="basic_convnet", epochs=10, augment={"rotation_range": 10, "zoom_range": 0.1}
)
result = train_run(config, out)
lo, hi = result.metrics["accuracy_ci"]
print(f"accuracy {result.metrics['accuracy']:.3f} (95% CI {lo:.3f}-{hi:.3f})")
print("report:", render_report(out))
