"""The floor under bench/serve_binary.py's latency: a bare asyncio server that only writes bytes.

    python bench/serve_floor.py [--runs R] [--clients N] [--instruments N] [--interval S] [--seconds S]
                                [--client-nice N]

No ctpshim at all: every ``--interval`` seconds (default 0.1) a server process writes one frame of
``--instruments`` x 584 bytes (a TICK_BATCH of that many CTP ticks; default 20) to each of ``--clients``
loopback sockets (default 100), one ``transport.write`` per socket, as the ctpshim server does; the clients,
asyncio connections in two processes as in serve_binary.py, read each frame whole.  Latency = the client's
clock when it has the frame, less the moment the burst was due (its interval mark, carried in the frame).
What is left is asyncio, the loopback TCP writes and reads, and the scheduling of three processes on the
machine's cores: the least any Python server doing one write per client per burst can reach here.
Also printed: the server's part, when the burst's last write returned (the bytes are in the receivers'
socket buffers then), and its CPU time per write.
Each figure is the median of R runs (default 3) of S seconds (default 6).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_common import machine, percentile, split  # noqa: E402

HERE = Path(__file__).resolve()
HEAD = struct.Struct("<Id")  # the frame's length after this field, the burst's due time (epoch seconds)
TICK_SIZE = 584


def server_main(clients: str, instruments: str, interval: str, seconds: str) -> None:
    count, step = int(clients), float(interval)

    async def main() -> None:
        writers: list[asyncio.StreamWriter] = []
        everyone = asyncio.Event()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            if len(writers) == count:
                everyone.set()

        listener = await asyncio.start_server(accept, "127.0.0.1", 0)
        print(listener.sockets[0].getsockname()[1], flush=True)
        await asyncio.wait_for(everyone.wait(), 60)
        body = bytes(int(instruments) * TICK_SIZE)
        written: list[float] = []  # per burst: from its due time to the end of the last write
        cpu = time.process_time()
        for _ in range(round(float(seconds) / step)):
            due = (time.time() // step + 1) * step
            await asyncio.sleep(max(0.0, due - time.time()))
            frame = HEAD.pack(8 + len(body), due) + body
            for writer in writers:
                writer.write(frame)
            written.append(time.time() - due)
        cpu = time.process_time() - cpu
        for writer in writers:
            writer.close()
        listener.close()
        kept = written[len(written) // 5:]
        print(json.dumps({"written": kept, "cpu_per_write_us": cpu / max(1, len(written) * count) * 1e6}), flush=True)

    asyncio.run(main())


def clients_main(port: str, count: str) -> None:
    samples: list[float] = []

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", int(port))
        try:
            while True:
                size, due = HEAD.unpack(await reader.readexactly(HEAD.size))
                await reader.readexactly(size - 8)
                samples.append(time.time() - due)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(int(count))))

    asyncio.run(main())
    print(json.dumps(samples[len(samples) // 5:]))  # the first fifth warms up


def run_once(args: argparse.Namespace) -> tuple[list[float], dict[str, Any]]:
    server = subprocess.Popen([sys.executable, str(HERE), "server", str(args.clients), str(args.instruments),
                               str(args.interval), str(args.seconds)], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    port = server.stdout.readline().strip()
    prefix = ["nice", "-n", str(args.client_nice)] if args.client_nice else []
    readers = [subprocess.Popen([*prefix, sys.executable, str(HERE), "clients", port, str(n)], stdout=subprocess.PIPE,
                                text=True) for n in split(args.clients, 2)]
    samples = [s * 1000 for reader in readers for s in json.loads(reader.communicate(timeout=args.seconds + 90)[0])]
    server_side = json.loads(server.communicate(timeout=30)[0])
    return samples, server_side


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--instruments", type=int, default=20, help="ticks per frame (default 20)")
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--client-nice", type=int, default=0, metavar="N", help="run the client processes at nice N")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print("reproduce: python bench/serve_floor.py " + " ".join(sys.argv[1:]))
    measured = [run_once(args) for _ in range(args.runs)]
    runs = [samples for samples, _ in measured]
    p99s = [percentile(run, 99) for run in runs]
    index = sorted(range(len(runs)), key=lambda k: p99s[k])[len(runs) // 2]
    middle = runs[index]
    server_side = measured[index][1]
    written = [w * 1000 for w in server_side["written"]]
    print(f"bare asyncio writes: {args.clients} sockets, a {args.instruments * TICK_SIZE:,}-byte frame each every "
          f"{args.interval:g} s, {len(runs)} runs of {args.seconds:g} s")
    print(f"  p99 {statistics.median(p99s):.2f} ms from the burst's due time to the client having the frame (runs "
          + ", ".join(f"{p:.2f}" for p in p99s) + f"); median run: p50 {percentile(middle, 50):.2f} ms, "
          f"p90 {percentile(middle, 90):.2f} ms, max {max(middle):.2f} ms over {len(middle):,} frames")
    print(f"  the server's part (median run): the burst's last write done p50 {percentile(written, 50):.2f} ms, "
          f"p99 {percentile(written, 99):.2f} ms after its due time; CPU {server_side['cpu_per_write_us']:.1f} us "
          f"per write (user + system)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "server":
        server_main(*sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "clients":
        clients_main(*sys.argv[2:])
    else:
        main()
