"""Media types and Accept header parsing (RFC 7231 §5.3), no Django.

DRF's negotiation ignores q-values; PS3.18 §8.7 requires them (and puts choices
between transfer syntaxes into them), so Archway parses Accept itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
DICOM_XML = "application/dicom+xml"
JSON = "application/json"
MULTIPART_RELATED = "multipart/related"
OCTET_STREAM = "application/octet-stream"


class MediaTypeError(ValueError):
    """A Content-Type or Accept value that cannot be parsed."""


def _split_params(text: str) -> list[str]:
    """Split on ';' outside quoted strings."""
    parts, current, quoted, escaped = [], [], False, False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            current.append(ch)
            escaped = True
        elif ch == '"':
            quoted = not quoted
            current.append(ch)
        elif ch == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _split_ranges(text: str) -> list[str]:
    """Split an Accept header on ',' outside quoted strings."""
    ranges, current, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            ranges.append("".join(current))
            current = []
        else:
            current.append(ch)
    ranges.append("".join(current))
    return [r for r in ranges if r.strip()]


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


@dataclass(frozen=True, slots=True)
class MediaType:
    """A media type or media range: type/subtype plus lower-cased parameter names."""

    type: str
    subtype: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    @classmethod
    def parse(cls, text: str) -> MediaType:
        pieces = _split_params(text)
        full = pieces[0].strip().lower()
        if full == "*":
            full = "*/*"  # some clients send a bare '*'
        if full.count("/") != 1:
            raise MediaTypeError(f"not a media type: {text.strip()!r}")
        main, sub = (part.strip() for part in full.split("/"))
        if not main or not sub:
            raise MediaTypeError(f"not a media type: {text.strip()!r}")
        params: dict[str, str] = {}
        q = 1.0
        for piece in pieces[1:]:
            if not piece.strip():
                continue
            if "=" not in piece:
                raise MediaTypeError(f"malformed parameter {piece.strip()!r} in {text.strip()!r}")
            name, _, value = piece.partition("=")
            name = name.strip().lower()
            value = _unquote(value)
            if name == "q":
                try:
                    q = float(value)
                except ValueError as exc:
                    raise MediaTypeError(f"invalid q-value {value!r}") from exc
                if not 0.0 <= q <= 1.0:
                    raise MediaTypeError(f"q-value {value!r} outside 0..1")
            else:
                params[name] = value
        return cls(main, sub, params, q)

    @property
    def mime(self) -> str:
        return f"{self.type}/{self.subtype}"

    @property
    def specificity(self) -> int:
        if self.type == "*":
            return 0
        if self.subtype == "*":
            return 1
        return 2 + len(self.params)

    def matches(self, mime: str) -> bool:
        """Does this range accept the concrete type ``mime``?"""
        main, _, sub = mime.partition("/")
        return self.type in ("*", main) and self.subtype in ("*", sub)

    def __str__(self) -> str:
        text = self.mime
        for name, value in self.params.items():
            text += (
                f'; {name}="{value}"'
                if any(c in value for c in ' ;,"=') or name == "type"
                else f"; {name}={value}"
            )
        return text


def parse_accept(header: str | None) -> list[MediaType]:
    """Media ranges ordered by preference: q-value, then specificity, then position.

    An absent or empty header means ``*/*``. Ranges with q=0 are dropped (RFC 7231:
    "not acceptable").
    """
    if header is None or not header.strip():
        return [MediaType("*", "*")]
    ranges = [MediaType.parse(text) for text in _split_ranges(header)]
    ordered = sorted(enumerate(ranges), key=lambda pair: (-pair[1].q, -pair[1].specificity, pair[0]))
    return [media for _, media in ordered if media.q > 0]


def parse_content_type(header: str | None) -> MediaType | None:
    if header is None or not header.strip():
        return None
    return MediaType.parse(header)


# Compressed frame media types and the transfer syntaxes they carry (PS3.18 Table 8.7.3-5);
# the first syntax of each is the default when no transfer-syntax parameter is given.
FRAME_MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    "image/jpeg": (
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
    ),
    "image/jls": ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"),
    "image/jp2": ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"),
    "image/jpx": ("1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93"),
    "image/jphc": ("1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"),
    "image/x-dicom-rle": ("1.2.840.10008.1.2.5",),
}
# Syntaxes whose frames are native pixel bytes.
NATIVE_SYNTAXES = frozenset(
    {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}
)


def frame_media_type(transfer_syntax: str) -> str:
    """The media type a frame in ``transfer_syntax`` is sent as."""
    for media, syntaxes in FRAME_MEDIA_TYPES.items():
        if transfer_syntax in syntaxes:
            return media
    return OCTET_STREAM
