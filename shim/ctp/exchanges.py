"""The exchanges ctpshim knows: the one list of their IDs and names.

IDs are CTP's ``ExchangeID`` values; names are the exchanges' own Chinese names, as real fronts
answer ``ReqQryExchange`` with them.  The futures exchanges trade at night (some of their
products, see :data:`ctpshim.ctp.products.SESSIONS`); the stock exchanges never do, so their
quotes belong to their calendar date (:class:`ctpshim.ctp.market_data.Stamper`).
"""

from __future__ import annotations

FUTURES_EXCHANGES: dict[str, str] = {
    "SHFE": "上海期货交易所",
    "INE": "上海国际能源交易中心",
    "DCE": "大连商品交易所",
    "CZCE": "郑州商品交易所",
    "CFFEX": "中国金融期货交易所",
    "GFEX": "广州期货交易所",
}

STOCK_EXCHANGES: dict[str, str] = {
    "SSE": "上海证券交易所",
    "SZSE": "深圳证券交易所",
    "BSE": "北京证券交易所",
    "HKEX": "香港交易所",
}

__all__ = ["FUTURES_EXCHANGES", "STOCK_EXCHANGES"]
