"""The offline DICOM test corpus: pydicom's bundled files plus pydicom-data's.

``pydicom.data.get_testdata_files()`` tries to *download* every file of its online
list that is not cached, which hangs on a closed network, so tests never call it;
they glob the installed packages' folders instead.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pydicom
import pydicom.data


def _roots() -> list[Path]:
    roots = [
        Path(pydicom.data.__file__).parent / "test_files",
        Path(pydicom.data.__file__).parent / "charset_files",
    ]
    try:
        import data_store  # the PyPI package pydicom-data installs this module

        roots.append(Path(data_store.__file__).parent / "data")
    except ImportError:
        pass
    return [root for root in roots if root.is_dir()]


@functools.cache
def corpus_files() -> tuple[Path, ...]:
    """Every file of the offline corpus (readable by pydicom or not)."""
    files: set[Path] = set()
    for root in _roots():
        files.update(
            p for p in root.rglob("*") if p.is_file() and p.suffix not in {".py", ".pyc", ".json", ".txt"}
        )
    return tuple(sorted(files))


@functools.cache
def readable_part10_files() -> tuple[Path, ...]:
    """Corpus files pydicom reads as Part 10 without ``force`` (what STOW must accept)."""
    readable = []
    for path in corpus_files():
        try:
            pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        readable.append(path)
    return tuple(readable)


def testdata_file(name: str) -> Path:
    """One named file from the offline corpus (e.g. ``CT_small.dcm``)."""
    for path in corpus_files():
        if path.name == name:
            return path
    raise FileNotFoundError(name)
