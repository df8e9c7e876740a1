"""``[user@]host[:port]`` as deployers type it."""

from __future__ import annotations

import pytest

from edgekit.errors import EdgekitError
from edgekit.ssh.target import Target, parse_target


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("jetson", Target(host="jetson")),
        ("192.168.55.1", Target(host="192.168.55.1")),
        ("nvidia@jetson", Target(host="jetson", user="nvidia")),
        ("nvidia@jetson:2222", Target(host="jetson", user="nvidia", port=2222)),
        ("jetson:22", Target(host="jetson", port=22)),
        ("  root@10.0.0.7:65535  ", Target(host="10.0.0.7", user="root", port=65535)),
        ("[::1]:2222", Target(host="::1", port=2222)),
        ("[::1]", Target(host="::1")),
        ("admin@[fe80::1]:1", Target(host="fe80::1", user="admin", port=1)),
        # A bare IPv6 literal has several colons: all of it is the host, no port.
        ("fe80::1", Target(host="fe80::1")),
        # Only the last @ separates the user; a user name may itself contain one.
        ("a@b@host", Target(host="host", user="a@b")),
    ],
)
def test_parse_target(text: str, expected: Target) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "jetson:0",
        "jetson:70000",
        "jetson:65536",
        "jetson:x",
        "jetson:-1",
        "jetson:22x",
        "[::1]:0",
        "[::1]:abc",
        "@jetson",
        "@jetson:22",
        "[::1",
        "root@[fe80::1:22",
        "",
        "   ",
        "root@",
        ":22",
        "[]:22",
    ],
)
def test_parse_target_refuses(text: str) -> None:
    with pytest.raises(EdgekitError) as info:
        parse_target(text)
    message = str(info.value)
    assert "\n" not in message
    assert message.endswith(".")


def test_error_messages_name_the_problem() -> None:
    with pytest.raises(EdgekitError, match="1 to 65535"):
        parse_target("jetson:70000")
    with pytest.raises(EdgekitError, match="empty user"):
        parse_target("@jetson")
    with pytest.raises(EdgekitError, match="never closes"):
        parse_target("[::1:22")
    with pytest.raises(EdgekitError, match="no host"):
        parse_target("root@:22")


@pytest.mark.parametrize(
    "text",
    ["jetson", "nvidia@jetson", "jetson:2222", "nvidia@jetson:2222", "root@10.0.0.7:22"],
)
def test_str_round_trip(text: str) -> None:
    target = parse_target(text)
    assert str(target) == text
    assert parse_target(str(target)) == target


def test_str_of_constructed_targets() -> None:
    assert str(Target(host="jetson")) == "jetson"
    assert str(Target(host="jetson", user="nvidia")) == "nvidia@jetson"
    assert str(Target(host="jetson", port=2222)) == "jetson:2222"
    assert str(Target(host="jetson", user="nvidia", port=2222)) == "nvidia@jetson:2222"


@pytest.mark.parametrize("text", ["[::1]:2222", "root@[fe80::1]:22"])
def test_str_round_trip_ipv6(text: str) -> None:
    target = parse_target(text)
    assert parse_target(str(target)) == target
