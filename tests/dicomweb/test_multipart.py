"""Tests for the streaming multipart/related codec (no Django, no database needed)."""

from __future__ import annotations

import hashlib
import io
import random
import tracemalloc
from collections.abc import Iterator

import pytest

from dicomweb.multipart import (
    MAX_HEADER_BYTES,
    BodyTooLarge,
    MultipartError,
    Part,
    Window,
    encode_parts,
    iter_parts,
    new_boundary,
)

BOUNDARY = "archway-test-boundary-0123456789"
BB = BOUNDARY.encode()


class TrickleStream:
    """Returns at most ``step`` bytes per read, whatever was asked for, and counts bytes read."""

    def __init__(self, data: bytes, step: int = 1) -> None:
        self._data = data
        self._pos = 0
        self._step = step
        self.bytes_read = 0
        self.largest_request = 0

    def read(self, n: int = -1) -> bytes:
        self.largest_request = max(self.largest_request, n)
        size = self._step if n < 0 else min(n, self._step)
        out = self._data[self._pos : self._pos + size]
        self._pos += len(out)
        self.bytes_read += len(out)
        return out


class GeneratedStream:
    """A body of ``len(head) + block_count * len(block) + len(tail)`` bytes made on the fly.

    Only ``block`` is ever held in memory, so a 200 MB body costs 1 MiB.
    """

    def __init__(self, head: bytes, block: bytes, block_count: int, tail: bytes) -> None:
        self._pending = iter([memoryview(head), *([memoryview(block)] * block_count), memoryview(tail)])
        self._current = memoryview(b"")
        self.bytes_read = 0

    def read(self, n: int = -1) -> bytes:
        while not len(self._current):
            nxt = next(self._pending, None)
            if nxt is None:
                return b""
            self._current = nxt
        out = self._current if n < 0 else self._current[:n]
        self._current = self._current[len(out) :]
        self.bytes_read += len(out)
        return out.tobytes()


def tricky_bytes() -> bytes:
    """Binary data full of near-delimiters that must be kept as body data."""
    return b"".join(
        [
            b"\x00\x01\r\nA",
            b"--" + BB + b"\r\n",  # the boundary, but not preceded by a line break
            b"x\n--" + BB + b"X\r\n",  # LF--boundary followed by a non-blank: data
            b"\r\n--" + BB + b"-x",  # looks like the start of a close delimiter
            b"\r\n--" + BB[:-1] + b"\r\n",  # a truncated boundary
            b"\r\r\n\n\r",
            bytes(range(256)),
            b"\r\n-",
            b"--",
            b"\r",
        ]
    )


def sample_parts() -> list[tuple[dict[str, str], bytes]]:
    rng = random.Random(1234)
    return [
        ({"Content-Type": "application/dicom"}, tricky_bytes()),
        ({"Content-Type": "application/dicom", "Content-Location": "/studies/1.2.3"}, rng.randbytes(5000)),
        ({"Content-Type": "application/octet-stream"}, b""),
        ({"Content-Type": "application/dicom+json"}, b'{"00080016": {"vr": "UI"}}\r\n'),
        ({}, b"\r\n"),
    ]


def encoded_sample(boundary: str = BOUNDARY) -> bytes:
    parts = [(headers, [body[:7], body[7:]]) for headers, body in sample_parts()]
    return b"".join(encode_parts(parts, boundary))


def collect(parts: Iterator[Part]) -> list[tuple[dict[str, str], bytes, int]]:
    """Read every part while it is current (the generator closes it on advance)."""
    return [(p.headers, p.file.read(), p.size) for p in parts]


def expected_sample() -> list[tuple[dict[str, str], bytes, int]]:
    return [({k.lower(): v for k, v in h.items()}, body, len(body)) for h, body in sample_parts()]


# --- round trips and chunking -------------------------------------------------------------------


def test_round_trip_preserves_headers_and_binary_bodies() -> None:
    parts = list(iter_parts(io.BytesIO(encoded_sample()), BOUNDARY))
    try:
        assert [p.headers for p in parts] == [e[0] for e in expected_sample()]
        assert parts[1].content_type == "application/dicom"
        assert parts[1].content_location == "/studies/1.2.3"
        assert parts[0].content_location is None
    finally:
        for p in parts:
            p.file.close()
    assert collect(iter_parts(io.BytesIO(encoded_sample()), BOUNDARY)) == expected_sample()


@pytest.mark.parametrize("chunk_size", range(1, 18))
def test_every_chunk_size_splits_boundary_at_every_position(chunk_size: int) -> None:
    body = encoded_sample()
    assert collect(iter_parts(io.BytesIO(body), BOUNDARY, chunk_size=chunk_size)) == expected_sample()


@pytest.mark.parametrize("step", [1, 2, 3, 5, 8, 13])
def test_stream_returning_fewer_bytes_than_asked(step: int) -> None:
    stream = TrickleStream(encoded_sample(), step=step)
    assert collect(iter_parts(stream, BOUNDARY, chunk_size=4096)) == expected_sample()


def test_reads_are_never_larger_than_chunk_size() -> None:
    stream = TrickleStream(encoded_sample(), step=10**9)
    assert collect(iter_parts(stream, BOUNDARY, chunk_size=100)) == expected_sample()
    assert stream.largest_request == 100


# --- in place: parts as windows onto the spooled body -------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 5, 17, 4096])
def test_in_place_parts_equal_spooled_parts(chunk_size: int) -> None:
    body = io.BytesIO(b"preamble\r\n" + encoded_sample() + b"epilogue")
    parts = iter_parts(body, BOUNDARY, chunk_size=chunk_size, in_place=True)
    assert collect(parts) == expected_sample()


def test_in_place_consumer_may_move_the_file_position() -> None:
    """A consumer that seeks around (a DICOM parser does) does not disturb the parser."""
    body = io.BytesIO(encoded_sample())
    seen = []
    for part in iter_parts(body, BOUNDARY, chunk_size=8, in_place=True):
        body.seek(0)  # what a careless consumer might do to the shared file
        part.file.seek(0, io.SEEK_END)
        assert part.file.tell() == part.size
        part.file.seek(0)
        seen.append((part.headers, part.file.read(), part.size))
    assert seen == expected_sample()


def test_window_reads_small_and_large_within_its_bounds() -> None:
    data = bytes(range(256)) * 1000
    window = Window(io.BytesIO(b"x" * 100 + data + b"y" * 100), 100, len(data))
    assert window.read(4) == data[:4]  # from the read-ahead block
    assert window.read(3) == data[4:7]
    window.seek(70_000)
    assert window.read(10) == data[70_000:70_010]  # past the first block
    window.seek(-5, io.SEEK_END)
    assert window.read(100) == data[-5:]  # never past the window
    assert window.read(1) == b""
    window.seek(2)
    buffer = bytearray(50_000)
    assert window.readinto(buffer) == 50_000 and buffer == data[2:50_002]
    window.seek(0)
    assert window.read() == data


def test_yielded_file_is_positioned_at_start_and_small_parts_stay_in_memory() -> None:
    for part in iter_parts(io.BytesIO(encoded_sample()), BOUNDARY):
        assert part.file.tell() == 0
        assert part.file._rolled is False  # type: ignore[attr-defined]


def test_spool_memory_zero_spills_every_part_to_disk(tmp_path) -> None:
    seen = []
    for part in iter_parts(
        io.BytesIO(encoded_sample()), BOUNDARY, spool_memory_bytes=0, spool_dir=str(tmp_path)
    ):
        assert part.file._rolled is True  # type: ignore[attr-defined]
        assert part.file.name is not None
        seen.append(part.file.read())
    assert seen == [e[1] for e in expected_sample()]


# --- lenient input -------------------------------------------------------------------------------


def test_preamble_and_epilogue_are_ignored() -> None:
    body = (
        b"This is a preamble.\r\n--" + BB + b"X is not a delimiter\r\n"
        b"--" + BB + b"\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        b"--" + BB + b"--\r\nThis is the epilogue.\r\n--" + BB + b"\r\nX: y\r\n\r\nnot a part\r\n"
    )
    assert collect(iter_parts(io.BytesIO(body), BOUNDARY, chunk_size=7)) == [
        ({"content-type": "text/plain"}, b"hello", 5)
    ]


def test_leading_crlf_before_first_delimiter() -> None:
    body = b"\r\n--" + BB + b"\r\nA: 1\r\n\r\nbody\r\n--" + BB + b"--"
    assert collect(iter_parts(io.BytesIO(body), BOUNDARY)) == [({"a": "1"}, b"body", 4)]


def test_epilogue_is_not_read() -> None:
    head = b"--" + BB + b"\r\nA: 1\r\n\r\nbody\r\n--" + BB + b"--\r\n"
    stream = GeneratedStream(head, b"epilogue " * 1000, 1000, b"")
    assert collect(iter_parts(stream, BOUNDARY, chunk_size=1024)) == [({"a": "1"}, b"body", 4)]
    assert stream.bytes_read <= len(head) + 1024


def test_lf_only_line_endings() -> None:
    body = (
        b"--" + BB + b"\nContent-Type: application/dicom\nContent-Location: a\n\nfirst\n"
        b"--" + BB + b"\n\nsecond\r\n\n--" + BB + b"--\n"
    )
    for chunk_size in (1, 3, 1024):
        assert collect(iter_parts(io.BytesIO(body), BOUNDARY, chunk_size=chunk_size)) == [
            ({"content-type": "application/dicom", "content-location": "a"}, b"first", 5),
            ({}, b"second\r\n", 8),
        ]


def test_lf_boundary_inside_a_line_is_data() -> None:
    data = b"abc--" + BB + b"\r\ndef\n--" + BB + b"x\r\n\r--" + BB + b"\r\n"
    body = b"--" + BB + b"\r\n\r\n" + data + b"\r\n--" + BB + b"--"
    assert collect(iter_parts(io.BytesIO(body), BOUNDARY, chunk_size=5)) == [({}, data, len(data))]


def test_transport_padding_after_delimiters() -> None:
    body = b"--" + BB + b" \t \r\nA: 1\r\n\r\none\r\n--" + BB + b"\t\nA: 2\n\ntwo\r\n--" + BB + b"--  \r\n"
    assert collect(iter_parts(io.BytesIO(body), BOUNDARY, chunk_size=2)) == [
        ({"a": "1"}, b"one", 3),
        ({"a": "2"}, b"two", 3),
    ]


def test_folded_duplicate_and_messy_headers() -> None:
    body = (
        b"--" + BB + b"\r\n"
        b"Content-Type: multipart/related;\r\n"
        b'\ttype="application/dicom";\r\n'
        b"  boundary=abc\r\n"
        b"X-Dup: first\r\n"
        b"x-dup: second\r\n"
        b"CONTENT-LOCATION :   /wado/1  \r\n"
        b"\r\n"
        b"payload\r\n--" + BB + b"--"
    )
    [(headers, data, size)] = collect(iter_parts(io.BytesIO(body), BOUNDARY, chunk_size=3))
    assert headers == {
        "content-type": 'multipart/related; type="application/dicom"; boundary=abc',
        "x-dup": "second",
        "content-location": "/wado/1",
    }
    assert (data, size) == (b"payload", 7)


def test_empty_parts_with_and_without_blank_line() -> None:
    body = (
        b"--" + BB + b"\r\n\r\n\r\n"  # no headers, empty body
        b"--" + BB + b"\r\nA: 1\r\n\r\n"  # headers, no blank line before next delimiter: empty body
        b"--" + BB + b"\r\nA: 2\r\n\r\n\r\n"  # headers, blank line, empty body
        b"--" + BB + b"--"
    )
    for chunk_size in (1, 4, 100):
        assert collect(iter_parts(io.BytesIO(body), BOUNDARY, chunk_size=chunk_size)) == [
            ({}, b"", 0),
            ({"a": "1"}, b"", 0),
            ({"a": "2"}, b"", 0),
        ]


@pytest.mark.parametrize("boundary", [f'"{BOUNDARY}"', BB, b'"' + BB + b'"'])
def test_quoted_and_bytes_boundary(boundary: str | bytes) -> None:
    assert collect(iter_parts(io.BytesIO(encoded_sample()), boundary)) == expected_sample()


def test_boundary_with_spaces_and_specials() -> None:
    boundary = "a'()+_,-./:=? z"
    body = b"".join(encode_parts([({"A": "1"}, [b"x"])], boundary))
    assert collect(iter_parts(io.BytesIO(body), f'"{boundary}"')) == [({"a": "1"}, b"x", 1)]


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("boundary", ["", '""', "x" * 71, b"a\r\nb", "euro\u20ac"])
def test_invalid_boundary_is_rejected(boundary: str | bytes) -> None:
    with pytest.raises(MultipartError):
        list(iter_parts(io.BytesIO(encoded_sample()), boundary))


def test_seventy_character_boundary_is_accepted() -> None:
    boundary = "b" * 70
    body = b"".join(encode_parts([({"A": "1"}, [b"x"])], boundary))
    assert collect(iter_parts(io.BytesIO(body), boundary)) == [({"a": "1"}, b"x", 1)]


def test_truncated_body_never_yields_the_incomplete_part() -> None:
    parts = [({"A": "1"}, b"first\r\n--" + BB[:5]), ({"A": "2"}, b"second part"), ({"A": "3"}, b"")]
    body = b"".join(encode_parts([(h, [b]) for h, b in parts], BOUNDARY)).removesuffix(b"\r\n")
    assert body.endswith(b"--" + BB + b"--")
    expected = [({k.lower(): v for k, v in h.items()}, b) for h, b in parts]
    for cut in range(1, len(body)):
        for chunk_size in (1, 7, 1 << 20):
            yielded = []
            with pytest.raises(MultipartError):
                for part in iter_parts(io.BytesIO(body[:cut]), BOUNDARY, chunk_size=chunk_size):
                    yielded.append((part.headers, part.file.read()))
            assert yielded == expected[: len(yielded)], (cut, chunk_size)
            assert len(yielded) < len(parts)


def test_truncated_error_message() -> None:
    body = b"--" + BB + b"\r\nA: 1\r\n\r\npartial data"
    with pytest.raises(MultipartError, match="truncated"):
        list(iter_parts(io.BytesIO(body), BOUNDARY))


@pytest.mark.parametrize(
    "body",
    [
        b"garbage without any delimiter",
        b"\r\n",
        b"x--" + BB + b"\r\nA: 1\r\n\r\ndata\r\n",  # the delimiter is not at a line start
        b"--" + BB + b"X\r\nA: 1\r\n\r\ndata",
        b"--" + BB[:-1] + b"\r\n\r\ndata\r\n--" + BB[:-1] + b"--",  # wrong boundary
    ],
)
def test_body_without_delimiter_raises(body: bytes) -> None:
    with pytest.raises(MultipartError, match="no multipart boundary"):
        list(iter_parts(io.BytesIO(body), BOUNDARY, chunk_size=4))


def test_empty_body_yields_nothing() -> None:
    assert list(iter_parts(io.BytesIO(b""), BOUNDARY)) == []


@pytest.mark.parametrize(
    "body", [b"--" + BB + b"--", b"--" + BB + b"--\r\n", b"preamble\r\n--" + BB + b"--\r\nepilogue"]
)
def test_close_delimiter_only_yields_nothing(body: bytes) -> None:
    assert list(iter_parts(io.BytesIO(body), BOUNDARY, chunk_size=3)) == []


def test_malformed_header_line_raises() -> None:
    body = b"--" + BB + b"\r\nContent-Type application/dicom\r\n\r\ndata\r\n--" + BB + b"--"
    with pytest.raises(MultipartError, match="malformed part header"):
        list(iter_parts(io.BytesIO(body), BOUNDARY))


def test_continuation_line_first_raises() -> None:
    body = b"--" + BB + b"\r\n folded: nothing\r\n\r\ndata\r\n--" + BB + b"--"
    with pytest.raises(MultipartError, match="continuation"):
        list(iter_parts(io.BytesIO(body), BOUNDARY))


def test_header_block_over_64k_raises() -> None:
    big = b"--" + BB + b"\r\nX-Big: " + b"a" * MAX_HEADER_BYTES + b"\r\n\r\ndata\r\n--" + BB + b"--"
    with pytest.raises(MultipartError, match="header block exceeds"):
        list(iter_parts(io.BytesIO(big), BOUNDARY, chunk_size=4096))
    fits = b"--" + BB + b"\r\nX-Big: " + b"a" * (MAX_HEADER_BYTES - 20) + b"\r\n\r\ndata\r\n--" + BB + b"--"
    [(headers, data, _)] = collect(iter_parts(io.BytesIO(fits), BOUNDARY, chunk_size=4096))
    assert len(headers["x-big"]) == MAX_HEADER_BYTES - 20
    assert data == b"data"


def test_max_bytes_raises_body_too_large_without_overreading() -> None:
    body = encoded_sample()
    stream = TrickleStream(body, step=10**9)
    with pytest.raises(BodyTooLarge):
        list(iter_parts(stream, BOUNDARY, max_bytes=len(body) - 1, chunk_size=1000))
    assert stream.bytes_read == len(body)  # stopped right after the first byte over the limit
    assert issubclass(BodyTooLarge, MultipartError)
    assert collect(iter_parts(io.BytesIO(body), BOUNDARY, max_bytes=len(body))) == expected_sample()


def test_max_bytes_applies_to_preamble() -> None:
    stream = GeneratedStream(b"", b"p" * 4096, 10_000, b"")
    with pytest.raises(BodyTooLarge):
        list(iter_parts(stream, BOUNDARY, max_bytes=100_000, chunk_size=8192))
    assert stream.bytes_read == 100_001


def test_max_bytes_is_not_triggered_by_unread_epilogue() -> None:
    head = b"--" + BB + b"\r\nA: 1\r\n\r\nbody\r\n--" + BB + b"--\r\n"
    stream = GeneratedStream(head, b"e" * 4096, 1000, b"")
    assert collect(iter_parts(stream, BOUNDARY, max_bytes=len(head) + 10, chunk_size=16)) == [
        ({"a": "1"}, b"body", 4)
    ]


# --- file ownership ------------------------------------------------------------------------------


def test_previous_part_file_is_closed_on_advance() -> None:
    gen = iter_parts(io.BytesIO(encoded_sample()), BOUNDARY)
    first = next(gen)
    assert not first.file.closed
    second = next(gen)
    assert first.file.closed
    assert not second.file.closed
    gen.close()
    assert second.file.closed


def test_file_is_closed_when_the_consumer_breaks_out() -> None:
    files = []
    for part in iter_parts(io.BytesIO(encoded_sample()), BOUNDARY):
        files.append(part.file)
        break
    # Leaving the for loop drops the generator; CPython finalises (closes) it immediately.
    assert files[0].closed


# --- large bodies --------------------------------------------------------------------------------


def _big_block() -> bytes:
    rng = random.Random(42)
    block = bytearray(rng.randbytes(1 << 20))
    # Sprinkle near-delimiters through the data.
    for k, fragment in enumerate(
        [b"\r\n--" + BB + b"X", b"--" + BB + b"\r\n", b"\n--" + BB[:-3], b"\r\n--" + BB + b"-\r\n"]
    ):
        pos = 1000 + k * 250_000
        block[pos : pos + len(fragment)] = fragment
    block[-len(BB) - 1 :] = b"\r" + BB  # straddles the block border
    return bytes(block)


def test_200mb_body_is_parsed_with_bounded_memory(tmp_path) -> None:
    block = _big_block()
    count = 200
    head = b"--" + BB + b"\r\nContent-Type: application/dicom\r\n\r\n"
    tail = b"\r\n--" + BB + b"\r\nContent-Type: text/plain\r\n\r\nsmall\r\n--" + BB + b"--\r\n"
    expected_sha = hashlib.sha256()
    for _ in range(count):
        expected_sha.update(block)

    stream = GeneratedStream(head, block, count, tail)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        seen = []
        for part in iter_parts(stream, BOUNDARY, spool_dir=str(tmp_path)):
            sha = hashlib.sha256()
            while data := part.file.read(1 << 20):
                sha.update(data)
            seen.append((part.headers, part.size, sha.hexdigest(), part.file._rolled))  # type: ignore[attr-defined]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert seen == [
        ({"content-type": "application/dicom"}, count * len(block), expected_sha.hexdigest(), True),
        ({"content-type": "text/plain"}, 5, hashlib.sha256(b"small").hexdigest(), False),
    ]
    assert peak < 40 * 2**20, f"peak traced memory {peak / 2**20:.1f} MiB"


# --- encoding ------------------------------------------------------------------------------------


def test_encoded_framing_is_exact_crlf() -> None:
    body = b"".join(encode_parts([({"Content-Type": "a/b"}, [b"one"]), ({}, [b"tw", b"o"])], "bnd"))
    assert body == b"--bnd\r\nContent-Type: a/b\r\n\r\none\r\n--bnd\r\n\r\ntwo\r\n--bnd--\r\n"


def test_encode_without_parts_emits_only_the_close_delimiter() -> None:
    body = b"".join(encode_parts([], "bnd"))
    assert body == b"--bnd--\r\n"
    assert list(iter_parts(io.BytesIO(body), "bnd")) == []


def test_encode_never_yields_more_than_largest_chunk_plus_headers() -> None:
    rng = random.Random(7)
    sizes = [1, 10, 100, 1000, 70_000, 300_000, 1 << 20, 5, 65_536, 65_535, 2]
    parts = []
    for i in range(6):
        chunks = [rng.randbytes(rng.choice(sizes)) for _ in range(12)]
        parts.append(({"Content-Type": "application/dicom", "Content-Location": f"/i/{i}"}, chunks))
    header_overhead = 200
    largest_input = max(len(c) for _, chunks in parts for c in chunks)
    out = list(encode_parts(parts, BOUNDARY))
    assert max(len(piece) for piece in out) <= largest_input + header_overhead
    assert all(len(piece) > 0 for piece in out)
    assert collect(iter_parts(io.BytesIO(b"".join(out)), BOUNDARY)) == [
        ({"content-type": "application/dicom", "content-location": f"/i/{i}"}, b"".join(c), sum(map(len, c)))
        for i, (_, c) in enumerate(parts)
    ]


def test_encode_coalesces_small_pieces_up_to_64k() -> None:
    parts = [({"A": str(i)}, [b"x"] * 1000) for i in range(100)]
    out = list(encode_parts(parts, BOUNDARY))
    assert max(len(piece) for piece in out) <= 64 * 1024
    assert len(out) < 10  # 100 parts of 1000 one-byte chunks are not 100_000 writes
    assert len(collect(iter_parts(io.BytesIO(b"".join(out)), BOUNDARY))) == 100


def test_encode_passes_big_chunks_through_uncopied() -> None:
    big = bytes(1 << 20)
    out = list(encode_parts([({"A": "1"}, [b"small", big, b"tail"])], BOUNDARY))
    assert any(piece is big for piece in out)


def test_encode_is_lazy() -> None:
    consumed = []

    def body(n: int) -> Iterator[bytes]:
        for i in range(n):
            consumed.append(i)
            yield bytes(100_000)

    def parts() -> Iterator[tuple[dict[str, str], Iterator[bytes]]]:
        yield {"A": "1"}, body(1000)

    gen = encode_parts(parts(), BOUNDARY)
    first = next(gen)
    assert first.startswith(b"--" + BB + b"\r\nA: 1\r\n\r\n")
    assert len(consumed) <= 2
    gen.close()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Evil", "a\r\nInjected: yes"),
        ("X-Evil", "a\nb"),
        ("Bad Name", "v"),
        ("Bad:Name", "v"),
        ("X", "caf\u00e9"),
    ],
)
def test_encode_rejects_unsafe_headers(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        list(encode_parts([({name: value}, [b"x"])], BOUNDARY))


@pytest.mark.parametrize("boundary", ["", "x" * 71, "ends with space ", "semi;colon", 'quote"d', "\u00e9"])
def test_encode_rejects_invalid_boundary(boundary: str) -> None:
    with pytest.raises(ValueError):
        list(encode_parts([({}, [b"x"])], boundary))


def test_new_boundary_is_valid_and_unique() -> None:
    boundaries = {new_boundary() for _ in range(1000)}
    assert len(boundaries) == 1000
    for boundary in list(boundaries)[:20]:
        assert 1 <= len(boundary) <= 70
        body = b"".join(encode_parts([({"A": "1"}, [b"data"])], boundary))
        assert collect(iter_parts(io.BytesIO(body), boundary)) == [({"a": "1"}, b"data", 4)]


# --- the in-memory scan (a whole body already in memory) agrees with the streaming parser -------


def _shapes() -> list[bytes]:
    """Bodies of every shape the tests above use, valid and not."""
    lf_only = (
        b"--" + BB + b"\nContent-Type: application/dicom\nContent-Location: a\n\nfirst\n"
        b"--" + BB + b"\n\nsecond\r\n\n--" + BB + b"--\n"
    )
    padded = b"--" + BB + b" \t \r\nA: 1\r\n\r\none\r\n--" + BB + b"\t\nA: 2\n\ntwo\r\n--" + BB + b"--  \r\n"
    empty_parts = (
        b"--" + BB + b"\r\n\r\n\r\n--" + BB + b"\r\nA: 1\r\n\r\n"
        b"--" + BB + b"\r\nA: 2\r\n\r\n\r\n--" + BB + b"--"
    )
    return [
        encoded_sample(),
        b"preamble\r\n" + encoded_sample() + b"epilogue",
        b"\r\n--" + BB + b"\r\nA: 1\r\n\r\nbody\r\n--" + BB + b"--",
        lf_only,
        padded,
        empty_parts,
        b"--" + BB + b"--\r\n",  # close delimiter only
        b"",  # empty
        b"no delimiter at all",
        encoded_sample().removesuffix(b"\r\n")[:-20],  # truncated
        # a header block over the limit
        b"--" + BB + b"\r\n" + b"X: " + b"y" * (70 * 1024) + b"\r\n\r\nbody\r\n--" + BB + b"--",
        b"--" + BB + b"\r\nBroken header line\r\n\r\nbody\r\n--" + BB + b"--",
    ]


def _outcome(parts: Iterator[Part]) -> object:
    try:
        return collect(parts)
    except MultipartError as exc:
        return (type(exc), str(exc))


@pytest.mark.parametrize("index", range(len(_shapes())))
def test_in_memory_scan_agrees_with_the_streaming_parser(index: int) -> None:
    body = _shapes()[index]
    in_memory = _outcome(iter_parts(io.BytesIO(body), BOUNDARY, in_place=True))
    streamed = _outcome(iter_parts(TrickleStream(body, step=3), BOUNDARY))
    assert in_memory == streamed


def test_in_memory_parts_are_windows_onto_the_body_not_copies() -> None:
    body = io.BytesIO(b"preamble\r\n" + encoded_sample())
    parts = list(iter_parts(body, BOUNDARY, in_place=True))
    assert all(isinstance(part.file, Window) for part in parts)
    assert [p.file.read() for p in parts] == [body for _, body, _ in expected_sample()]


def test_the_in_memory_scan_takes_well_formed_bodies_and_leaves_the_rest() -> None:
    from dicomweb.multipart import _scan_in_memory

    delim = b"\n--" + BB
    found = _scan_in_memory(b"preamble\r\n" + encoded_sample(), delim)
    assert found is not None and len(found) == len(sample_parts())
    assert _scan_in_memory(encoded_sample().removesuffix(b"\r\n")[:-20], delim) is None  # truncated
    assert _scan_in_memory(b"no delimiter at all", delim) is None


@pytest.mark.parametrize("backing", ["memory", "file", "seek"])
def test_window_reads_the_same_bytes_however_it_is_backed(backing, tmp_path) -> None:
    """Windows read by slicing the body's bytes, by pread on a real file, or by seek+read:
    the same bytes either way, and the first two leave the shared file position alone."""
    data = bytes(range(256)) * 400
    if backing == "file":
        file = (tmp_path / "body").open("w+b")
        file.write(data)
        file.flush()
        window = Window(file, 1000, 50_000)
    else:
        file = io.BytesIO(data)
        window = Window(file, 1000, 50_000, data=data if backing == "memory" else None)
    file.seek(7)
    expected = data[1000:51_000]
    head = [window.read(3) for _ in range(5)]  # small reads: the read-ahead block
    assert b"".join(head) == expected[:15]
    buffer = bytearray(20_000)
    assert window.readinto(buffer) == 20_000 and bytes(buffer) == expected[15:20_015]
    assert window.read() == expected[20_015:]
    assert window.read() == b"" and window.readinto(buffer) == 0
    window.seek(-10, io.SEEK_END)
    assert window.read(100) == expected[-10:]
    if backing != "seek":
        assert file.tell() == 7
    file.close()
