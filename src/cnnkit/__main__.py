"""``python -m cnnkit`` runs the command line (also what torchrun launches)."""

import sys

from cnnkit.cli.main import main

sys.exit(main())
