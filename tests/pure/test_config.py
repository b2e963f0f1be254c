"""The seed list file and the command-line number types."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gossipnet import config
from gossipnet.config import MAX_CONFIG_BYTES, ConfigError, load_seeds
from gossipnet.protocol.wire import Address

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str | bytes, name: str = "config.txt") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_shipped_config_lists_the_six_local_seeds():
    assert load_seeds(REPO / "config.txt") == [Address("127.0.0.1", port) for port in range(8080, 8086)]


def test_comments_and_blank_lines_are_skipped(tmp_path):
    path = write(tmp_path, (
        "# seeds\n"
        "\n"
        "   \n"
        "10.0.0.1:9001\n"
        "  10.0.0.2:9002   # the second one\n"
        "\t# indented comment\n"
        "10.0.0.3:9003#no space before the comment\n"
        "\n"
    ))
    assert load_seeds(path) == [Address("10.0.0.1", 9001), Address("10.0.0.2", 9002), Address("10.0.0.3", 9003)]


def test_order_is_kept_and_last_line_needs_no_newline(tmp_path):
    path = write(tmp_path, "10.0.0.3:9003\r\n10.0.0.1:9001\r\n10.0.0.2:9002")
    assert load_seeds(path) == [Address("10.0.0.3", 9003), Address("10.0.0.1", 9001), Address("10.0.0.2", 9002)]


def test_a_byte_order_mark_is_not_part_of_the_first_line(tmp_path):
    path = tmp_path / "config.txt"  # as Windows Notepad saves it
    path.write_bytes(b"\xef\xbb\xbf10.0.0.1:9001\r\n10.0.0.2:9002\r\n")
    assert load_seeds(path) == [Address("10.0.0.1", 9001), Address("10.0.0.2", 9002)]


def test_a_file_too_big_for_a_seed_list_is_refused_without_reading_it_all(tmp_path):
    path = tmp_path / "config.txt"
    path.write_text("10.0.0.1:9001\n" + "#" * MAX_CONFIG_BYTES)
    with pytest.raises(ConfigError) as caught:
        load_seeds(path)
    assert str(path) in str(caught.value) and "larger than" in str(caught.value)
    with pytest.raises(ConfigError, match="larger than"):
        load_seeds("/dev/zero")  # endless: only the bound ends the read


def test_accepts_str_path(tmp_path):
    path = write(tmp_path, "10.0.0.1:9001\n")
    assert load_seeds(str(path)) == [Address("10.0.0.1", 9001)]


@pytest.mark.parametrize("bad", [
    "127.0.0.1",
    "127.0.0.1:",
    "localhost:8080",
    "127.0.0.1:0",
    "127.0.0.1:65536",
    "0.0.0.0:8080",
    "224.0.0.1:8080",
    "127.0.0.1:8080 127.0.0.1:8081",
    "127.0.0.1:8080,127.0.0.1:8081",
    "seed 127.0.0.1:8080",
    "127.000.0.1:8080",
    "::1:8080",
])
def test_malformed_line_names_file_and_line(tmp_path, bad):
    path = write(tmp_path, f"# header\n127.0.0.1:8080\n\n{bad}\n127.0.0.1:8082\n")
    with pytest.raises(ConfigError) as caught:
        load_seeds(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"{path}:4:" in message


def test_duplicate_seed_is_refused_at_its_second_line(tmp_path):
    path = write(tmp_path, "127.0.0.1:8080\n127.0.0.1:8081\n127.0.0.1:8080  # again\n")
    with pytest.raises(ConfigError) as caught:
        load_seeds(path)
    assert f"{path}:3:" in str(caught.value)
    assert "127.0.0.1:8080" in str(caught.value)


def test_same_ip_different_ports_are_distinct_seeds(tmp_path):
    path = write(tmp_path, "127.0.0.1:8080\n127.0.0.1:8081\n")
    assert len(load_seeds(path)) == 2


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "config.txt"
    with pytest.raises(ConfigError) as caught:
        load_seeds(path)
    assert str(path) in str(caught.value)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_seeds(tmp_path)
    assert str(tmp_path) in str(caught.value)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n   # and another\n"])
def test_file_naming_no_seed(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_seeds(path)
    assert str(path) in str(caught.value)


def test_not_utf8(tmp_path):
    path = write(tmp_path, b"127.0.0.1:8080\n\xff\xfe\n")
    with pytest.raises(ConfigError) as caught:
        load_seeds(path)
    assert str(path) in str(caught.value)


# --- positive_float / positive_int --------------------------------------------------


@pytest.mark.parametrize("text, value", [("1", 1.0), ("0.5", 0.5), ("13", 13.0), ("1e-3", 0.001), (" 2.5 ", 2.5)])
def test_positive_float_accepts(text, value):
    assert config.positive_float(text) == value


@pytest.mark.parametrize("text", ["0", "0.0", "-0", "-1", "-0.5", "nan", "NaN", "inf", "-inf", "Infinity", "1e400",
                                  "abc", "", " ", "1,5", "5s"])
def test_positive_float_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError):
        config.positive_float(text)


@pytest.mark.parametrize("text, value", [("1", 1), ("3", 3), ("10", 10), ("250", 250)])
def test_positive_int_accepts(text, value):
    result = config.positive_int(text)
    assert result == value
    assert type(result) is int


@pytest.mark.parametrize("text", ["0", "00", "-1", "-5", "+0", "nan", "inf", "abc", "", " ", "1.5", "1e3", "2.0",
                                  "0x10"])
def test_positive_int_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError):
        config.positive_int(text)


@pytest.mark.parametrize("kind, text", [
    (config.positive_int, "0"), (config.positive_int, "-3"), (config.positive_int, "\u00b2"),
    (config.positive_float, "0"), (config.positive_float, "nan"), (config.positive_float, "inf"),
])
def test_argparse_reports_bad_numbers_as_usage_errors(kind, text, capsys):
    parser = argparse.ArgumentParser(prog="node")
    parser.add_argument("--value", type=kind)
    with pytest.raises(SystemExit) as caught:
        parser.parse_args(["--value", text])
    assert caught.value.code == 2
    assert "--value" in capsys.readouterr().err


def test_defaults_are_the_reports_numbers():
    settings = config.PeerSettings()
    assert settings.gossip_interval == 5.0
    assert settings.gossip_count == 10
    assert settings.ping_interval == 13.0
    assert settings.ping_misses == 3


@pytest.mark.parametrize("n, need", [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4), (7, 4)])
def test_majority_is_more_than_half(n, need):
    assert config.majority(n) == need
    assert 2 * config.majority(n) > n >= 2 * (config.majority(n) - 1)  # the least that is more than half


# --- The peer's flags -----------------------------------------------------------------


def peer_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="peer")
    config.add_peer_arguments(parser)
    return parser


@pytest.mark.parametrize("settings, rng_seed", [
    (config.PeerSettings(), None),
    (config.PeerSettings(0.1, 7, 1.3, 5, "report", auth=False, repair=False, repair_interval=0.25), 41),
    (config.PeerSettings(gossip_interval=1 / 3, ping_interval=1234567.125, repair_interval=2.5), 0),
    (config.PeerSettings(liveness="icmp"), None),
    (config.PeerSettings(ping_misses=1, liveness="both"), 3),
])
def test_peer_settings_round_trip_through_argv(settings, rng_seed):
    argv = config.peer_argv(settings, rng_seed)
    args = peer_parser().parse_args(argv)
    assert config.peer_settings_from(args) == settings
    assert args.rng_seed == rng_seed


def test_peer_argv_gives_each_value_and_only_the_switches_set():
    argv = config.peer_argv(config.PeerSettings(auth=False))
    assert argv == ["--gossip-interval", "5", "--gossip-count", "10", "--ping-interval", "13", "--ping-misses", "3",
                    "--liveness", "app", "--degree-model", "preferential", "--no-auth"]


def test_no_flags_give_the_default_settings():
    args = peer_parser().parse_args([])
    assert config.peer_settings_from(args) == config.PeerSettings()
    assert args.rng_seed is None


def test_a_scripted_flag_defaults_to_none_and_says_what_happens_instead():
    parser = argparse.ArgumentParser(prog="runner")
    config.add_peer_arguments(parser, ["gossip_interval", "ping_misses"], scripted={"gossip_interval": "--fast: 0.5"})
    assert parser.parse_args([]).gossip_interval is None
    assert parser.parse_args([]).ping_misses == 3
    assert "creates (--fast: 0.5)" in " ".join(parser.format_help().split())
    assert config.peer_settings_from(parser.parse_args([]), ping_interval=1.3) == config.PeerSettings(ping_interval=1.3)


@pytest.mark.parametrize("argv", [["--gossip-count", "1000000000"], ["--gossip-interval", "0"],
                                  ["--ping-misses", "0"], ["--degree-model", "random"], ["--repair-interval", "-1"],
                                  ["--liveness", "ping"]])
def test_peer_flags_refuse_what_a_peer_cannot_run_with(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        peer_parser().parse_args(argv)
    assert caught.value.code == 2
    assert argv[0] in capsys.readouterr().err
