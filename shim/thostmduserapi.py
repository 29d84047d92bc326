"""openctp-ctp's long name for :mod:`ctpshim.mdapi`: the very same module object."""

import sys

from . import mdapi

sys.modules[__name__] = mdapi
