"""``ctpshim native build|install|uninstall|status|env``: ctpshim's own ``libthostmduserapi_se.so`` and
``libthosttraderapi_se.so`` (CTP 6.7.11's ABI, clients of ``ctpshim serve``) for unmodified C++
programs, openctp-ctp and vnpy_ctp.

    ctpshim native build [--out DIR] [--force]
    ctpshim native install --into openctp|vnpy [--path SITE_PACKAGES]
    ctpshim native uninstall --from openctp|vnpy [--path SITE_PACKAGES]
    ctpshim native status [--path SITE_PACKAGES]
    ctpshim native env [--target openctp|vnpy] [--path SITE_PACKAGES] [-- PROGRAM ARGS...]

Exit status: 0 when done; 1 when the libraries cannot be built, the target is not installed, or an
install/uninstall was refused (an unknown file, a changed original, no permission); 2 for bad usage (an
unknown target, a --path that is not a directory); ``env -- PROGRAM``: the program's own.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import COMMANDS

HELP = COMMANDS.get("native", "ctpshim's native CTP libraries: build, install into openctp-ctp/vnpy_ctp, "
                              "uninstall, status, env")
TARGETS = ("openctp", "vnpy")  # ctpshim.native.install.TARGETS; repeated so --help imports nothing


def _target(text: str) -> str:
    if text not in TARGETS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a target: expected one of {', '.join(TARGETS)}")
    return text


def _directory(text: str) -> str:
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory (give a site-packages directory, e.g. "
                                         f"the output of: python -c 'import sysconfig; "
                                         f"print(sysconfig.get_paths()[\"purelib\"])')")
    return text


def add_parser(commands: Any) -> argparse.ArgumentParser:
    command = commands.add_parser(
        "native", help=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="ctpshim's own CTP libraries (libthostmduserapi_se.so, libthosttraderapi_se.so): CTP 6.7.11's\n"
                    "ABI, talking to `ctpshim serve`. Unmodified C++ programs, openctp-ctp and vnpy_ctp use them\n"
                    "by an installed swap (install/uninstall) or by LD_PRELOAD (env), which changes no installed\n"
                    "file. The front the program registers names the server (tcp://127.0.0.1:7780);\n"
                    "CTPSHIM_NATIVE_FRONT overrides every registered front.",
        epilog="examples:\n"
               "  ctpshim native build\n"
               "  ctpshim native install --into openctp\n"
               "  ctpshim native status\n"
               "  ctpshim native uninstall --from openctp\n"
               "  eval \"$(ctpshim native env)\"\n"
               "  CTPSHIM_NATIVE_FRONT=tcp://127.0.0.1:7780 ctpshim native env -- python my_md.py")
    actions = command.add_subparsers(dest="native_action", metavar="ACTION")
    build = actions.add_parser("build", help="compile the two libraries with the system C++ compiler")
    build.add_argument("--out", metavar="DIR", help="where to build (default $CTPSHIM_NATIVE_DIR or "
                                                    "~/.cache/ctpshim/native/<version>-<layout>)")
    build.add_argument("--force", action="store_true", help="rebuild even when the sources are unchanged")
    install = actions.add_parser("install", help="swap the libraries into an installed openctp-ctp or vnpy_ctp "
                                                 "(the originals are kept beside them)")
    install.add_argument("--into", required=True, type=_target, metavar="openctp|vnpy", help="the package to change")
    uninstall = actions.add_parser("uninstall", help="put back the originals that install kept (checked by sha256)")
    uninstall.add_argument("--from", dest="target", required=True, type=_target, metavar="openctp|vnpy",
                           help="the package to restore")
    status = actions.add_parser("status", help="what each target holds: official, a ctpshim build, unknown; "
                                               "and the preload route")
    env = actions.add_parser("env", help="print the LD_PRELOAD of the preload route (changes no file), "
                                         "or run PROGRAM with it")
    env.add_argument("--target", type=_target, default="openctp", metavar="openctp|vnpy",
                     help="whose library names the preloaded builds take (default openctp)")
    env.add_argument("program", nargs=argparse.REMAINDER, metavar="-- PROGRAM ARGS",
                     help="run PROGRAM with the preload environment instead of printing it")
    for sub in (install, uninstall, status, env):
        sub.add_argument("--path", type=_directory, metavar="SITE_PACKAGES",
                         help="the site-packages directory holding the package (default: this Python's)")
    return command


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    action = getattr(args, "native_action", None)
    if action is None:
        parser.exit(2, "ctpshim native: give an action: build, install, uninstall, status or env\n")
    handler = {"build": _build, "install": _install, "uninstall": _uninstall, "status": _status, "env": _env}[action]
    from ...native.install import NativeInstallError

    try:
        return handler(args, parser)
    except ImportError as exc:  # ctpshim.native.build missing from a broken install
        print(f"ctpshim native {action}: {exc}", file=sys.stderr)
        return 1
    except NativeInstallError as exc:
        print(f"ctpshim native {action}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if type(exc).__name__ == "NativeBuildError":  # ctpshim.native.build's; its message names the fix
            print(f"ctpshim native {action}: cannot build the libraries: {exc}", file=sys.stderr)
            return 1
        raise


def _build(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ...native.build import build

    built = build(Path(args.out) if args.out else None, force=args.force)
    print(f"md library:     {built.md}")
    print(f"trader library: {built.td}")
    print(f"headers:        {built.include}")
    return 0


def _install(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ...native.install import install

    outcome = install(args.into, path=args.path)
    for change in outcome.changes:
        if change.action == "unchanged":
            print(f"{change.path}: already {change.after.describe()}")
        else:
            print(f"{change.path}: {change.before.describe()} -> {change.after.describe()}")
    for note in outcome.notes:
        print(f"note: {note}", file=sys.stderr)
    if outcome.target.manifest_path.exists():
        print(f"originals kept in {outcome.target.originals}")
    path = f" --path {shlex.quote(str(args.path))}" if args.path else ""
    print(f"undo: ctpshim native uninstall --from {args.into}{path}  "
          f"(or pip install --force-reinstall {outcome.target.info.package}=={outcome.target.info.tested_version})")
    return 0


def _uninstall(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ...native.install import uninstall

    outcome = uninstall(args.target, path=args.path)
    for note in outcome.notes:
        print(note)
    for change in outcome.changes:
        if change.action == "restored":
            print(f"{change.path}: {change.before.describe()} -> {change.after.describe()} (sha256 verified)")
        elif not outcome.notes:
            print(f"{change.path}: already {change.after.describe()}")
    return 0


def _status(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ...native.install import status

    for entry in status(args.path):
        if entry.target is None:
            print(f"{entry.name} ({entry.package}): not installed: {entry.problem}")
            continue
        version = f" {entry.version}" if entry.version else ""
        print(f"{entry.name} ({entry.package}{version}) in {entry.target.directory}:")
        for state in entry.files:
            print(f"  {state.path.name}: {state.describe()}")
        for line in entry.originals:
            print(f"  originals: {line}")
        print(f"  preload route: {entry.preload}")
    return 0


def _env(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ...native.install import preload_environment

    program = list(args.program)
    if program and program[0] == "--":
        program = program[1:]
    variables = preload_environment(args.target, path=args.path)
    if not program:
        for name, value in variables.items():
            print(f"export {name}={shlex.quote(value)}")
        return 0
    try:
        done = subprocess.run(program, env={**os.environ, **variables}, check=False)
    except FileNotFoundError:
        parser.exit(2, f"ctpshim native env: program {program[0]!r} not found\n")
    except PermissionError:
        parser.exit(2, f"ctpshim native env: program {program[0]!r} is not executable\n")
    except KeyboardInterrupt:
        return 130
    return done.returncode if done.returncode >= 0 else 128 - done.returncode


# -- ctpshim run --native -------------------------------------------------------------------------

SERVE_START_TIMEOUT = 60.0  # seconds for a started server to print its listening line
SERVE_STOP_TIMEOUT = 10.0  # seconds for it to stop after SIGTERM, then SIGKILL
PROBE_TIMEOUT = 8.0  # a server answers HELLO within 5 s even while its source connects


class NotAServer(Exception):
    """Something answers at the address, but not as a ctpshim server."""


def probe_server(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> Any:
    """A md HELLO to ``host:port``: the server's ``HelloAck`` or ``ErrorInfo``, or ``None`` when nothing
    accepts the connection.  Raises :class:`NotAServer` when something else answers."""
    import socket
    import time

    from ...wire.frames import FrameReader, FrameType, WireError, encode_frame
    from ...wire.handshake import ErrorInfo, Hello, HelloAck, encode_bye
    from ...wire.structs import LAYOUT_ID

    try:
        sock = socket.create_connection((host, port), timeout=min(timeout, 3.0))
    except OSError:
        return None
    deadline = time.monotonic() + timeout
    with sock:
        hello = Hello(api="md", layout=LAYOUT_ID, token=os.environ.get("CTPSHIM_NATIVE_TOKEN", ""),
                      client="ctpshim run --native (probe)")
        try:
            sock.sendall(encode_frame(FrameType.HELLO, hello.encode(), seq=1))
            reader = FrameReader()
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                data = sock.recv(65536)
                if not data:
                    raise NotAServer("it closed the connection without answering the handshake")
                for frame in reader.feed(data):
                    if frame.type == FrameType.HELLO_ACK:
                        ack = HelloAck.decode(frame.payload)
                        try:
                            sock.sendall(encode_frame(FrameType.BYE, encode_bye("probe done"), seq=2))
                        except OSError:
                            pass
                        return ack
                    if frame.type == FrameType.ERROR:
                        return ErrorInfo.decode(frame.payload)
        except WireError as exc:
            raise NotAServer(f"its answer is not the ctpshim protocol ({exc})") from None
        except socket.timeout:
            pass
        except OSError as exc:
            raise NotAServer(f"the connection failed during the handshake ({exc})") from None
    raise NotAServer(f"it did not answer the handshake within {timeout:.0f} s")


def program_command(program: str, program_args: list[str], as_module: bool) -> list[str] | str:
    """The child's argv: a module or a ``.py`` file (or any non-executable file) through this interpreter,
    else the executable itself; or a sentence saying why the program cannot run."""
    import shutil

    if as_module:
        from .run import program_problem

        problem = program_problem(program, True)
        return problem if problem else [sys.executable, "-m", program, *program_args]
    if os.path.isdir(program):
        return f"program {program!r} is a directory (give a .py file, an executable, or -m module.name)"
    if os.path.isfile(program):
        if program.endswith(".py") or not os.access(program, os.X_OK):
            return [sys.executable, program, *program_args]
        return [os.path.abspath(program), *program_args]
    if os.sep not in program:
        found = shutil.which(program)
        if found:
            return [found, *program_args]
    return f"program {program!r} not found (give a .py file, an executable on PATH, or -m module.name)"


def _start_server(front: str, host: str, port: int) -> tuple[Any, tuple[str, int]]:
    """``python -m ctpshim serve FRONT`` on ``host:port``, and the address it printed it listens on."""
    import queue
    import re
    import threading

    command = [sys.executable, "-m", "ctpshim", "serve", front, "--listen", f"{host}:{port}",
               "--http", "off", "--status", "off"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                               start_new_session=True)  # Ctrl-C reaches the program; the server is stopped by us
    lines: "queue.Queue[str | None]" = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, name="ctpshim-serve-stdout", daemon=True).start()
    import time

    deadline = time.monotonic() + SERVE_START_TIMEOUT
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            code = process.wait(timeout=SERVE_STOP_TIMEOUT)
            raise RuntimeError(f"`{' '.join(command)}` exited with status {code} before listening")
        match = re.match(r"listening on ctpshim://\[?([^\]\s]+?)\]?:(\d+)\s*$", line)
        if match:
            print(f"ctpshim run: started `ctpshim serve {front}` on {match.group(1)}:{match.group(2)} "
                  f"(pid {process.pid})", file=sys.stderr, flush=True)
            return process, (match.group(1), int(match.group(2)))
    _stop_server(process)
    raise RuntimeError(f"`{' '.join(command)}` did not listen within {SERVE_START_TIMEOUT:.0f} s")


def _stop_server(process: Any) -> None:
    import signal

    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=SERVE_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        print(f"ctpshim run: the server (pid {process.pid}) did not stop within {SERVE_STOP_TIMEOUT:.0f} s "
              "of SIGTERM: killed", file=sys.stderr)
        process.kill()
        process.wait(timeout=SERVE_STOP_TIMEOUT)


def run_native(args: argparse.Namespace, parser: argparse.ArgumentParser, default_front: str,
               default_serve: str) -> int:
    """``ctpshim run --native``: run the program as a child with the preload environment of the openctp
    target and ``CTPSHIM_NATIVE_FRONT`` naming a ctpshim server: the one answering at ``--serve``, else
    one started (``ctpshim serve FRONT``) for the run and stopped after it.  The program's exit status."""
    from ...api.lifecycle import front_override
    from ...errors import FrontAddressError
    from ...fronts import registry
    from ...native.install import NativeInstallError, preload_environment
    from ...server.settings import parse_address
    from ...wire.handshake import E_BAD_TOKEN, E_MISMATCH, ErrorInfo

    if args.own_fronts:
        parser.exit(2, "ctpshim run: --native and --own-fronts do not go together (with --native the "
                       "program's fronts are replaced by the server's address)\n")
    try:
        front = args.front or front_override() or default_front
        registry.validate_front(front)
    except FrontAddressError as exc:
        parser.exit(2, f"ctpshim run: --front: {exc}\n")
    try:
        host, port = parse_address(args.serve or default_serve, "--serve")
    except ValueError as exc:
        parser.exit(2, f"ctpshim run: {exc}\n")
    command = program_command(args.program, list(args.args), args.module)
    if isinstance(command, str):
        parser.exit(2, f"ctpshim run: {command}\n")
    server = None
    try:
        answer = probe_server(host, port) if port else None
    except NotAServer as exc:
        print(f"ctpshim run --native: something listens at {host}:{port} but is not a ctpshim server: {exc}; "
              f"stop it or give another --serve HOST:PORT (port 0: any free port)", file=sys.stderr)
        return 1
    if isinstance(answer, ErrorInfo):
        if answer.ErrorID in (E_BAD_TOKEN, E_MISMATCH):
            print(f"ctpshim run --native: the ctpshim server at {host}:{port} refused the handshake: "
                  f"{answer.ErrorID} {answer.ErrorMsg}" + ("; set CTPSHIM_NATIVE_TOKEN" if answer.ErrorID ==
                                                           E_BAD_TOKEN else ""), file=sys.stderr)
            return 1
        print(f"ctpshim run --native: using the ctpshim server at {host}:{port} (its default source answers "
              f"{answer.ErrorID} {answer.ErrorMsg} for now)", file=sys.stderr)
    elif answer is not None:
        note = (f"; --front {front} is not used: it names the source of a server started when none answers"
                if args.front else "")
        print(f"ctpshim run --native: using the ctpshim server at {host}:{port} (source {answer.source!r}){note}",
              file=sys.stderr, flush=True)
    try:
        variables = preload_environment("openctp")
    except NativeInstallError as exc:
        print(f"ctpshim run --native: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:
        print(f"ctpshim run --native: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if type(exc).__name__ == "NativeBuildError":
            print(f"ctpshim run --native: cannot build the native libraries: {exc}", file=sys.stderr)
            return 1
        raise
    if answer is None:
        try:
            server, (host, port) = _start_server(front, host, port)
        except RuntimeError as exc:
            print(f"ctpshim run --native: {exc}", file=sys.stderr)
            return 1
    env = {**os.environ, **variables, "CTPSHIM_NATIVE_FRONT": f"tcp://{_host_text(host)}:{port}"}
    try:
        child = subprocess.Popen(command, env=env)
        try:
            code = child.wait()
        except KeyboardInterrupt:  # the program got the same SIGINT: let it finish, bounded
            try:
                code = child.wait(timeout=SERVE_STOP_TIMEOUT)
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                child.kill()
                code = child.wait()
    except OSError as exc:
        print(f"ctpshim run --native: cannot start {command[0]!r}: {exc}", file=sys.stderr)
        code = 2
    finally:
        if server is not None:
            _stop_server(server)
    return code if code >= 0 else 128 - code


def _host_text(host: str) -> str:
    return f"[{host}]" if ":" in host else host
