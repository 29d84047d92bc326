"""The facade has openctp-ctp 6.7.11's surface: classes, methods, callbacks, constants, aliases,
and the spec it is generated from matches the installed openctp-ctp."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import ctpshim
from ctpshim import mdapi, tdapi

MODULES = {"mdapi": mdapi, "tdapi": tdapi}


def public_names(module: object) -> set[str]:
    return {n for n in dir(module) if n.startswith(("CThostFtdc", "THOST_"))}


@pytest.mark.parametrize("name", ["mdapi", "tdapi"])
def test_every_class_and_constant_of_openctp_exists_with_the_same_value(openctp, name):
    theirs = getattr(openctp, name)
    ours = MODULES[name]
    assert public_names(theirs) == public_names(ours)
    for constant in (n for n in public_names(theirs) if n.startswith("THOST_")):
        assert getattr(ours, constant) == getattr(theirs, constant), constant
        assert type(getattr(ours, constant)) is type(getattr(theirs, constant)), constant


@pytest.mark.parametrize("name", ["mdapi", "tdapi"])
def test_api_and_spi_methods_have_openctps_names_and_parameters(openctp, name):
    theirs, ours = getattr(openctp, name), MODULES[name]
    api, spi = ("CThostFtdcMdApi", "CThostFtdcMdSpi") if name == "mdapi" else ("CThostFtdcTraderApi", "CThostFtdcTraderSpi")
    source = inspect.getsource(theirs)
    import ast

    tree = ast.parse(source)
    for class_name in (api, spi):
        node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
        expected = {
            f.name: [a.arg for a in f.args.args if a.arg != "self"]
            for f in node.body
            if isinstance(f, ast.FunctionDef) and not f.name.startswith("_")
        }
        cls = getattr(ours, class_name)
        for method, params in expected.items():
            assert hasattr(cls, method), f"{class_name}.{method} missing"
            if method in ("CreateFtdcMdApi", "CreateFtdcTraderApi"):
                continue  # *args in openctp too
            ours_params = [p for p in inspect.signature(getattr(cls, method)).parameters if p != "self"]
            assert ours_params == params, f"{class_name}.{method}"
        ours_public = {m for m in vars(cls) if not m.startswith("_")} | {
            m for base in cls.__mro__[1:] for m in vars(base) if m[:1].isupper()
        }
        assert set(expected) <= ours_public


def test_api_version_and_package_version(openctp):
    assert mdapi.CThostFtdcMdApi.GetApiVersion() == openctp.mdapi.CThostFtdcMdApi.GetApiVersion()
    assert tdapi.CThostFtdcTraderApi.GetApiVersion() == openctp.tdapi.CThostFtdcTraderApi.GetApiVersion()
    assert ctpshim.OPENCTP_VERSION == openctp.__version__


def test_long_module_names_are_the_same_modules():
    import ctpshim.thostmduserapi
    import ctpshim.thosttraderapi
    from ctpshim import thostmduserapi, thosttraderapi

    assert thostmduserapi is mdapi and ctpshim.thostmduserapi is mdapi
    assert thosttraderapi is tdapi and ctpshim.thosttraderapi is tdapi


def test_md_and_td_have_separate_but_interchangeable_field_classes():
    assert mdapi.CThostFtdcRspInfoField is not tdapi.CThostFtdcRspInfoField
    assert list(mdapi.CThostFtdcRspInfoField.__annotations__) == list(tdapi.CThostFtdcRspInfoField.__annotations__)


def test_the_facade_modules_hold_the_domains_field_classes():
    # the CTP domain makes ticks of these classes without importing the facade
    from ctpshim.ctp import fields

    assert fields.field_class("mdapi", "CThostFtdcDepthMarketDataField") is mdapi.CThostFtdcDepthMarketDataField
    assert fields.field_class("tdapi", "CThostFtdcInstrumentField") is tdapi.CThostFtdcInstrumentField


def test_api_classes_cannot_be_constructed_directly():
    with pytest.raises(AttributeError, match="No constructor defined - class is abstract"):
        mdapi.CThostFtdcMdApi()
    with pytest.raises(AttributeError, match="abstract"):
        tdapi.CThostFtdcTraderApi()


def test_spi_base_callbacks_do_nothing_and_subclasses_call_the_base_init():
    class Spi(mdapi.CThostFtdcMdSpi):
        def __init__(self):
            super().__init__()

    spi = Spi()
    assert spi.OnFrontConnected() is None
    assert spi.OnRspUserLogin(None, None, 0, True) is None
    mdapi.CThostFtdcMdSpi.__init__(spi)


def test_spec_matches_the_installed_openctp(openctp):
    """The committed spec is what tools/gen_spec.py derives from the installed openctp-ctp."""
    result = subprocess.run([sys.executable, "-m", "ctpshim.tools.gen_spec", "--check"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr + result.stdout


def test_import_ctpshim_loads_no_adapter_aiohttp_or_pyarrow():
    code = (
        "import sys, ctpshim; from ctpshim import mdapi, tdapi; "
        "bad = [m for m in sys.modules if m.startswith(('ctpshim.adapters', 'aiohttp', 'pyarrow', 'openctp_ctp'))]; "
        "print(bad)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
