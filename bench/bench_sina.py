"""sina:// and tencent:// costs: parsing rates, and the CPU share of polling 1,000 instruments every 0.5 s.

    python bench/bench_sina.py [--seconds S] [--runs R] [--tree DIR]

1. Parse: the real sample lines (Sina's commodity and CFFEX layouts; Tencent's stock layouts
   from tests/samples/stocks) through each parse_statement, in lines/s, next to a same-run
   baseline that only splits each line on its separator.
2. Polling (the machinery both feeds share): a local fake Sina server (its own process, on 127.0.0.1) answers for 1,000 contracts
   and changes every quote on every request; an md API subscribed to all of them polls every
   0.5 s (batches of 50) and receives every tick.  The figure is this process's CPU time over
   wall time, as a share of one core.
Median of R runs.  ``--tree DIR`` runs the same benchmark on another checkout (bench/trees.py):
alternate runs of the two to compare old and new code.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trees import tree_option  # noqa: E402

tree_option()

import argparse  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parent / "tests" / "samples" / "feeds"
STOCK_SAMPLES = HERE.parent / "tests" / "samples" / "stocks"

SERVER = r"""
import asyncio, sys
from aiohttp import web
lines = dict(l.split('=', 1) for l in sys.argv[1].split('|'))
count = [0]
async def handle(request):
    tail = request.match_info['tail']
    symbols = tail.split('list=', 1)[1].split(',')
    count[0] += 1
    out = []
    for s in symbols:
        template = lines['CFFEX' if s[3:5] in ('IF', 'IH', 'IC', 'IM', 'TS', 'TF') or s[3:4] == 'T' and s[4].isdigit() else 'A']
        out.append('var hq_str_%s="%s";\n' % (s, template.replace('VOLUME', str(700000 + count[0]))))
    return web.Response(body=''.join(out).encode('gbk'))
app = web.Application(); app.router.add_get('/{tail:.*}', handle)
async def main():
    runner = web.AppRunner(app); await runner.setup()
    site = web.TCPSite(runner, '127.0.0.1', 0); await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def sample_lines() -> list[tuple[str, str]]:
    from ctpshim.adapters.sina import split_statements

    pairs = []
    for path in sorted(SAMPLES.glob("*.gbk.txt")):
        for symbol, csv in split_statements(path.read_bytes().decode("gbk")):
            if csv and symbol != "sys_auth":
                pairs.append((csv, "IF2612" if csv[0].isdigit() else "rb2701"))
    return pairs


def tencent_lines() -> list[tuple[str, str]]:
    from ctpshim.adapters.tencent import split_statements

    pairs = []
    for path in sorted(STOCK_SAMPLES.glob("tencent_*.gbk.txt")):
        pairs += [(payload, symbol[2:]) for symbol, payload in split_statements(path.read_bytes().decode("gbk"))]
    return pairs


def parse_rate(pairs: list[tuple[str, str]], repeat: int, feed: str = "sina") -> tuple[float, float]:
    import importlib

    parse_statement = importlib.import_module(f"ctpshim.adapters.{feed}").parse_statement
    separator = "~" if feed == "tencent" else ","
    start = time.perf_counter()
    for _ in range(repeat):
        for csv, _instrument in pairs:
            csv.split(separator)
    baseline = len(pairs) * repeat / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(repeat):
        for csv, instrument in pairs:
            parse_statement(csv, instrument)
    return baseline, len(pairs) * repeat / (time.perf_counter() - start)


def contracts(count: int) -> list[str]:
    try:
        from ctpshim.ctp.products import PRODUCTS, format_instrument
    except ModuleNotFoundError:  # a checkout from before the ctp/ package (--tree)
        from ctpshim.products import PRODUCTS, format_instrument  # type: ignore[no-redef]

    ids = []
    for year in (2026, 2027):
        for month in range(1, 13):
            for product in PRODUCTS.values():
                ids.append(format_instrument(product, year, month))
    return ids[:count]


def polling_share(seconds: float) -> tuple[float, int]:
    from ctpshim import mdapi

    rb = "螺纹钢2701,150000,2990.000,2999.000,2968.000,2990.000,2989.000,2990.000,2990.000,2985.000,2983.000,115,90,2375618.000,VOLUME,沪,螺纹钢,2026-08-05,1,,,,,,,,,2985.221,0.000,0,0.000,0,0.000,0,0.000,0,0.000,0,0.000,0,0.000,0,0.000,0"
    cffex = "4520.600,4641.200,4520.000,4621.000,VOLUME,351262341.400,156390.000,4621.000,0.000,5018.800,4106.400,0.000,0.000,4552.800,4562.600,151539.000,4619.400,4,0.000,0,0.000,0,0.000,0,0.000,0,4621.000,2,0.000,0,0.000,0,0.000,0,0.000,0,2026-08-05,15:00:00,100,1,,,,,,,,,4595.148,x"
    server = subprocess.Popen([sys.executable, "-c", SERVER, f"A={rb}|CFFEX={cffex}"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        ids = contracts(1000)

        class Spi(mdapi.CThostFtdcMdSpi):
            def __init__(self, api):
                super().__init__()
                self.api, self.count = api, 0

            def OnFrontConnected(self):
                self.api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 0)

            def OnRspUserLogin(self, *args):
                self.api.SubscribeMarketData([i.encode() for i in ids], len(ids))

            def OnRtnDepthMarketData(self, tick):
                self.count += 1

        api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi("/tmp/ctpshim-bench-sina-")
        spi = Spi(api)
        api.RegisterSpi(spi)
        api.RegisterFront(f"sina://?base_url=http://127.0.0.1:{port}&interval=0.5&batch=50")
        api.Init()
        deadline = time.monotonic() + 30
        while spi.count < 1000 and time.monotonic() < deadline:  # warm up: the first full poll arrived
            time.sleep(0.05)
        cpu, wall, ticks = time.process_time(), time.perf_counter(), spi.count
        time.sleep(seconds)
        share = (time.process_time() - cpu) / (time.perf_counter() - wall)
        delivered = spi.count - ticks
        api.Release()
        return share, delivered
    finally:
        server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tree", help="run on the ctpshim checkout at DIR (see bench/trees.py)")
    parser.add_argument("--only", choices=("parse", "polling"), help="run one part only")
    args = parser.parse_args()
    import ctpshim

    print(f"code: {Path(ctpshim.__file__).parent.parent}")
    if args.only != "polling":
        parse_figures(args.runs)
    if args.only != "parse":
        shares = [polling_share(args.seconds) for _ in range(args.runs)]
        share = statistics.median(s[0] for s in shares)
        ticks = statistics.median(s[1] for s in shares) / args.seconds
        print(f"polling 1,000 instruments every 0.5 s: {share * 100:.1f}% of one core ({ticks:,.0f} ticks/s delivered)")


def parse_figures(runs: int) -> None:
    pairs = sample_lines()
    rates = [parse_rate(pairs, 2000) for _ in range(runs)]
    print(f"{len(pairs)} real sample lines, median of {runs} runs")
    print(f"baseline: split on commas          {statistics.median(r[0] for r in rates):>12,.0f} lines/s")
    print(f"parse_statement                    {statistics.median(r[1] for r in rates):>12,.0f} lines/s")
    stock_pairs = tencent_lines()
    rates = [parse_rate(stock_pairs, 2000, "tencent") for _ in range(runs)]
    print(f"{len(stock_pairs)} Tencent stock sample lines, median of {runs} runs")
    print(f"baseline: split on tildes          {statistics.median(r[0] for r in rates):>12,.0f} lines/s")
    print(f"tencent parse_statement            {statistics.median(r[1] for r in rates):>12,.0f} lines/s")


if __name__ == "__main__":
    main()
