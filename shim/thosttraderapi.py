"""openctp-ctp's long name for :mod:`ctpshim.tdapi`: the very same module object."""

import sys

from . import tdapi

sys.modules[__name__] = tdapi
