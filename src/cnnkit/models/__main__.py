"""``python -m cnnkit.models [--markdown | --update docs/models.md]``: the models table."""

from __future__ import annotations

import sys

from cnnkit.models.registry import main

sys.exit(main())
