"""`python -m ppdet_gcnet SUBCOMMAND ...` is `ppdet-gcnet SUBCOMMAND ...`."""
import sys

from .commands import main

sys.exit(main())
