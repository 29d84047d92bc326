"""The server's settings: sources, listen addresses, tokens, limits, Redis, from the command line
and a TOML file (the command line wins).

Every bad value raises ``ValueError`` naming the key, the value and what is valid.  A bind on an
address other than loopback without a token is refused (SERVER_PROTOCOLS.md 6.2).

The TOML file (``examples/serve.toml`` documents every key)::

    listen = "127.0.0.1:7780"        # binary protocol (ctpshim://, ctpshims:// with TLS)
    http = "127.0.0.1:7781"          # WebSocket, page, /health, /metrics; "off" = none
    tls_cert = ""                    # PEM certificate (chain) and its key: TLS on both listeners
    tls_key = ""
    home = ""                        # flow files ("" = $CTPSHIM_HOME/serve)
    [sources]                        # name = front address; the first is the default
    sim = "sim://"
    [[tokens]]                       # or tokens = ["secret", "secret2:name"]
    secret = "s3cret"
    name = "alice"
    [limits]                         # any field of Limits
    max_subscriptions = 4000
    [redis]
    url = "redis://127.0.0.1:6379"
    namespace = "ctpshim"
    maxlen = 20000
    instruments = []
    compat = []                      # also publish in these layouts: ctpbee, qaopenmd
    grace = 30                       # s an instrument stays published after its last reader
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import ssl
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

DEFAULT_LISTEN = ("127.0.0.1", 7780)
DEFAULT_HTTP = ("127.0.0.1", 7781)
SOURCE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
TOKEN_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_TOKEN_LENGTH = 8


@dataclass(frozen=True)
class Limits:
    """Per-client limits (SERVER_PROTOCOLS.md 6.3, 6.4)."""

    max_subscriptions: int = 4000  # instruments per client
    control_rate: float = 20.0  # control messages per second per client (token bucket)
    control_burst: int = 50
    max_frame: int = 1 << 20  # bytes, one inbound frame / WebSocket message
    reply_budget: int = 8 << 20  # bytes of replies waiting for a client before it is cut off
    write_deadline: float = 10.0  # s a client may make no write progress before it is cut off
    heartbeat: float = 5.0  # s of idle before the server sends a heartbeat
    max_clients: int = 1000
    connection_rate: int = 10  # new connections per IP address per connection_window (0 = no limit)
    connection_window: float = 1.0  # s


# name -> (kind, low, high): what each limit accepts
_LIMIT_RULES: dict[str, tuple[type, float, float]] = {
    "max_subscriptions": (int, 1, 1_000_000),
    "control_rate": (float, 0.01, 1_000_000.0),
    "control_burst": (int, 1, 1_000_000),
    "max_frame": (int, 1024, 16 << 20),
    "reply_budget": (int, 1024, 1 << 34),
    "write_deadline": (float, 0.05, 3600.0),
    "heartbeat": (float, 0.05, 3600.0),
    "max_clients": (int, 1, 1_000_000),
    "connection_rate": (int, 0, 1_000_000),
    "connection_window": (float, 0.01, 3600.0),
}


@dataclass(frozen=True)
class Token:
    """A client token: ``secret`` is what the client sends, ``name`` names it in logs and metrics."""

    secret: str
    name: str

    def __repr__(self) -> str:  # never print the secret
        return f"Token(name={self.name!r})"


@dataclass(frozen=True)
class RedisSettings:
    url: str
    namespace: str = "ctpshim"
    maxlen: int = 20000
    instruments: tuple[str, ...] = ()
    compat: tuple[str, ...] = ()  # compatibility publishers (ctpshim.server.redis_bus)
    grace: float = 30.0  # s an instrument is still published after its last redis:// reader let go


@dataclass(frozen=True)
class TlsSettings:
    """A PEM certificate (chain) and its unencrypted private key: TLS on both listeners."""

    cert: str
    key: str

    def context(self) -> ssl.SSLContext:
        """A server ``SSLContext`` (TLS 1.2 or later) holding the pair; ``ValueError`` naming the
        file and what is wrong (missing, unreadable, not PEM, encrypted, a key of another certificate)."""
        return server_ssl_context(self.cert, self.key)


@dataclass(frozen=True)
class ServeSettings:
    """Everything ``ctpshim serve`` runs with (see the module docstring)."""

    sources: dict[str, str]  # name -> front address, insertion order; the first is the default
    listen: tuple[str, int] = DEFAULT_LISTEN  # binary protocol; port 0 = any free port
    http: tuple[str, int] | None = DEFAULT_HTTP  # None = off
    tokens: tuple[Token, ...] = ()  # empty = no token needed (loopback binds only)
    limits: Limits = Limits()
    redis: RedisSettings | None = None
    home: str = ""  # "" = $CTPSHIM_HOME/serve
    tls: TlsSettings | None = None  # None = plain TCP / HTTP

    def __post_init__(self) -> None:
        check_settings(self)


# -- single values ------------------------------------------------------------------------------


def parse_address(text: Any, key: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; ``:PORT`` = loopback) -> (host, port)."""
    if isinstance(text, (tuple, list)) and len(text) == 2:
        host, port = text
        text = f"{host}:{port}"
    if not isinstance(text, str) or ":" not in text:
        raise ValueError(f"{key} = {text!r}: expected HOST:PORT, e.g. 127.0.0.1:7780 (port 0 = any free port)")
    host, _, port_text = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ValueError(f"{key} = {text!r}: the port must be a number from 0 to 65535 (0 = any free port)")
    if not re.fullmatch(r"[A-Za-z0-9_.:-]+", host):
        raise ValueError(f"{key} = {text!r}: {host!r} is not a host name or IP address")
    return host, port


def parse_http(text: Any, key: str = "http") -> tuple[str, int] | None:
    """Like :func:`parse_address`, and ``off`` (or ``false``/``none``) for no HTTP endpoint."""
    if text is None or text is False or (isinstance(text, str) and text.strip().lower() in ("off", "none", "false", "no")):
        return None
    return parse_address(text, key)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_token(value: Any, key: str = "token") -> Token:
    """``SECRET`` or ``SECRET:NAME`` (or a TOML table ``{secret=..., name=...}``)."""
    if isinstance(value, Token):
        return value
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"secret", "name"})
        if unknown:
            raise ValueError(f"{key}: unknown key {unknown[0]!r}; valid keys: secret, name")
        secret, name = value.get("secret"), value.get("name")
    elif isinstance(value, str):
        secret, _, name = value.partition(":")
    else:
        raise ValueError(f"{key} = {value!r}: expected 'SECRET' or 'SECRET:NAME'")
    if not isinstance(secret, str) or len(secret) < MIN_TOKEN_LENGTH or any(c.isspace() for c in secret):
        raise ValueError(f"{key}: the secret must be at least {MIN_TOKEN_LENGTH} characters without spaces "
                         f"(got {f'{len(secret)} characters' if isinstance(secret, str) else type(secret).__name__})")
    if not name:
        name = f"token-{_digest(secret)}"
    if not isinstance(name, str) or not TOKEN_NAME.match(name):
        raise ValueError(f"{key}: client name {name!r} is not valid: 1-64 of letters, digits, _ . @ -")
    return Token(secret, name)


def _digest(secret: str) -> str:
    import hashlib

    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def parse_limit(name: str, value: Any, key: str | None = None) -> int | float:
    key = key or f"limits.{name}"
    rule = _LIMIT_RULES.get(name)
    if rule is None:
        raise ValueError(f"{key}: unknown limit {name!r}; valid limits: {', '.join(_LIMIT_RULES)}")
    kind, low, high = rule
    valid = f"{'an integer' if kind is int else 'a number'} from {_plain(low)} to {_plain(high)}"
    if isinstance(value, bool):
        raise ValueError(f"{key} = {value!r}: expected {valid}")
    try:
        number = kind(value) if not isinstance(value, str) else kind(float(value)) if kind is float else int(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{key} = {value!r}: expected {valid}") from None
    if kind is int and isinstance(value, float) and value != int(value):
        raise ValueError(f"{key} = {value!r}: expected {valid}")
    if not low <= number <= high or number != number:
        raise ValueError(f"{key} = {value!r}: expected {valid}")
    return number


def _plain(number: float) -> str:
    return str(int(number)) if number == int(number) else f"{number:g}"


def limit_flag(name: str) -> str:
    """The command-line flag of a limit: ``max_subscriptions`` -> ``--max-subscriptions``."""
    return "--" + name.replace("_", "-")


def parse_limits(values: Mapping[str, Any], base: Limits | None = None, key: str = "limits") -> Limits:
    if not isinstance(values, Mapping):
        raise ValueError(f"{key} = {values!r}: expected a table of limits ({', '.join(_LIMIT_RULES)})")
    changes = {name: parse_limit(name, value, f"{key}.{name}") for name, value in values.items()}
    return dataclasses.replace(base or Limits(), **changes)


def source_name_of(url: str, taken: Iterable[str]) -> str:
    """A front's default name: its scheme (``sim``), ``sim-2`` ... if taken."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    base = re.sub(r"[^A-Za-z0-9_-]", "-", scheme) or "source"
    taken = set(taken)
    if base not in taken:
        return base
    number = 2
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"


def parse_sources(items: Iterable[str] | Mapping[str, str], key: str = "sources") -> dict[str, str]:
    """Front arguments (``URL`` or ``NAME=URL``) or a name -> URL table, in order."""
    sources: dict[str, str] = {}
    pairs: list[tuple[str | None, Any]]
    if isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        pairs = []
        for item in items:
            if not isinstance(item, str):
                raise ValueError(f"{key}: {item!r} is not a front address (expected URL or NAME=URL)")
            head, eq, tail = item.partition("=")
            if eq and "://" not in head:
                pairs.append((head, tail))
            else:
                pairs.append((None, item))
    for name, url in pairs:
        if not isinstance(url, str) or "://" not in url:
            raise ValueError(f"{key}: {url!r} is not a front address: write scheme://..., e.g. sim:// "
                             "(ctpshim schemes lists them)")
        if name is None:
            name = source_name_of(url, sources)
        if not isinstance(name, str) or not SOURCE_NAME.match(name):
            raise ValueError(f"{key}: source name {name!r} is not valid: letters, digits, _ and - only")
        if name in sources:
            raise ValueError(f"{key}: source name {name!r} given twice")
        sources[name] = url
    return sources


COMPAT_PUBLISHERS = ("ctpbee", "qaopenmd")  # [redis] compat: the layouts the publisher can add


def parse_redis(value: Any, key: str = "redis") -> RedisSettings:
    if isinstance(value, RedisSettings):
        return value
    url_key = f"{key}.url"
    if isinstance(value, str):
        value, url_key = {"url": value}, key
    if not isinstance(value, Mapping):
        raise ValueError(f"{key} = {value!r}: expected a redis:// URL or a table "
                         "(url, namespace, maxlen, instruments, compat, grace)")
    valid = {"url", "namespace", "maxlen", "instruments", "compat", "grace"}
    unknown = sorted(set(value) - valid)
    if unknown:
        raise ValueError(f"{key}: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(valid))}")
    url = value.get("url")
    if not isinstance(url, str) or not url.lower().startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"{url_key} = {url!r}: expected redis://host:port[/db] (or rediss://, unix://)")
    namespace = value.get("namespace", "ctpshim")
    if not isinstance(namespace, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", namespace):
        raise ValueError(f"{key}.namespace = {namespace!r}: 1-64 of letters, digits, _ . -")
    maxlen = value.get("maxlen", 20000)
    if isinstance(maxlen, bool) or not isinstance(maxlen, int) or not 1 <= maxlen <= 100_000_000:
        raise ValueError(f"{key}.maxlen = {maxlen!r}: expected an integer from 1 to 100000000")
    instruments = value.get("instruments", ())
    if isinstance(instruments, str):
        instruments = [i for i in re.split(r"[,\s]+", instruments) if i]
    if not isinstance(instruments, (list, tuple)) or not all(isinstance(i, str) and i for i in instruments):
        raise ValueError(f"{key}.instruments = {instruments!r}: expected a list of instrument IDs")
    compat = parse_compat(value.get("compat", ()), f"{key}.compat")
    grace = value.get("grace", 30.0)
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not 0 <= grace <= 3600:
        raise ValueError(f"{key}.grace = {grace!r}: expected seconds from 0 to 3600")
    return RedisSettings(url, namespace, maxlen, tuple(instruments), compat, float(grace))


def parse_compat(value: Any, key: str = "redis.compat") -> tuple[str, ...]:
    """Compatibility publishers: a list or a comma string of :data:`COMPAT_PUBLISHERS` names."""
    names = [c for c in re.split(r"[,\s]+", value) if c] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(c, str) for c in names):
        raise ValueError(f"{key} = {value!r}: expected a list of publishers ({', '.join(COMPAT_PUBLISHERS)})")
    for name in names:
        if name not in COMPAT_PUBLISHERS:
            raise ValueError(f"{key}: unknown publisher {name!r}; valid: {', '.join(COMPAT_PUBLISHERS)}")
    return tuple(dict.fromkeys(names))


class _EncryptedKey(Exception):
    pass


def _no_passphrase() -> bytes:
    raise _EncryptedKey


def _pem_file(path: Any, key: str, marker: bytes, what: str) -> str:
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"{key} = {path!r}: expected the path of a PEM file")
    file = Path(path).expanduser()
    if not file.exists():
        raise ValueError(f"{key} = {path!r}: no such file")
    if not file.is_file():
        raise ValueError(f"{key} = {path!r}: not a file")
    try:
        with file.open("rb") as stream:
            head = stream.read(1 << 20)
    except OSError as exc:
        raise ValueError(f"{key} = {path!r}: cannot be read: {exc.strerror or exc}") from None
    if marker not in head:
        raise ValueError(f"{key} = {path!r}: not a PEM {what} (no '{marker.decode()}' line)")
    return str(file)


def server_ssl_context(cert: str, key: str, cert_key: str = "tls_cert", key_key: str = "tls_key") -> ssl.SSLContext:
    """A server ``SSLContext`` (TLS 1.2+) with the certificate ``cert`` and its private ``key`` (PEM
    files); ``ValueError`` naming the setting, the file and what is wrong."""
    cert_file = _pem_file(cert, cert_key, b"-----BEGIN CERTIFICATE-----", "certificate")
    key_file = _pem_file(key, key_key, b"PRIVATE KEY-----", "private key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
    except _EncryptedKey:
        raise ValueError(f"{key_key} = {key!r}: the key is encrypted with a passphrase; give an unencrypted "
                         "key (openssl pkey -in KEY -out PLAIN.key), readable by this user only") from None
    except ssl.SSLError as exc:
        reason = (exc.reason or "").upper()
        if "KEY_VALUES_MISMATCH" in reason:
            raise ValueError(f"{key_key} = {key!r} is not the key of {cert_key} = {cert!r} "
                             "(the certificate's public key differs)") from None
        if "CA_MD" in reason or "EE_KEY" in reason:
            raise ValueError(f"{cert_key} = {cert!r}: the certificate is too weak for this OpenSSL "
                             f"({exc.reason}); make one with a 2048-bit RSA or an EC key and SHA-256") from None
        raise ValueError(f"{cert_key} = {cert!r} / {key_key} = {key!r}: cannot be loaded as a certificate and "
                         f"its key ({exc.reason or exc}): check that both are intact PEM files") from None
    except OSError as exc:
        raise ValueError(f"{cert_key} = {cert!r} / {key_key} = {key!r}: cannot be read: "
                         f"{exc.strerror or exc}") from None
    return context


def parse_tls(cert: Any, key: Any, cert_key: str = "tls_cert", key_key: str = "tls_key") -> TlsSettings | None:
    """Both files or neither (``None``: no TLS); the pair is loaded once here so a bad one is
    reported at load time."""
    given = lambda value: value not in (None, "")  # noqa: E731
    if not given(cert) and not given(key):
        return None
    if not given(cert):
        raise ValueError(f"{key_key} = {key!r} is given without a certificate (--tls-cert FILE or tls_cert in "
                         "the config file): TLS needs both")
    if not given(key):
        raise ValueError(f"{cert_key} = {cert!r} is given without its key (--tls-key FILE or tls_key in "
                         "the config file): TLS needs both")
    server_ssl_context(cert, key, cert_key, key_key)
    return TlsSettings(str(Path(cert).expanduser()), str(Path(key).expanduser()))


def check_settings(settings: ServeSettings) -> None:
    """The rules across keys: at least one source, no token-less bind beyond loopback."""
    if not settings.sources:
        raise ValueError("sources: none given; name at least one front address, e.g. sim://")
    for name, url in settings.sources.items():
        if not SOURCE_NAME.match(name):
            raise ValueError(f"sources: source name {name!r} is not valid: letters, digits, _ and - only")
    binds = [("listen", settings.listen)] + ([("http", settings.http)] if settings.http else [])
    if not settings.tokens:
        for key, (host, _) in binds:
            if not is_loopback(host):
                raise ValueError(f"{key} = {host}: binding beyond loopback needs at least one token "
                                 "(--token SECRET[:NAME] or [[tokens]] in the TOML file); "
                                 "without tokens bind 127.0.0.1 or ::1")
    names = [token.name for token in settings.tokens]
    if len(set(token.secret for token in settings.tokens)) != len(settings.tokens):
        raise ValueError("tokens: the same secret is given twice")
    if len(set(names)) != len(names):
        raise ValueError("tokens: the same client name is given to two tokens")


# -- the file and the command line --------------------------------------------------------------


def read_toml(path: str | Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    path = Path(path)
    try:
        with path.open("rb") as stream:
            return tomllib.load(stream)
    except FileNotFoundError:
        raise ValueError(f"config = {str(path)!r}: no such file") from None
    except OSError as exc:
        raise ValueError(f"config = {str(path)!r}: cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config = {str(path)!r}: not valid TOML: {exc}") from None


FILE_KEYS = ("sources", "listen", "http", "tokens", "limits", "redis", "home", "tls_cert", "tls_key")


def load_settings(toml_path: str | Path | None = None, *, fronts: Iterable[str] = (),
                  listen: Any = None, http: Any = None, tokens: Iterable[Any] = (), redis: Any = None,
                  limits: Mapping[str, Any] | None = None, home: str | None = None,
                  default_source: str | None = "sim://", tls_cert: str | None = None,
                  tls_key: str | None = None, redis_compat: Any = None) -> ServeSettings:
    """Settings from the TOML file ``toml_path`` (if any), overridden by the command line's values
    (``None``/empty = not given).  Sources: the command line's replace the file's; with none at
    all, ``default_source``.  Tokens: the command line's are added to the file's.  Limits: each
    given one replaces the file's.  ``tls_cert``/``tls_key`` each replace the file's (the pair is
    loaded here, so a bad one is a ``ValueError`` now); ``redis_compat`` replaces ``[redis] compat``."""
    data: dict[str, Any] = read_toml(toml_path) if toml_path is not None else {}
    where = f"{toml_path}: " if toml_path is not None else ""
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise ValueError(f"{where}unknown key {unknown[0]!r}; valid keys: {', '.join(FILE_KEYS)}")
    try:
        fronts = list(fronts)
        if fronts:
            sources = parse_sources(fronts, "FRONT")
        elif "sources" in data:
            if not isinstance(data["sources"], Mapping):
                raise ValueError(f"sources = {data['sources']!r}: expected a table of name = \"front address\"")
            sources = parse_sources(data["sources"], "sources")
        elif default_source:
            sources = parse_sources([default_source])
        else:
            sources = {}
        bind = parse_address(listen, "--listen") if listen is not None else (
            parse_address(data["listen"], "listen") if "listen" in data else DEFAULT_LISTEN)
        if http is not None:
            web = parse_http(http, "--http")
        elif "http" in data:
            web = parse_http(data["http"], "http")
        else:
            web = DEFAULT_HTTP
        file_tokens = data.get("tokens", [])
        if not isinstance(file_tokens, list):
            raise ValueError(f"tokens = {file_tokens!r}: expected a list of \"SECRET[:NAME]\" or [[tokens]] tables")
        all_tokens = tuple([parse_token(t, f"tokens[{i}]") for i, t in enumerate(file_tokens)]
                           + [parse_token(t, "--token") for t in tokens])
        chosen = parse_limits(data.get("limits", {}), key="limits")
        if limits:
            given = {k: v for k, v in limits.items() if v is not None}
            for name in given:
                if name not in _LIMIT_RULES:
                    raise ValueError(f"unknown limit {name!r}; valid limits: {', '.join(_LIMIT_RULES)}")
            chosen = dataclasses.replace(chosen, **{name: parse_limit(name, value, limit_flag(name))
                                                    for name, value in given.items()})
        redis_settings = None
        if redis is not None:
            redis_settings = parse_redis(redis, "--redis")
            if "redis" in data and isinstance(data["redis"], Mapping):
                merged = dict(data["redis"])
                merged["url"] = redis_settings.url
                redis_settings = parse_redis(merged, "redis")
        elif "redis" in data:
            redis_settings = parse_redis(data["redis"], "redis")
        if redis_compat is not None:
            if redis_settings is None:
                raise ValueError("--redis-compat needs --redis URL (or a [redis] url in the config file)")
            redis_settings = dataclasses.replace(redis_settings, compat=parse_compat(redis_compat, "--redis-compat"))
        cert_key = "--tls-cert" if tls_cert is not None else "tls_cert"
        key_key = "--tls-key" if tls_key is not None else "tls_key"
        tls = parse_tls(tls_cert if tls_cert is not None else data.get("tls_cert"),
                        tls_key if tls_key is not None else data.get("tls_key"), cert_key, key_key)
        folder = home if home is not None else data.get("home", "")
        if not isinstance(folder, str):
            raise ValueError(f"home = {folder!r}: expected a folder path")
        return ServeSettings(sources=sources, listen=bind, http=web, tokens=all_tokens, limits=chosen,
                             redis=redis_settings, home=folder, tls=tls)
    except ValueError as exc:
        if where and not str(exc).startswith(where):
            raise ValueError(f"{where}{exc}") from None
        raise
