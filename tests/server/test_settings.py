"""Settings from the command line and the TOML file; every bad value is named with what is valid;
tokens, limits and the rate limiter."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctpshim.server.limits import RateLimiter, tokens_match
from ctpshim.server.settings import (
    Limits,
    RedisSettings,
    ServeSettings,
    Token,
    load_settings,
    parse_address,
    parse_sources,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "serve.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "serve.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    settings = load_settings()
    assert settings.sources == {"sim": "sim://"}
    assert settings.listen == ("127.0.0.1", 7780)
    assert settings.http == ("127.0.0.1", 7781)
    assert settings.tokens == () and settings.redis is None
    assert settings.limits == Limits()


def test_sources_are_named_by_scheme_or_explicitly() -> None:
    assert parse_sources(["sim://", "sim://?seed=2", "fast=sim://?speed=10", "replay:///x"]) == {
        "sim": "sim://", "sim-2": "sim://?seed=2", "fast": "sim://?speed=10", "replay": "replay:///x"}
    # an = inside the query is not a name
    assert parse_sources(["sim://?seed=3"]) == {"sim": "sim://?seed=3"}


@pytest.mark.parametrize("fronts, message", [
    (["nothing"], "'nothing' is not a front address"),
    (["bad name=sim://"], "source name 'bad name' is not valid"),
    (["a=sim://", "a=sim://?seed=2"], "source name 'a' given twice"),
])
def test_bad_sources(fronts: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_settings(fronts=fronts)


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:0", ("127.0.0.1", 0)), (":7000", ("127.0.0.1", 7000)), ("[::1]:7000", ("::1", 7000)),
    ("localhost:1", ("localhost", 1)),
])
def test_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text, "--listen") == expected


@pytest.mark.parametrize("text, message", [
    ("7780", "--listen = '7780': expected HOST:PORT"),
    ("127.0.0.1:99999", "the port must be a number from 0 to 65535"),
    ("127.0.0.1:x", "the port must be a number"),
    ("a b:1", "is not a host name"),
])
def test_bad_addresses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_settings(listen=text)


def test_http_off() -> None:
    assert load_settings(http="off").http is None


def test_binding_beyond_loopback_needs_a_token() -> None:
    with pytest.raises(ValueError, match="listen = 0.0.0.0: binding beyond loopback needs at least one token"):
        load_settings(listen="0.0.0.0:7780")
    with pytest.raises(ValueError, match="http = 192.168.1.5: binding beyond loopback"):
        load_settings(http="192.168.1.5:80")
    settings = load_settings(listen="0.0.0.0:7780", tokens=["s3cret-alice:alice"])
    assert settings.tokens == (Token("s3cret-alice", "alice"),)
    assert "s3cret" not in repr(settings.tokens)


@pytest.mark.parametrize("token, message", [
    ("short", "at least 8 characters"),
    ("has space x:y", "without spaces"),
    ("longenough:bad name", "client name 'bad name' is not valid"),
])
def test_bad_tokens(token: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_settings(tokens=[token])


def test_a_token_without_a_name_gets_one_that_does_not_show_the_secret() -> None:
    (token,) = load_settings(tokens=["abcdefgh12345"]).tokens
    assert token.name.startswith("token-") and "abcdefgh" not in token.name


def test_duplicate_tokens_are_refused() -> None:
    with pytest.raises(ValueError, match="same secret"):
        load_settings(tokens=["abcdefgh:a", "abcdefgh:b"])
    with pytest.raises(ValueError, match="same client name"):
        load_settings(tokens=["abcdefgh:a", "12345678:a"])


def test_limits_from_flags() -> None:
    limits = load_settings(limits={"max_subscriptions": 10, "control_rate": "5.5", "write_deadline": None}).limits
    assert limits.max_subscriptions == 10 and limits.control_rate == 5.5
    assert limits.write_deadline == Limits().write_deadline


@pytest.mark.parametrize("name, value, message", [
    ("max_subscriptions", 0, "--max-subscriptions = 0: expected an integer from 1 to 1000000"),
    ("max_subscriptions", 1.5, "expected an integer"),
    ("control_rate", "fast", "--control-rate = 'fast': expected a number"),
    ("max_frame", 10, "from 1024 to"),
    ("heartbeat", True, "expected a number"),
    ("nonsense", 1, "unknown limit 'nonsense'; valid limits: max_subscriptions"),
])
def test_bad_limits(name: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_settings(limits={name: value})


def test_the_example_file_loads() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.sources == {"sim": "sim://?hours=always"}
    assert settings.limits == Limits()
    assert settings.listen == ("127.0.0.1", 7780) and settings.http == ("127.0.0.1", 7781)


def test_a_toml_file_and_the_command_line_over_it(tmp_path: Path) -> None:
    path = write(tmp_path, """
listen = "127.0.0.1:9000"
http = "off"
tokens = ["abcdefgh:short-form"]
[sources]
a = "sim://"
b = "sim://?seed=2"
[[tokens]]
secret = "s3cret-alice"
name = "alice"
[limits]
max_subscriptions = 7
[redis]
url = "redis://127.0.0.1:6379"
namespace = "ns"
instruments = ["rb2705"]
""".replace('tokens = ["abcdefgh:short-form"]\n', ""))
    settings = load_settings(path)
    assert settings.sources == {"a": "sim://", "b": "sim://?seed=2"}
    assert settings.listen == ("127.0.0.1", 9000) and settings.http is None
    assert settings.tokens == (Token("s3cret-alice", "alice"),)
    assert settings.limits.max_subscriptions == 7
    assert settings.redis == RedisSettings("redis://127.0.0.1:6379", "ns", 20000, ("rb2705",))
    over = load_settings(path, fronts=["sim://?seed=9"], listen="127.0.0.1:0", http="127.0.0.1:0",
                         tokens=["12345678:bob"], limits={"max_subscriptions": 9}, redis="redis://h:1")
    assert over.sources == {"sim": "sim://?seed=9"}
    assert over.listen == ("127.0.0.1", 0) and over.http == ("127.0.0.1", 0)
    assert [t.name for t in over.tokens] == ["alice", "bob"]
    assert over.limits.max_subscriptions == 9
    assert over.redis == RedisSettings("redis://h:1", "ns", 20000, ("rb2705",))


@pytest.mark.parametrize("text, message", [
    ("listen = 5", "listen = 5: expected HOST:PORT"),
    ("colour = 'red'", "unknown key 'colour'; valid keys: sources, listen"),
    ("sources = 'sim://'", "sources = 'sim://': expected a table"),
    ("[limits]\nmax_clients = -1", "limits.max_clients = -1: expected an integer from 1"),
    ("[limits]\nspeed = 1", "unknown limit 'speed'"),
    ("[redis]\nurl = 'http://x'", "redis.url = 'http://x': expected redis://"),
    ("[redis]\nurl = 'redis://x'\nmaxlen = 0", "redis.maxlen = 0"),
    ("[[tokens]]\nsecret = 'abcdefghij'\nrole = 'x'", "unknown key 'role'"),
    ("this is not toml", "not valid TOML"),
])
def test_bad_files_name_the_file_the_key_and_what_is_valid(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=message) as info:
        load_settings(path)
    assert str(path) in str(info.value)


def test_a_missing_file() -> None:
    with pytest.raises(ValueError, match="no such file"):
        load_settings("/nonexistent/serve.toml")


def test_settings_made_directly_are_checked_too() -> None:
    with pytest.raises(ValueError, match="none given"):
        ServeSettings(sources={})
    with pytest.raises(ValueError, match="binding beyond loopback"):
        ServeSettings(sources={"sim": "sim://"}, listen=("0.0.0.0", 1))


def test_tokens_match() -> None:
    assert tokens_match("s3cret", "s3cret")
    assert not tokens_match("s3cre", "s3cret") and not tokens_match("", "s3cret")
    assert not tokens_match("s3creu", "s3cret")
    assert tokens_match("日本語テキスト", "日本語テキスト")


def test_rate_limiter_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=10.0, burst=3, clock=lambda: now[0])
    assert [limiter.allow() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.1  # one token back
    assert [limiter.allow(), limiter.allow()] == [True, False]
    now[0] += 100.0  # never more than the burst
    assert sum(limiter.allow() for _ in range(10)) == 3
    with pytest.raises(ValueError):
        RateLimiter(0, 1)


def test_a_bad_redis_url_on_the_command_line() -> None:
    with pytest.raises(ValueError, match=r"^--redis = 'http://x': expected redis://host:port"):
        load_settings(redis="http://x")


def test_redis_compat_and_grace_from_the_file_and_the_command_line(tmp_path: Path) -> None:
    from ctpshim.server.settings import load_settings

    config = tmp_path / "serve.toml"
    config.write_text('[redis]\nurl = "redis://127.0.0.1:6379"\ncompat = ["ctpbee"]\ngrace = 5\n', encoding="utf-8")
    redis = load_settings(config).redis
    assert redis is not None and redis.compat == ("ctpbee",) and redis.grace == 5.0
    assert load_settings(config, redis_compat="qaopenmd,ctpbee").redis.compat == ("qaopenmd", "ctpbee")
    assert load_settings(fronts=["sim://"], redis="redis://127.0.0.1:6379").redis.compat == ()
    with pytest.raises(ValueError, match="--redis-compat: unknown publisher 'x'; valid: ctpbee, qaopenmd"):
        load_settings(config, redis_compat="x")
    with pytest.raises(ValueError, match="--redis-compat needs --redis URL"):
        load_settings(fronts=["sim://"], redis_compat="ctpbee")
    config.write_text('[redis]\nurl = "redis://127.0.0.1:6379"\ngrace = -1\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"redis.grace = -1: expected seconds from 0 to 3600"):
        load_settings(config)
