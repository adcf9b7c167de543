"""One process of a data-parallel run: ``python -m cnnkit.train.worker JOB.json``.

:func:`cnnkit.train.train_run` with ``devices > 1`` starts this module under
``torch.distributed.run``; each process joins the group and runs the same job (rank 0
writes the run folder). ``JOB.json`` holds ``{"config": {...}, "out": "RUN", "overwrite":
bool}`` for a new run or ``{"resume": "RUN", "overrides": {...}}`` to continue one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cnnkit.train.config import TrainConfig
from cnnkit.train.run import resume_run, train_run


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    if "resume" in job:
        resume_run(job["resume"], overrides=job.get("overrides") or None)
    else:
        config = TrainConfig.from_dict(job["config"])
        train_run(config, job["out"], overwrite=bool(job.get("overwrite")))
    return 0


if __name__ == "__main__":  # pragma: no cover - run by torch.distributed.run
    sys.exit(main(sys.argv[1:]))
