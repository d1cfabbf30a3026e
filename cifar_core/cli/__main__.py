"""`python -m cifar_core.cli`: the `cifar-lab` command."""

import sys

from cifar_core.cli.main import main

sys.exit(main())
