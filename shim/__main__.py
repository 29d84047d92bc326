"""``python -m ctpshim``: the command line (see ``ctpshim --help``)."""

import sys

from ctpshim.tools.cli import main

sys.exit(main())
