"""``ctpshim serve [FRONT|NAME=FRONT ...]``: serve sources to many clients over the binary protocol
(``ctpshim://``), WebSocket (webctp ``/md/`` ``/td/``, DIFF ``/diff``), a web page and Redis.

Settings come from ``--config FILE`` (TOML, see ``examples/serve.toml``) with the flags over it;
with no front anywhere the source is ``sim://``.  Prints the addresses it listens on, then a
status line; stops cleanly on Ctrl-C or SIGTERM (clients see a disconnect) with exit status 0.
Exit status 2 for bad settings (named, with what is valid), 1 when it cannot listen.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

from . import COMMANDS, argument, require

HELP = COMMANDS["serve"]

# flag -> Limits field; their values are checked by ctpshim.server.settings (one set of rules)
LIMIT_FLAGS = {
    "--max-subscriptions": ("max_subscriptions", "N", "instruments per client (default 4000)"),
    "--control-rate": ("control_rate", "R", "control messages per second per client (default 20)"),
    "--control-burst": ("control_burst", "N", "burst of control messages (default 50)"),
    "--max-frame": ("max_frame", "BYTES", "largest inbound frame / WebSocket message (default 1 MiB)"),
    "--reply-budget": ("reply_budget", "BYTES", "replies waiting for a slow client before it is cut off (default 8 MiB)"),
    "--write-deadline": ("write_deadline", "S", "seconds without write progress before a client is cut off (default 10)"),
    "--heartbeat": ("heartbeat", "S", "idle seconds before a heartbeat (default 5)"),
    "--max-clients": ("max_clients", "N", "connected clients in all (default 1000)"),
    "--connection-rate": ("connection_rate", "N", "new connections per IP address per --connection-window "
                          "(default 10; 0 = no limit)"),
    "--connection-window": ("connection_window", "S", "the window of --connection-rate in seconds (default 1)"),
}


def add_parser(commands: Any) -> argparse.ArgumentParser:
    command = commands.add_parser(
        "serve", help=HELP, description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  ctpshim serve\n"
               "  ctpshim serve sim:// fast='sim://?speed=10' --listen 127.0.0.1:7780\n"
               "  ctpshim serve --config examples/serve.toml --token s3cret-alice:alice --listen 0.0.0.0:7780\n"
               "  ctpshim serve --tls-cert server.pem --tls-key server.key --token s3cret-alice:alice "
               "--listen 0.0.0.0:7780")
    command.add_argument("fronts", nargs="*", metavar="FRONT|NAME=FRONT",
                         help="sources to serve (default: the config file's, else sim://); a source without "
                              "a name is named by its scheme (sim, sim-2, ...); the first is the default")
    command.add_argument("--config", metavar="FILE", help="a TOML file of settings (see examples/serve.toml)")
    command.add_argument("--listen", metavar="HOST:PORT",
                         help="the binary protocol's address (default 127.0.0.1:7780; port 0 = any free port)")
    command.add_argument("--http", metavar="HOST:PORT|off",
                         help="WebSocket, web page, /health and /metrics (default 127.0.0.1:7781)")
    command.add_argument("--token", action="append", default=[], metavar="SECRET[:NAME]",
                         help="a client token (repeat for several); required to bind beyond loopback")
    command.add_argument("--tls-cert", metavar="FILE",
                         help="PEM certificate (chain): TLS on both listeners (ctpshims://, https/wss); needs --tls-key")
    command.add_argument("--tls-key", metavar="FILE", help="the certificate's unencrypted PEM private key")
    command.add_argument("--redis", metavar="URL", help="publish every source's ticks to Redis Streams at URL")
    command.add_argument("--redis-compat", metavar="NAMES",
                         help="with --redis: also publish in these layouts (comma list: ctpbee, qaopenmd)")
    command.add_argument("--home", metavar="DIR", help="where the server keeps flow files (default $CTPSHIM_HOME/serve)")
    for flag, (_, metavar, help_text) in LIMIT_FLAGS.items():
        command.add_argument(flag, metavar=metavar, help=help_text)
    command.add_argument("--status", default="auto", choices=["auto", "live", "log", "off"],
                         help="live: a status line on the terminal (needs rich); log: a log line every "
                              "--status-interval s; auto (default): live on a terminal, else log")
    command.add_argument("--status-interval", type=argument(_interval), metavar="S",
                         help="seconds between status log lines (default 30; the live line: 1)")
    command.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return command


def _interval(text: str) -> float:
    from ...fronts.url import number

    return number(0.05, 86400.0)(text)


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ...server.settings import load_settings

    limits = {name: getattr(args, flag[2:].replace("-", "_")) for flag, (name, _, _) in LIMIT_FLAGS.items()}
    try:
        settings = load_settings(args.config, fronts=args.fronts, listen=args.listen, http=args.http,
                                 tokens=args.token, redis=args.redis, limits=limits, home=args.home,
                                 tls_cert=args.tls_cert, tls_key=args.tls_key, redis_compat=args.redis_compat)
    except ValueError as exc:
        parser.exit(2, f"ctpshim serve: {exc}\n")
    if settings.http is not None:
        require(parser, "aiohttp", "serve", "serve --http (or --http off)")
    if settings.redis is not None:
        require(parser, "redis", "serve", "serve --redis")
    return serve(settings, args.status, args.status_interval, args.verbose, parser)


def serve(settings: Any, status_mode: str, interval: float | None, verbose: bool,
          parser: argparse.ArgumentParser) -> int:
    from ...server.server import Server
    from ...server.status import StatusLine

    server = Server(settings)
    status = StatusLine(server, status_mode, interval)
    _configure_logging(status.log_handler(), verbose)
    stop = threading.Event()
    received: list[str] = []

    def on_signal(number: int, _frame: Any) -> None:
        received.append(signal.Signals(number).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            server.start()
        except ValueError as exc:
            parser.exit(2, f"ctpshim serve: {exc}\n")
        except OSError as exc:
            print(f"ctpshim serve: cannot listen: {exc}", file=sys.stderr)
            return 1
        if not server.addresses():
            print("ctpshim serve: no endpoint could be started (the binary protocol's and the HTTP "
                  "server's modules are missing)", file=sys.stderr)
            return 1
        sources = ", ".join(f"{name} = {url}" for name, url in settings.sources.items())
        for line in server.addresses():
            print(f"listening on {line}", flush=True)
        print(f"sources: {sources} (default: {next(iter(settings.sources))})", flush=True)
        if not settings.tokens:
            print("no tokens: loopback clients only", flush=True)
        status.start()
        while not stop.wait(0.5):
            pass
        status.stop()  # before printing: the live line is cleared first
        print(f"stopping ({received[0] if received else 'stop'}): disconnecting "
              f"{len(server.clients)} client(s)", file=sys.stderr, flush=True)
    finally:
        status.stop()
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("stopped", file=sys.stderr, flush=True)
    return 0


def _configure_logging(handler: logging.Handler, verbose: bool) -> None:
    root = logging.getLogger("ctpshim")
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.addHandler(handler)
    root.propagate = False
