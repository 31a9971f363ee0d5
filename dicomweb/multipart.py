"""Streaming codec for ``multipart/related`` bodies (RFC 2387 / RFC 2046).

DICOMweb moves instances as ``multipart/related``: STOW-RS request bodies and WADO-RS
response bodies.  Those bodies can be many gigabytes, so neither direction may ever hold a
whole body (or a whole part) in memory:

* :func:`iter_parts` parses a request body from any object with ``read(n)`` and yields one
  :class:`Part` at a time, each spooled to a :class:`tempfile.SpooledTemporaryFile` (memory for
  small parts, disk for big ones).  Django's own ``MultiPartParser`` is no use here: it only
  understands ``multipart/form-data`` and wants a ``Content-Disposition`` on every part.
* :func:`encode_parts` produces a response body as a byte generator suitable for a streaming
  response.

The parser is lenient about what clients send (preambles, epilogues, transport padding, bare LF
line endings, folded headers, quoted boundaries) and the encoder is strict about what it emits
(CRLF everywhere, validated boundary, header names and values).

This module deliberately imports nothing from Django so it can be unit tested (and benchmarked)
without settings or a database.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO, Protocol

__all__ = [
    "MAX_HEADER_BYTES",
    "BodyTooLarge",
    "MultipartError",
    "Part",
    "Window",
    "encode_parts",
    "iter_parts",
    "new_boundary",
]

#: Largest accepted header block of one part.  DICOMweb part headers are a handful of short
#: lines; anything bigger is garbage or an attack, and the block has to be buffered whole.
MAX_HEADER_BYTES = 64 * 1024

#: RFC 2046 section 5.1.1: a boundary is 1 to 70 characters.
MAX_BOUNDARY_LENGTH = 70

# Transport padding (spaces/tabs after a delimiter) is unbounded in the RFC; we cap it so that a
# run of blanks after ``--boundary`` cannot make the parser buffer without limit.  A longer run is
# treated as ordinary body data, which is what it is in practice.
_MAX_PADDING = 1024

# What may follow ``LF--boundary`` for it to count as a delimiter: ``--`` (close delimiter) or
# optional transport padding and a line ending.  Anything else is body data.
_TRAILER_RE = re.compile(rb"(--)|[ \t]{0,%d}\r?\n" % _MAX_PADDING)
# A buffer ending with one of these after ``LF--boundary`` cannot be classified yet.
_PARTIAL_TRAILER_RE = re.compile(rb"-|[ \t]{0,%d}\r?" % _MAX_PADDING)
# End of a header block: an empty line, CRLF or bare LF.  The search starts on the line ending
# of the delimiter line, so an empty header block matches at position 0.
_HEADER_END_RE = re.compile(rb"\n\r?\n")

# RFC 2046 ``bchars``; the last character must not be a space.
_BOUNDARY_EMIT_RE = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
# RFC 5322 field name: printable US-ASCII except colon.
_HEADER_NAME_RE = re.compile(r"[!-9;-~]+")

# encode_parts() glues framing and small body chunks into pieces of up to this size, so a response
# made of many small frames is not written to the socket a few bytes at a time.
_COALESCE_BYTES = 64 * 1024

# In-place parts (``Window``) serve reads of up to _SMALL_READ bytes, the many small reads
# of a DICOM header parse, from a read-ahead block; bigger reads go straight to the file.
_SMALL_READ = 4096
_READ_AHEAD = 64 * 1024

_NOT_FOUND, _NEED_MORE, _PART, _CLOSE = range(4)
_CR = 0x0D


class MultipartError(ValueError):
    """The body is not valid multipart/related (answered with HTTP 400)."""


class BodyTooLarge(MultipartError):
    """More than max_bytes were read from the body (answered with HTTP 413)."""


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


@dataclass
class Part:
    """One body part of a parsed ``multipart/related`` body.

    ``file`` is owned by :func:`iter_parts`: it is closed when the consumer asks for the next part
    (or the generator is closed), so consume or copy it before advancing.
    """

    headers: dict[str, str]
    """Header names lower-cased, values stripped; for duplicated headers the last one wins."""
    file: BinaryIO
    """A ``SpooledTemporaryFile`` positioned at 0 holding the part body."""
    size: int
    """Number of body bytes."""

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")

    @property
    def content_location(self) -> str | None:
        return self.headers.get("content-location")


def _parse_boundary(boundary: str | bytes) -> bytes:
    """Validate a boundary taken from a request's Content-Type (lenient: strips quotes).

    Raises MultipartError rather than ValueError's plain form because the boundary comes from the
    client and a bad one must be answered with 400.
    """
    if isinstance(boundary, str):
        # WSGI/ASGI header values are latin-1 decoded; encoding back gives the bytes on the wire.
        try:
            raw = boundary.encode("latin-1")
        except UnicodeEncodeError:
            raise MultipartError("multipart boundary contains non-latin-1 characters") from None
    else:
        raw = bytes(boundary)
    if len(raw) >= 2 and raw[:1] == b'"' and raw[-1:] == b'"':
        raw = raw[1:-1]
    if not 1 <= len(raw) <= MAX_BOUNDARY_LENGTH:
        raise MultipartError(f"multipart boundary must be 1 to {MAX_BOUNDARY_LENGTH} characters long")
    if b"\r" in raw or b"\n" in raw:
        raise MultipartError("multipart boundary must not contain line breaks")
    return raw


def _find_delimiter(buf: bytearray, delim: bytes) -> tuple[int, int, int]:
    """Find the first real delimiter (``LF--boundary`` plus a valid trailer) in ``buf``.

    Returns ``(index_of_LF, kind, end_of_trailer)``.  ``kind`` is ``_PART`` / ``_CLOSE`` for a
    delimiter, ``_NEED_MORE`` when ``buf`` ends inside what may still become one (index is then
    the candidate's LF), or ``_NOT_FOUND``.  Candidates whose trailer rules them out (binary data
    that merely contains ``LF--boundary``) are skipped.  Only ``bytes.find`` walks the data; the
    regexes run at candidate positions only, which are rare in real bodies.
    """
    find = buf.find
    dlen = len(delim)
    i = find(delim)
    while i != -1:
        j = i + dlen
        m = _TRAILER_RE.match(buf, j)
        if m is not None:
            return i, (_CLOSE if m.lastindex else _PART), m.end()
        if _PARTIAL_TRAILER_RE.fullmatch(buf, j):
            return i, _NEED_MORE, -1
        i = find(delim, i + 1)
    return -1, _NOT_FOUND, -1


def _parse_headers(block: bytes) -> dict[str, str]:
    """Parse one part's header block (lines separated by CRLF or LF, possibly folded)."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        text = block.decode("latin-1")
    headers: dict[str, str] = {}
    name: str | None = None
    for raw_line in text.split("\n"):
        line = raw_line.removesuffix("\r")
        if not line:
            continue
        if line[0] in " \t":
            # Folded continuation of the previous header (RFC 5322 section 2.2.3).
            if name is None:
                raise MultipartError("part header block starts with a continuation line")
            headers[name] = f"{headers[name]} {line.strip()}".strip()
            continue
        field, colon, value = line.partition(":")
        field = field.strip()
        if not colon or not field:
            raise MultipartError(f"malformed part header line: {line[:80]!r}")
        name = field.lower()
        headers[name] = value.strip()
    return headers


def iter_parts(
    stream: _Readable,
    boundary: str | bytes,
    *,
    spool_memory_bytes: int = 8 * 2**20,
    max_bytes: int | None = None,
    chunk_size: int = 1 << 20,
    spool_dir: str | None = None,
    in_place: bool = False,
) -> Iterator[Part]:
    """Yield the parts of a ``multipart/related`` body one at a time.

    ``stream`` is anything with ``read(n)`` returning at most ``n`` bytes (``b""`` at EOF); short
    reads are fine.  Memory stays bounded by roughly ``chunk_size + spool_memory_bytes`` whatever
    the body size: each part is spooled to a ``SpooledTemporaryFile`` that spills to disk (in
    ``spool_dir``) once it exceeds ``spool_memory_bytes``.

    Ownership: a yielded part's file is closed by this generator as soon as the consumer asks
    for the next part, and also when the generator is closed early or raises.  Consume (or copy)
    ``part.file`` before advancing.

    Errors (all :class:`MultipartError`, i.e. HTTP 400, except :class:`BodyTooLarge`, HTTP 413):
    an invalid boundary, a body without any delimiter, a malformed or oversized (> 64 KiB) header
    block, and EOF before the close delimiter ("truncated").  A part is yielded only once the
    delimiter that ends it has been seen, so an incomplete part never reaches the caller.
    ``BodyTooLarge`` is raised as soon as more than ``max_bytes`` were read from ``stream``;
    reads are sized so that at most ``max_bytes + 1`` bytes are ever read.

    An empty body, or one holding only a close delimiter, yields nothing.  The epilogue after
    the close delimiter is not read.

    ``in_place=True`` is for a ``stream`` that is a seekable file already holding the whole
    body (an ASGI server's spooled request body): each part's ``file`` is then a read-only
    window onto that file instead of a copy of it, which saves copying every byte again
    (and, for a body spooled to disk, writing it to disk twice).  The parser seeks before
    each of its reads, so consumers may move the file position freely.
    """
    delim = b"\n--" + _parse_boundary(boundary)
    dlen = len(delim)
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")

    if in_place and isinstance(stream, io.BytesIO):
        # The whole body is one bytes object in memory (the ASGI handler joined it):
        # find the parts where they are instead of copying the body through the
        # parser's buffer (0.2 ms of CPU per 525 KB instance, measured). Anything this
        # quick scan does not accept is parsed again by the general code below, which
        # raises the precise error.
        data = stream.getvalue()  # no copy: BytesIO shares the bytes it was made from
        if max_bytes is None or len(data) <= max_bytes:
            found = _scan_in_memory(data, delim)
            if found is not None:
                for headers, start, size in found:
                    window = Window(stream, start, size, data=data)
                    yield Part(headers=headers, file=window, size=size)  # type: ignore[arg-type]
                return

    # The buffer starts with a virtual LF so that a delimiter at the very start of the body is
    # found by the same ``LF--boundary`` search as every later one.  Likewise the LF ending the
    # delimiter line and the LF ending the header block are kept at buf[0]: the header search and
    # a part with an empty body then need no special cases.
    buf = bytearray(b"\n")
    total = 0

    def read_more() -> bool:
        nonlocal total
        want = chunk_size if max_bytes is None else min(chunk_size, max_bytes - total + 1)
        if in_place:
            stream.seek(total)  # type: ignore[attr-defined]  # a window may have moved it
        data = stream.read(want)
        if not data:
            return False
        total += len(data)
        if max_bytes is not None and total > max_bytes:
            raise BodyTooLarge(f"multipart body exceeds the limit of {max_bytes} bytes")
        buf.extend(data)
        return True

    # Preamble: discard everything up to the first delimiter.
    while True:
        i, kind, end = _find_delimiter(buf, delim)
        if kind in (_PART, _CLOSE):
            break
        # Keep only what may still be (the start of) a delimiter.
        del buf[: i if kind == _NEED_MORE else max(0, len(buf) - dlen + 1)]
        if not read_more():
            if total == 0:
                return  # empty body: no parts
            if kind == _NEED_MORE:
                raise MultipartError("multipart body truncated inside the first delimiter")
            raise MultipartError("no multipart boundary delimiter found in body")
    if kind == _CLOSE:
        return
    del buf[: end - 1]

    part_file: tempfile.SpooledTemporaryFile[bytes] | None = None
    try:
        while True:
            # Header block: up to the first empty line.
            scan = 0
            while True:
                m = _HEADER_END_RE.search(buf, scan, MAX_HEADER_BYTES + 3)
                if m is not None:
                    break
                if len(buf) >= MAX_HEADER_BYTES + 3:
                    raise MultipartError(f"part header block exceeds {MAX_HEADER_BYTES} bytes")
                scan = max(0, len(buf) - 2)
                if not read_more():
                    raise MultipartError("multipart body truncated in part headers")
            headers = _parse_headers(bytes(buf[1 : m.start() + 1]))
            del buf[: m.end() - 1]

            # Body: up to the CRLF/LF preceding the next delimiter.
            # Not a ``with`` block: the file must outlive the ``yield``; ``finally`` closes it.
            start = total - len(buf) + 1  # stream offset of the body's first byte (buf[1])
            if in_place:
                part_file = None
                write = _discard
            else:
                part_file = tempfile.SpooledTemporaryFile(  # noqa: SIM115
                    max_size=spool_memory_bytes, mode="w+b", dir=spool_dir
                )
                if spool_memory_bytes <= 0:
                    part_file.rollover()  # max_size=0 would mean "never spill"
                write = part_file.write
            size = 0
            off = 1  # body bytes are buf[off:]; buf[0] is the kept LF until the first flush
            while True:
                i, kind, end = _find_delimiter(buf, delim)
                if kind in (_PART, _CLOSE):
                    body_end = i - 1 if i > off and buf[i - 1] == _CR else i
                    if body_end > off:
                        with memoryview(buf) as view, view[off:body_end] as piece:
                            write(piece)
                        size += body_end - off
                    break
                # Flush what cannot belong to a delimiter, keeping a possible CR before it.
                limit = i - 1 if kind == _NEED_MORE else len(buf) - dlen
                if limit > off:
                    with memoryview(buf) as view, view[off:limit] as piece:
                        write(piece)
                    size += limit - off
                    del buf[:limit]
                    off = 0
                if not read_more():
                    raise MultipartError("multipart body truncated: no close delimiter")
            if part_file is None:
                yield Part(headers=headers, file=Window(stream, start, size), size=size)  # type: ignore[arg-type]
            else:
                part_file.seek(0)
                yield Part(headers=headers, file=part_file, size=size)
                part_file.close()
                part_file = None
            if kind == _CLOSE:
                return
            del buf[: end - 1]
    finally:
        if part_file is not None:
            part_file.close()


def _delimiter_at(data: bytes, delim: bytes, start: int) -> tuple[int, re.Match[bytes] | None]:
    """The first real delimiter (``LF--boundary`` + trailer) at or after ``start``."""
    i = data.find(delim, start)
    while i != -1:
        match = _TRAILER_RE.match(data, i + len(delim))
        if match is not None:
            return i, match
        i = data.find(delim, i + 1)
    return -1, None


def _scan_in_memory(data: bytes, delim: bytes) -> list[tuple[dict[str, str], int, int]] | None:
    """``(headers, body offset, body size)`` of each part of a complete in-memory body.

    The same rules as :func:`iter_parts` (a virtual line feed before the first byte, the
    line ending before a delimiter belongs to it, headers end at the first empty line),
    over the whole body at once. Returns None for anything but a well-formed body —
    truncated, without a delimiter, or with an oversized header block — so the caller
    can let the general parser report it.
    """
    if not data:
        return None
    match = _TRAILER_RE.match(data, len(delim) - 1) if data.startswith(delim[1:]) else None
    if match is None:
        _, match = _delimiter_at(data, delim, 0)
        if match is None:
            return None
    parts: list[tuple[dict[str, str], int, int]] = []
    while not match.lastindex:  # a part delimiter (not the close delimiter)
        line_end = match.end() - 1  # the LF ending the delimiter line
        header_end = _HEADER_END_RE.search(data, line_end, line_end + MAX_HEADER_BYTES + 3)
        if header_end is None:
            return None
        headers = _parse_headers(data[line_end + 1 : header_end.start() + 1])
        start = header_end.end()
        i, match = _delimiter_at(data, delim, start - 1)
        if match is None:
            return None
        end = i - 1 if i > start and data[i - 1] == _CR else i
        parts.append((headers, start, max(0, end - start)))
    return parts


def _discard(piece: memoryview) -> None:
    """The body sink of an in-place parse: the bytes stay where they are."""


class Window(io.RawIOBase):
    """Read-only, seekable view of ``length`` bytes of ``file`` starting at ``start``.

    Reads never move a shared file position when they can avoid it: a window onto an
    in-memory body (``data``, the body's bytes) slices it, and one onto a real file
    reads with ``os.pread`` (one system call instead of a seek and a read, and safe from
    any thread). Otherwise every read seeks first, so several windows (and the parser)
    can still share one file. Closing a window leaves ``file`` open: its owner (the
    request) closes it.
    """

    def __init__(self, file: BinaryIO, start: int, length: int, *, data: bytes | None = None) -> None:
        super().__init__()
        self._file = file
        self._start = start
        self._length = length
        self._pos = 0
        self._ahead = b""  # read-ahead block for small reads, starting at window offset _ahead_at
        self._ahead_at = 0
        self._view = memoryview(data)[start : start + length] if data is not None else None
        self._fd: int | None = None
        if self._view is None and not isinstance(file, io.BytesIO):
            try:
                self._fd = file.fileno()
            except (AttributeError, OSError, ValueError):
                self._fd = None

    def _read_at(self, offset: int, size: int) -> bytes:
        """``size`` bytes (fewer at the end) from window offset ``offset``."""
        if self._view is not None:
            return self._view[offset : offset + size].tobytes()
        if self._fd is not None:
            parts = []
            while size > 0:
                chunk = os.pread(self._fd, size, self._start + offset)
                if not chunk:
                    break
                parts.append(chunk)
                offset += len(chunk)
                size -= len(chunk)
            return parts[0] if len(parts) == 1 else b"".join(parts)
        self._file.seek(self._start + offset)
        return self._file.read(size)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            base = 0
        elif whence == io.SEEK_CUR:
            base = self._pos
        elif whence == io.SEEK_END:
            base = self._length
        else:
            raise ValueError(f"invalid whence ({whence})")
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        left = self._length - self._pos
        if size is None or size < 0 or size > left:
            size = left
        if size <= 0:
            return b""
        if size <= _SMALL_READ:
            # A DICOM header is parsed in reads of a few bytes: serve them from a
            # read-ahead block instead of a seek and a read on the file each.
            offset = self._pos - self._ahead_at
            if not 0 <= offset <= len(self._ahead) - size:
                self._ahead = self._read_at(self._pos, min(_READ_AHEAD, left))
                self._ahead_at = self._pos
                offset = 0
            data = self._ahead[offset : offset + size]
        else:
            data = self._read_at(self._pos, size)
        self._pos += len(data)
        return data

    def readinto(self, buffer) -> int:  # type: ignore[override]
        left = self._length - self._pos
        view = memoryview(buffer).cast("B")
        if len(view) > left:
            view = view[: max(0, left)]
        if not len(view):
            return 0
        if self._view is not None:
            count = len(view)
            view[:] = self._view[self._pos : self._pos + count]
        elif self._fd is not None:
            count = os.preadv(self._fd, [view], self._start + self._pos)
        else:
            self._file.seek(self._start + self._pos)
            count = self._file.readinto(view)  # type: ignore[attr-defined]
        self._pos += count
        return count

    def readall(self) -> bytes:
        return self.read(-1)


def new_boundary() -> str:
    """Return a fresh random boundary: 32 hex digits, valid per RFC 2046 and never quoted."""
    return uuid.uuid4().hex


def _encode_header(name: str, value: str) -> bytes:
    """Encode one header line, refusing anything that could break the framing (header injection)."""
    if not _HEADER_NAME_RE.fullmatch(name):
        raise ValueError(f"invalid part header name: {name!r}")
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"part header {name!r} value contains a line break or NUL")
    try:
        return f"{name}: {value}\r\n".encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"part header {name!r} value is not US-ASCII: {value!r}") from None


def encode_parts(
    parts: Iterable[tuple[Mapping[str, str], Iterable[bytes]]], boundary: str
) -> Iterator[bytes]:
    """Yield a ``multipart/related`` body, lazily, for a streaming response.

    For each ``(headers, body_chunks)`` this yields the delimiter, the header lines, the blank
    line and the body chunks; then the close delimiter (``--boundary--`` CRLF).  Both ``parts``
    and each ``body_chunks`` are consumed lazily, one item at a time, so nothing is ever joined
    into a whole body.

    Chunking: framing and body chunks smaller than 64 KiB are coalesced into pieces of at most
    64 KiB (avoids one tiny socket write per frame); a chunk of 64 KiB or more is yielded as is,
    never copied.  So no yielded piece is larger than ``max(64 KiB, largest input chunk,
    largest header block)``.

    With no parts at all only the close delimiter is emitted (the parser reads that as an empty
    body); callers normally answer 204/404 instead of sending that.  Raises ValueError for an
    invalid boundary or a header that is not a valid single US-ASCII line.
    """
    if not isinstance(boundary, str) or not _BOUNDARY_EMIT_RE.fullmatch(boundary):
        raise ValueError(f"invalid multipart boundary: {boundary!r}")
    dash = b"--" + boundary.encode("ascii")
    pending = bytearray()
    first = True
    for headers, body in parts:
        framing = bytearray(dash if first else b"\r\n" + dash)
        framing += b"\r\n"
        for name, value in headers.items():
            framing += _encode_header(name, value)
        framing += b"\r\n"
        first = False
        if pending and len(pending) + len(framing) > _COALESCE_BYTES:
            yield bytes(pending)
            pending.clear()
        pending += framing
        for chunk in body:
            n = len(chunk)
            if not n:
                continue
            if len(pending) + n <= _COALESCE_BYTES:
                pending += chunk
                continue
            if pending:
                yield bytes(pending)
                pending.clear()
            if n < _COALESCE_BYTES:
                pending += chunk
            else:
                yield chunk if isinstance(chunk, bytes) else bytes(chunk)
    closing = (dash if first else b"\r\n" + dash) + b"--\r\n"
    if pending and len(pending) + len(closing) > _COALESCE_BYTES:
        yield bytes(pending)
        pending.clear()
    pending += closing
    yield bytes(pending)
