"""What transfer syntaxes Archway can decode and produce with the codecs installed here.

No Django imports: the retrieve views, management commands and tests all ask this module.

* :func:`decodable` - syntaxes whose pixel data can be decoded: the native ones always,
  encapsulated ones when one of pydicom's decoding plugins for them is installed.
* :func:`encodable` - syntaxes Archway can *produce*: the native little-endian ones always,
  plus each lossless compressed syntax whose encoder is installed **and** passes a
  self-test (small 16-bit unsigned and signed images and an 8-bit RGB image encoded,
  decoded back with pydicom's decoder, compared bit for bit). Lossy targets are never
  produced.
* :func:`encode_array` - one frame (a numpy array) to one compressed codestream.
* :func:`frame_media_types` - the compressed frame media types of PS3.18 Table 8.7.3-5
  and the transfer syntaxes each stands for.

Everything that probes the installation is computed once (``functools.cache``).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# --- transfer syntax UIDs -----------------------------------------------------------------------

IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
DEFLATED_EXPLICIT_VR_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BE = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_LS_NEAR_LOSSLESS = "1.2.840.10008.1.2.4.81"
JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
JPEG_2000 = "1.2.840.10008.1.2.4.91"
JPEG_2000_MC_LOSSLESS = "1.2.840.10008.1.2.4.92"
JPEG_2000_MC = "1.2.840.10008.1.2.4.93"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_LOSSLESS_RPCL = "1.2.840.10008.1.2.4.202"
HTJ2K = "1.2.840.10008.1.2.4.203"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"

#: Syntaxes whose pixel data is not encapsulated (what ``application/octet-stream`` carries).
NATIVE_SYNTAXES = frozenset({IMPLICIT_VR_LE, EXPLICIT_VR_LE, DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_BE})
#: Native syntaxes Archway writes (Explicit VR Big Endian is retired: read, never written).
NATIVE_TARGETS = frozenset({IMPLICIT_VR_LE, EXPLICIT_VR_LE, DEFLATED_EXPLICIT_VR_LE})
#: Compressed syntaxes Archway knows how to produce; all are bit-preserving.
LOSSLESS_TARGETS = frozenset(
    {
        JPEG_2000_LOSSLESS,
        JPEG_LS_LOSSLESS,
        RLE_LOSSLESS,
        HTJ2K_LOSSLESS,
        HTJ2K_LOSSLESS_RPCL,
        JPEG_LOSSLESS_SV1,
        JPEG_LOSSLESS,  # an SV1 codestream is a valid Process 14 codestream
    }
)
#: Syntaxes whose pixel data has certainly been through lossy compression.
LOSSY_SYNTAXES = frozenset(
    {JPEG_BASELINE, JPEG_EXTENDED}
    # retired lossy JPEG processes
    | {f"1.2.840.10008.1.2.4.{n}" for n in (52, 53, 54, 55, 56, 59, 60, 61, 62, 63, 64, 65, 66)}
    # MPEG-2, MPEG-4 AVC/H.264, HEVC/H.265 (and their fragmentable variants)
    | {f"1.2.840.10008.1.2.4.{n}" for n in range(100, 109)}
    | {f"1.2.840.10008.1.2.4.{n}.1" for n in range(100, 107)}
)
#: Syntaxes that allow lossy compression but may hold lossless data (the codestream decides).
MAYBE_LOSSY_SYNTAXES = frozenset({JPEG_LS_NEAR_LOSSLESS, JPEG_2000, JPEG_2000_MC, HTJ2K})
#: PS3.3 C.7.6.1.1.5 Lossy Image Compression Method defined terms, per syntax family.
LOSSY_METHODS = {
    JPEG_BASELINE: "ISO_10918_1",
    JPEG_EXTENDED: "ISO_10918_1",
    JPEG_LS_NEAR_LOSSLESS: "ISO_14495_1",
    JPEG_2000: "ISO_15444_1",
    JPEG_2000_MC: "ISO_15444_2",
    HTJ2K: "ISO_15444_15",
}


class CodecError(ValueError):
    """A frame cannot be encoded in the requested syntax (shape, depth, colour, library)."""


def describe(ts: str) -> str:
    """A transfer syntax's name (the UID itself when unknown)."""
    if ts == "*":
        return "as stored"
    from pydicom.uid import UID

    name = UID(ts).name
    return name if name and name != ts else ts


def is_native(ts: str) -> bool:
    return ts in NATIVE_SYNTAXES


# --- decoding ---------------------------------------------------------------------------------


@functools.cache
def decodable() -> frozenset[str]:
    """Transfer syntaxes whose pixel data can be decoded with what is installed."""
    from pydicom.pixels.decoders.base import get_decoder
    from pydicom.uid import AllTransferSyntaxes

    found = set(NATIVE_SYNTAXES)
    for uid in AllTransferSyntaxes:
        if uid in found:
            continue
        try:
            if get_decoder(uid).is_available:
                found.add(str(uid))
        except NotImplementedError:  # pydicom has no decoder for it at all (MPEG, JPIP …)
            continue
        except Exception:  # a broken plugin must not take retrieve down
            logger.exception("probing the decoder for %s failed", uid)
    return frozenset(found)


# --- encoding ---------------------------------------------------------------------------------

# (photometric interpretation, samples, pixel representations, bits allocated, bits stored) that a
# target accepts; after PS3.5 §8.2 (pydicom's ENCODING_PROFILES for the ones it encodes itself).
_Profile = tuple[str, int, Iterable[int], Iterable[int], Iterable[int]]
_HTJ2K_PROFILE: list[_Profile] = [
    ("MONOCHROME1", 1, (0, 1), (8, 16), range(1, 17)),
    ("MONOCHROME2", 1, (0, 1), (8, 16), range(1, 17)),
    ("PALETTE COLOR", 1, (0,), (8, 16), range(1, 17)),
    ("RGB", 3, (0,), (8, 16), range(1, 17)),
    ("YBR_FULL", 3, (0,), (8, 16), range(1, 17)),
]
# YBR_FULL is left out: libjpeg-turbo's lossless YCbCr codestreams (JFIF, no conversion) do not
# decode back with libjpeg (pylibjpeg-libjpeg) on real images.
_JPEG_LOSSLESS_PROFILE: list[_Profile] = [
    ("MONOCHROME1", 1, (0, 1), (8, 16), range(1, 17)),
    ("MONOCHROME2", 1, (0, 1), (8, 16), range(1, 17)),
    ("PALETTE COLOR", 1, (0,), (8, 16), range(1, 17)),
    ("RGB", 3, (0,), (8, 16), range(1, 17)),
]


@dataclass(frozen=True, slots=True)
class _Frame:
    """What an encoder needs to know about one frame beside its array."""

    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric_interpretation: str


_EncodeFunction = Callable[[np.ndarray, _Frame], bytes]


def _check_profile(frame: _Frame, profile: list[_Profile], ts: str) -> None:
    for pi, spp, reprs, allocated, stored in profile:
        if (
            frame.photometric_interpretation == pi
            and frame.samples_per_pixel == spp
            and frame.pixel_representation in reprs
            and frame.bits_allocated in allocated
            and frame.bits_stored in stored
        ):
            return
    raise CodecError(
        f"{describe(ts)} cannot hold {frame.samples_per_pixel}-sample "
        f"{frame.photometric_interpretation} pixels with Bits Allocated {frame.bits_allocated}, "
        f"Bits Stored {frame.bits_stored}, Pixel Representation {frame.pixel_representation}"
    )


def _check_range(arr: np.ndarray, frame: _Frame) -> None:
    if frame.pixel_representation:
        low, high = -(1 << (frame.bits_stored - 1)), (1 << (frame.bits_stored - 1)) - 1
    else:
        low, high = 0, (1 << frame.bits_stored) - 1
    if arr.size and (int(arr.min()) < low or int(arr.max()) > high):
        raise CodecError(f"pixel values fall outside the {frame.bits_stored}-bit range of Bits Stored")


def _pydicom_encoder(ts: str, plugin: str) -> _EncodeFunction:
    def encode(arr: np.ndarray, frame: _Frame) -> bytes:
        from pydicom.pixels import get_encoder
        from pydicom.pixels.encoders.base import ENCODING_PROFILES

        if ts in ENCODING_PROFILES:  # the same check pydicom makes, with a one-line message
            _check_profile(frame, ENCODING_PROFILES[ts], ts)
        options: dict[str, Any] = {
            "rows": frame.rows,
            "columns": frame.columns,
            "samples_per_pixel": frame.samples_per_pixel,
            "bits_allocated": frame.bits_allocated,
            "bits_stored": frame.bits_stored,
            "pixel_representation": frame.pixel_representation,
            "photometric_interpretation": frame.photometric_interpretation,
            "number_of_frames": 1,
        }
        if frame.samples_per_pixel > 1:
            options["planar_configuration"] = 0
        try:
            return bytes(get_encoder(ts).encode(arr, encoding_plugin=plugin, **options))
        except (ValueError, RuntimeError, TypeError) as exc:
            raise CodecError(f"{describe(ts)} ({plugin}): {_first_line(exc)}") from exc

    return encode


# pylibjpeg-openjpeg always codes 6 resolutions, which OpenJPEG refuses for frames under 32 pixels.
_OPENJPEG_MIN_SIZE = 32
_J2K_PROFILE: list[_Profile] = [
    ("MONOCHROME1", 1, (0, 1), (8, 16), range(1, 17)),
    ("MONOCHROME2", 1, (0, 1), (8, 16), range(1, 17)),
    ("PALETTE COLOR", 1, (0,), (8, 16), range(1, 17)),
    ("RGB", 3, (0,), (8, 16), range(1, 17)),
    ("YBR_FULL", 3, (0,), (8, 16), range(1, 17)),
]


def _imagecodecs_j2k(arr: np.ndarray, frame: _Frame) -> bytes:
    """JPEG 2000 reversible codestream via imagecodecs' OpenJPEG, with fewer resolutions."""
    import imagecodecs

    _check_profile(frame, _J2K_PROFILE, JPEG_2000_LOSSLESS)
    _check_range(arr, frame)
    smallest = min(frame.rows, frame.columns)
    resolutions = max(1, min(6, int(math.log2(smallest)) + 1))
    try:
        return bytes(
            imagecodecs.jpeg2k_encode(
                np.ascontiguousarray(arr),
                codecformat="J2K",
                reversible=True,
                mct=False,
                planar=False,
                bitspersample=frame.bits_stored,
                resolutions=resolutions,
            )
        )
    except Exception as exc:
        raise CodecError(f"{describe(JPEG_2000_LOSSLESS)} (imagecodecs): {_first_line(exc)}") from exc


def _j2k_encoder(pydicom_encode: _EncodeFunction | None, small_fallback: bool) -> _EncodeFunction:
    def encode(arr: np.ndarray, frame: _Frame) -> bytes:
        if pydicom_encode and min(frame.rows, frame.columns) >= _OPENJPEG_MIN_SIZE:
            return pydicom_encode(arr, frame)
        if small_fallback:
            return _imagecodecs_j2k(arr, frame)
        raise CodecError(
            f"{describe(JPEG_2000_LOSSLESS)}: frames smaller than {_OPENJPEG_MIN_SIZE} pixels "
            "need imagecodecs, which is not installed"
        )

    return encode


def _jpegls_encoder(pydicom_encode: _EncodeFunction) -> _EncodeFunction:
    def encode(arr: np.ndarray, frame: _Frame) -> bytes:
        try:
            return pydicom_encode(arr, frame)
        except CodecError:
            # pyjpegls sizes its output buffer too small for tiny images (a few pixels);
            # imagecodecs' CharLS does not, but codes unsigned samples only.
            small = frame.bits_allocated in (8, 16) and not frame.pixel_representation
            if not small or not _imagecodecs_has("JPEGLS"):
                raise
        import imagecodecs

        _check_range(arr, frame)
        try:
            return bytes(imagecodecs.jpegls_encode(np.ascontiguousarray(arr)))
        except Exception as exc:
            raise CodecError(f"{describe(JPEG_LS_LOSSLESS)} (imagecodecs): {_first_line(exc)}") from exc

    return encode


def _htj2k_decompositions(frame: _Frame) -> int:
    # PS3.5 §A.4.11 (RPCL): enough decompositions for the lowest resolution to be <= 64 pixels.
    largest = max(frame.rows, frame.columns)
    needed = math.ceil(math.log2(largest / 64)) if largest > 64 else 0
    return min(max(5, needed), 32)


def _htj2k_encoder(rpcl: bool) -> _EncodeFunction:
    ts = HTJ2K_LOSSLESS_RPCL if rpcl else HTJ2K_LOSSLESS

    def encode(arr: np.ndarray, frame: _Frame) -> bytes:
        import imagecodecs

        _check_profile(frame, _HTJ2K_PROFILE, ts)
        _check_range(arr, frame)
        options: dict[str, Any] = {
            "reversible": True,
            "rgb": False,  # no multi-component transform: the Photometric Interpretation stays as is
            "planar": False,
            "resolutions": _htj2k_decompositions(frame),  # imagecodecs passes it as decompositions
        }
        if rpcl:  # OpenJPH's progression order is RPCL; TLM markers and tile-parts per resolution
            options.update(tlm=True, tilepart=imagecodecs.HTJ2K.TILEPART.RESOLUTIONS)
        try:
            return bytes(imagecodecs.htj2k_encode(np.ascontiguousarray(arr), **options))
        except Exception as exc:
            raise CodecError(f"{describe(ts)} (imagecodecs): {_first_line(exc)}") from exc

    return encode


def _jpeg_lossless_encoder(ts: str) -> _EncodeFunction:
    def encode(arr: np.ndarray, frame: _Frame) -> bytes:
        import imagecodecs

        _check_profile(frame, _JPEG_LOSSLESS_PROFILE, ts)
        _check_range(arr, frame)
        precision = max(frame.bits_stored, 2)  # libjpeg-turbo: 2 to 16 bits
        data = arr
        if frame.pixel_representation:
            # JPEG has no sign: the two's complement bit patterns of Bits Stored bits are coded;
            # decoders sign-extend from Bits Stored (PS3.5 §8.2.1).
            data = arr.view(arr.dtype.str.replace("i", "u")) & ((1 << precision) - 1)
        data = data.astype(np.uint8 if precision <= 8 else np.uint16, copy=False)
        options: dict[str, Any] = {"lossless": True, "predictor": 1, "bitspersample": precision}
        if frame.samples_per_pixel == 3:
            options["colorspace"] = "RGB"  # stored as is: Adobe marker, component IDs R, G, B
        try:
            return bytes(imagecodecs.jpeg8_encode(np.ascontiguousarray(data), **options))
        except Exception as exc:
            raise CodecError(f"{describe(ts)} (imagecodecs): {_first_line(exc)}") from exc

    return encode


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines[:3]) if lines else type(exc).__name__


@dataclass(frozen=True, slots=True)
class _Encoder:
    transfer_syntax: str
    provider: str
    encode: _EncodeFunction


def _pydicom_plugins(ts: str) -> list[str]:
    try:
        from pydicom.pixels import get_encoder

        return list(get_encoder(ts).available_plugins)
    except Exception:
        return []


def _imagecodecs_has(name: str) -> bool:
    try:
        import imagecodecs
    except ImportError:
        return False
    codec = getattr(imagecodecs, name, None)
    return bool(codec is not None and getattr(codec, "available", False))


def _imagecodecs_version(name: str) -> str:
    import imagecodecs

    try:
        return getattr(imagecodecs, f"{name.lower()}_version")()
    except Exception:
        return "imagecodecs"


@functools.cache
def _installed_encoders() -> Mapping[str, _Encoder]:
    """The preferred installed encoder for each lossless target (self-test not yet run)."""
    found: dict[str, _Encoder] = {}
    openjpeg = "pylibjpeg" in _pydicom_plugins(JPEG_2000_LOSSLESS)
    small = _imagecodecs_has("JPEG2K")
    if openjpeg or small:
        provider = "pydicom + pylibjpeg-openjpeg" if openjpeg else ""
        if small:
            extra = f"imagecodecs ({_imagecodecs_version('JPEG2K')})"
            provider = f"{provider}; {extra} under {_OPENJPEG_MIN_SIZE} px" if openjpeg else extra
        pydicom_encode = _pydicom_encoder(JPEG_2000_LOSSLESS, "pylibjpeg") if openjpeg else None
        encode = _j2k_encoder(pydicom_encode, small)
        found[JPEG_2000_LOSSLESS] = _Encoder(JPEG_2000_LOSSLESS, provider, encode)
    if "pyjpegls" in _pydicom_plugins(JPEG_LS_LOSSLESS):
        found[JPEG_LS_LOSSLESS] = _Encoder(
            JPEG_LS_LOSSLESS,
            "pydicom + pyjpegls (CharLS)",
            _jpegls_encoder(_pydicom_encoder(JPEG_LS_LOSSLESS, "pyjpegls")),
        )
    pydicom_choices = {
        RLE_LOSSLESS: [("pylibjpeg", "pydicom + pylibjpeg-rle"), ("pydicom", "pydicom (pure Python)")],
    }
    for ts, choices in pydicom_choices.items():
        plugins = _pydicom_plugins(ts)
        for plugin, provider in choices:
            if plugin in plugins:
                found[ts] = _Encoder(ts, provider, _pydicom_encoder(ts, plugin))
                break
    if _imagecodecs_has("HTJ2K"):
        provider = f"imagecodecs ({_imagecodecs_version('HTJ2K')})"
        found[HTJ2K_LOSSLESS] = _Encoder(HTJ2K_LOSSLESS, provider, _htj2k_encoder(rpcl=False))
        found[HTJ2K_LOSSLESS_RPCL] = _Encoder(HTJ2K_LOSSLESS_RPCL, provider, _htj2k_encoder(rpcl=True))
    if _imagecodecs_has("JPEG8"):
        provider = f"imagecodecs ({_imagecodecs_version('JPEG8')})"
        for ts in (JPEG_LOSSLESS_SV1, JPEG_LOSSLESS):
            found[ts] = _Encoder(ts, provider, _jpeg_lossless_encoder(ts))
    return MappingProxyType(found)


def encode_array(
    arr: np.ndarray,
    *,
    transfer_syntax: str,
    photometric_interpretation: str,
    bits_stored: int,
    pixel_representation: int,
    bits_allocated: int | None = None,
) -> bytes:
    """One frame as one codestream of ``transfer_syntax`` (a lossless target).

    ``arr`` is shaped (rows, columns) or (rows, columns, samples) with an integer dtype wide
    enough for Bits Allocated. Raises :class:`CodecError` for anything that cannot be encoded.
    """
    encoder = _installed_encoders().get(transfer_syntax)
    if encoder is None:
        raise CodecError(f"no encoder for {describe(transfer_syntax)} is installed")
    if arr.ndim not in (2, 3) or arr.dtype.kind not in "iu":
        raise CodecError(f"cannot encode a {arr.ndim}-dimensional {arr.dtype} array")
    frame = _Frame(
        rows=int(arr.shape[0]),
        columns=int(arr.shape[1]),
        samples_per_pixel=int(arr.shape[2]) if arr.ndim == 3 else 1,
        bits_allocated=int(bits_allocated or arr.dtype.itemsize * 8),
        bits_stored=int(bits_stored),
        pixel_representation=int(pixel_representation),
        photometric_interpretation=str(photometric_interpretation),
    )
    if not arr.dtype.isnative:  # e.g. '>u2' from a big-endian source: the C encoders read memory
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if (arr.dtype.kind == "i") != bool(frame.pixel_representation):
        raise CodecError(f"a {arr.dtype} array does not match Pixel Representation {pixel_representation}")
    return encoder.encode(arr, frame)


# --- the self-test ------------------------------------------------------------------------------


def _self_test_images() -> list[tuple[str, np.ndarray, dict[str, Any]]]:
    """Small, odd-sized images with extremes: what each advertised target must round-trip."""
    rng = np.random.default_rng(20240601)
    rows, columns = 35, 47  # odd sizes, above OpenJPEG's 32-pixel minimum for 6 resolutions
    ramp = np.add.outer(np.arange(rows), np.arange(columns))
    mono12 = ((ramp * 97 + rng.integers(0, 64, (rows, columns))) % 4096).astype(np.uint16)
    mono12[0, 0], mono12[-1, -1] = 0, 4095
    signed16 = rng.integers(-32768, 32768, (rows, columns)).astype(np.int16)
    signed16[0, 0], signed16[-1, -1] = -32768, 32767
    rgb8 = rng.integers(0, 256, (rows, columns, 3)).astype(np.uint8)
    rgb8[0, 0], rgb8[-1, -1] = (0, 0, 0), (255, 255, 255)
    rgb8[1:8, 1:20] = (200, 30, 90)  # a flat patch (runs, predictable regions)
    mono = "MONOCHROME2"
    return [
        ("16-bit unsigned MONOCHROME2", mono12, {"bits_stored": 12, "pixel_representation": 0, "pi": mono}),
        ("16-bit signed MONOCHROME2", signed16, {"bits_stored": 16, "pixel_representation": 1, "pi": mono}),
        ("8-bit RGB", rgb8, {"bits_stored": 8, "pixel_representation": 0, "pi": "RGB"}),
    ]


def decode_codestream(
    frame: bytes,
    *,
    transfer_syntax: str,
    rows: int,
    columns: int,
    samples_per_pixel: int,
    bits_allocated: int,
    bits_stored: int,
    pixel_representation: int,
    photometric_interpretation: str,
    planar_configuration: int = 0,
    as_rgb: bool = False,
) -> tuple[np.ndarray, dict[str, Any]]:
    """One compressed frame decoded with pydicom's decoder (an independent implementation)."""
    from pydicom.encaps import encapsulate
    from pydicom.pixels.decoders.base import get_decoder

    options: dict[str, Any] = {
        "rows": rows,
        "columns": columns,
        "samples_per_pixel": samples_per_pixel,
        "bits_allocated": bits_allocated,
        "bits_stored": bits_stored,
        "pixel_representation": pixel_representation,
        "photometric_interpretation": photometric_interpretation,
        "number_of_frames": 1,
    }
    if samples_per_pixel > 1:
        options["planar_configuration"] = planar_configuration
    return get_decoder(transfer_syntax).as_array(encapsulate([frame]), as_rgb=as_rgb, **options)


@functools.cache
def self_test(transfer_syntax: str) -> bool:
    """Encode the test images in ``transfer_syntax``, decode them back, compare exactly."""
    if transfer_syntax in NATIVE_TARGETS:
        return True
    if transfer_syntax not in _installed_encoders():
        return False
    for label, image, spec in _self_test_images():
        try:
            data = encode_array(
                image,
                transfer_syntax=transfer_syntax,
                photometric_interpretation=spec["pi"],
                bits_stored=spec["bits_stored"],
                pixel_representation=spec["pixel_representation"],
            )
            decoded, _ = decode_codestream(
                data,
                transfer_syntax=transfer_syntax,
                rows=image.shape[0],
                columns=image.shape[1],
                samples_per_pixel=image.shape[2] if image.ndim == 3 else 1,
                bits_allocated=image.dtype.itemsize * 8,
                bits_stored=spec["bits_stored"],
                pixel_representation=spec["pixel_representation"],
                photometric_interpretation=spec["pi"],
            )
        except Exception as exc:
            logger.warning(
                "codec self-test: %s (%s) failed on a %s image: %s",
                describe(transfer_syntax),
                provider(transfer_syntax),
                label,
                _first_line(exc),
            )
            return False
        if decoded.shape != image.shape or not np.array_equal(decoded, image):
            logger.warning(
                "codec self-test: %s (%s) did not round-trip a %s image exactly; not advertised",
                describe(transfer_syntax),
                provider(transfer_syntax),
                label,
            )
            return False
    return True


def provider(transfer_syntax: str) -> str:
    """Which library produces ``transfer_syntax`` here ('' when none)."""
    if transfer_syntax in NATIVE_TARGETS:
        return "pydicom"
    encoder = _installed_encoders().get(transfer_syntax)
    return encoder.provider if encoder else ""


@functools.cache
def encodable() -> frozenset[str]:
    """Transfer syntaxes Archway can produce here: native LE ones and self-tested lossless ones."""
    targets = set(NATIVE_TARGETS)
    for ts in sorted(_installed_encoders()):
        if self_test(ts):
            targets.add(ts)
    listed = ", ".join(f"{describe(ts)} [{provider(ts)}]" for ts in sorted(targets))
    logger.info("transcoding targets: %s", listed)
    return frozenset(targets)


# --- frame media types (PS3.18 Table 8.7.3-5) ----------------------------------------------------

OCTET_STREAM = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class FrameMediaType:
    media_type: str
    default_transfer_syntax: str
    transfer_syntaxes: tuple[str, ...]


_FRAME_MEDIA_TYPES = (
    FrameMediaType(OCTET_STREAM, EXPLICIT_VR_LE, (EXPLICIT_VR_LE, "*")),
    FrameMediaType(
        "image/jpeg", JPEG_BASELINE, (JPEG_BASELINE, JPEG_EXTENDED, JPEG_LOSSLESS, JPEG_LOSSLESS_SV1)
    ),
    FrameMediaType("image/jls", JPEG_LS_LOSSLESS, (JPEG_LS_LOSSLESS, JPEG_LS_NEAR_LOSSLESS)),
    FrameMediaType("image/jp2", JPEG_2000_LOSSLESS, (JPEG_2000_LOSSLESS, JPEG_2000)),
    FrameMediaType("image/jpx", JPEG_2000_MC_LOSSLESS, (JPEG_2000_MC_LOSSLESS, JPEG_2000_MC)),
    FrameMediaType("image/jphc", HTJ2K_LOSSLESS, (HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL, HTJ2K)),
    FrameMediaType("image/x-dicom-rle", RLE_LOSSLESS, (RLE_LOSSLESS,)),
)


def frame_media_types() -> Mapping[str, FrameMediaType]:
    """Frame media type → its default and allowed transfer syntaxes (PS3.18 Table 8.7.3-5)."""
    return MappingProxyType({entry.media_type: entry for entry in _FRAME_MEDIA_TYPES})


def frame_media_type(transfer_syntax: str) -> str:
    """The media type a single frame in ``transfer_syntax`` is sent as."""
    if transfer_syntax in NATIVE_SYNTAXES:
        return OCTET_STREAM
    for entry in _FRAME_MEDIA_TYPES[1:]:
        if transfer_syntax in entry.transfer_syntaxes:
            return entry.media_type
    return OCTET_STREAM
