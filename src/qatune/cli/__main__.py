"""`python -m qatune.cli`: the same as the `qatune` command (torchrun and accelerate launch use this form)."""

import sys

from qatune.cli.main import main

sys.exit(main())
