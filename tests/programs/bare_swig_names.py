"""Imports the bare SWIG module names, as programs built on the old openctp layout do."""

import thostmduserapi
import thosttraderapi
from openctp_ctp import thostmduserapi as long_name

assert thostmduserapi is long_name
print("modules", thostmduserapi.__name__, thosttraderapi.__name__)
print("version", thostmduserapi.CThostFtdcMdApi.GetApiVersion())
