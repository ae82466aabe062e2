"""`python -m suprhook ...` is the `suprhook` command."""
import sys

from .receiver.cli import main

sys.exit(main())
