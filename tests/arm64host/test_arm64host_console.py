"""Console parsing: markers (only with this run's nonce), passed-on output, panics."""

from __future__ import annotations

import pytest

from arm64host.console import ConsoleParser, Exited, Feed, InitFailed, Panicked, Ready

NONCE = "0123456789abcdef"
READY = f"ARM64HOST-{NONCE} READY"


def feed_all(parser: ConsoleParser, *chunks: bytes) -> Feed:
    total = Feed()
    for chunk in chunks:
        got = parser.feed(chunk)
        total.output += got.output
        total.events += got.events
    end = parser.finish()
    total.output += end.output
    total.events += end.events
    return total


def test_a_run_gives_ready_output_and_exit_status() -> None:
    got = feed_all(ConsoleParser(NONCE),
                   f"\r\n{READY}\r\nhello\r\nworld\r\n\r\nARM64HOST-{NONCE} EXIT 3\r\n".encode())
    assert got.events == [Ready(), Exited(3)]
    assert got.output == "hello\nworld\n"


def test_the_init_failure_reason_is_reported() -> None:
    parser = ConsoleParser(NONCE)
    got = feed_all(parser, f"ARM64HOST-{NONCE} FAIL mount of 9p share project at /w\n".encode())
    assert got.events == [InitFailed("mount of 9p share project at /w")]
    assert parser.tail[-1] == "init: mount of 9p share project at /w"


def test_a_marker_with_another_nonce_is_output_not_an_event() -> None:
    line = "ARM64HOST-ffffffffffffffff EXIT 0"
    got = feed_all(ConsoleParser(NONCE), f"{READY}\n{line}\n".encode())
    assert got.events == [Ready()]
    assert got.output == line + "\n"


def test_a_marker_after_kernel_text_on_the_same_line_is_found() -> None:
    got = feed_all(ConsoleParser(NONCE),
                   f"{READY}\n[   3.1] random: crng init doneARM64HOST-{NONCE} EXIT 0\n".encode())
    assert got.events == [Ready(), Exited(0)]
    assert got.output == "[   3.1] random: crng init done\n"


def test_a_marker_split_across_chunks_is_found_and_never_output() -> None:
    data = f"{READY}\nprogress ...ARM64HOST-{NONCE} EXIT 42\n".encode()
    parser = ConsoleParser(NONCE)
    outputs = []
    events = []
    for i in range(len(data)):
        got = parser.feed(data[i:i + 1])
        outputs.append(got.output)
        events += got.events
    assert events == [Ready(), Exited(42)]
    assert "".join(outputs) == "progress ...\n"
    assert "ARM64HOST" not in "".join(outputs)


def test_an_incomplete_line_is_passed_on_at_once() -> None:
    parser = ConsoleParser(NONCE)
    parser.feed(f"{READY}\n".encode())
    assert parser.feed(b"tests/a.py ..").output == "tests/a.py .."
    assert parser.feed(b"..").output == ".."
    assert parser.feed(b" [100%]\n").output == " [100%]\n"


def test_text_that_only_starts_like_a_marker_is_passed_on_once_it_diverges() -> None:
    parser = ConsoleParser(NONCE)
    assert parser.feed(b"ARM64HO").output == ""
    assert parser.feed(b"ST-nope").output == "ARM64HOST-nope"


def test_the_poweroff_messages_after_exit_are_not_output() -> None:
    parser = ConsoleParser(NONCE)
    got = feed_all(parser, f"{READY}\nout\nARM64HOST-{NONCE} EXIT 0\n"
                           "[  5.0] reboot: Power down\n".encode())
    assert got.output == "out\n"
    assert parser.tail[-1] == "[  5.0] reboot: Power down"


def test_blank_lines_of_the_command_are_kept() -> None:
    got = feed_all(ConsoleParser(NONCE), f"{READY}\na\n\n\nb\n".encode())
    assert got.output == "a\n\n\nb\n"


def test_a_kernel_panic_is_an_event() -> None:
    got = feed_all(ConsoleParser(NONCE),
                   b"[ 1.0] Kernel panic - not syncing: Attempted to kill init!\n")
    assert got.events == [Panicked("[ 1.0] Kernel panic - not syncing: Attempted to kill init!")]


def test_utf8_split_across_chunks_is_decoded() -> None:
    data = f"{READY}\ngrüße\n".encode()
    split = data.index("ü".encode()) + 1
    got = feed_all(ConsoleParser(NONCE), data[:split], data[split:])
    assert got.output == "grüße\n"


@pytest.mark.parametrize(("status", "expected"), [("0", 0), ("255", 255), ("999", 255)])
def test_exit_status_is_a_byte(status: str, expected: int) -> None:
    got = feed_all(ConsoleParser(NONCE), f"ARM64HOST-{NONCE} EXIT {status}\n".encode())
    assert got.events == [Exited(expected)]


def test_the_tail_keeps_the_last_lines() -> None:
    parser = ConsoleParser(NONCE, tail_lines=3)
    feed_all(parser, b"".join(b"line %d\n" % i for i in range(10)))
    assert list(parser.tail) == ["line 7", "line 8", "line 9"]


def test_crlf_ends_a_line_and_a_lone_carriage_return_is_kept() -> None:
    got = feed_all(ConsoleParser(NONCE), f"{READY}\r\ncollecting ...\rcollected 3\r\n".encode())
    assert got.output == "collecting ...\rcollected 3\n"


def test_a_crlf_split_across_chunks_is_one_line_end() -> None:
    parser = ConsoleParser(NONCE)
    parser.feed(f"{READY}\r\n".encode())
    outputs = [parser.feed(chunk).output for chunk in (b"out\r", b"\n\r", b"\n",
                                                        f"ARM64HOST-{NONCE} EXIT 0\r\n".encode())]
    assert "".join(outputs) == "out\n"
