"""CTP 6.7.8's error table: the numbers and texts a ctpshim front answers with."""

from __future__ import annotations

import pytest

from ctpshim.ctp.error_codes import all_errors, by_code, error
from ctpshim.ctp.fields import char_limit

# What SIM_TRADING.md's reject table relies on, name -> number (CTP 6.7.8).
REJECTS = {
    "NONE": 0, "BAD_FIELD": 15, "INSTRUMENT_NOT_FOUND": 16, "INSTRUMENT_NOT_TRADING": 17,
    "DUPLICATE_ORDER_REF": 22, "DUPLICATE_ORDER_ACTION_REF": 24, "ORDER_NOT_FOUND": 25,
    "INSUITABLE_ORDER_STATUS": 26, "UNSUPPORTED_FUNCTION": 27, "OVER_CLOSE_POSITION": 30,
    "INSUFFICIENT_MONEY": 31, "SETTLEMENT_INFO_NOT_CONFIRMED": 42, "OVER_CLOSETODAY_POSITION": 50,
    "OVER_CLOSEYESTERDAY_POSITION": 51, "BAD_PRICE_VALUE": 95, "ORDER_FREQ_LIMIT": 116,
    "EXCHANGE_ID_IS_MISSING": 147, "EXCHANGE_ID_IS_INVALID": 148, "EXCHANGE_ID_IS_WRONG": 150,
}


def test_the_table_is_6_7_8s_with_270_distinct_codes_and_names() -> None:
    errors = all_errors()
    assert len(errors) == 270
    assert len({e.code for e in errors}) == 270 and len({e.name for e in errors}) == 270


@pytest.mark.parametrize("name, code", sorted(REJECTS.items(), key=lambda item: item[1]))
def test_the_codes_a_counter_rejects_with(name: str, code: int) -> None:
    assert error(name).code == code
    assert by_code(code) == error(name)


def test_texts_read_as_ctp_sends_them_and_fit_error_msg() -> None:
    assert error("NONE").message == "CTP:正确"
    assert error("SETTLEMENT_INFO_NOT_CONFIRMED").message == "CTP:结算结果未确认"
    limit = char_limit("CThostFtdcRspInfoField", "ErrorMsg")
    too_long = [e.name for e in all_errors() if len(e.message.encode("gb18030")) > limit]
    assert not too_long


def test_an_unknown_name_says_which_names_are_close_and_an_unknown_code_is_none() -> None:
    with pytest.raises(ValueError, match="'INSUFFICIENT_MONY' is not one of CTP's 270 error names; did you mean INSUFFICIENT_MONEY"):
        error("INSUFFICIENT_MONY")
    assert by_code(99999) is None
