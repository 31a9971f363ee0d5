"""A study's QIDO-RS result (DICOM JSON), and the ready-made text of its default form.

A study list is the most frequent search there is (every viewer's worklist asks for 100
studies with the default attributes), and building each result from the stored
attributes — decode the JSON, pick the attributes, add the computed ones, sort, encode —
was most of what a page of results cost: about 17 µs of server time per study, measured
at 200,000 studies on PostgreSQL. So the default result of every study is kept ready in
the index (``Study.search_json``), written whenever the row's attributes or counts change
(``archive.indexing``, ``Study.save``), and a default search sends the stored texts as
they are (``dicomweb.views.search``). Searches that ask for more (``includefield``, a
match on an attribute outside the defaults, XML) build their results here from the
attributes, with the same function, so both forms are the same bytes.

The one request-dependent part is RetrieveURL (the server's own URL). The ready text
holds the raw control character U+001E in its place: JSON text never contains one
(encoders escape control characters inside strings, and there is nothing else it could
be), so replacing it with the root URL cannot touch any attribute value.

A ready text is only used while it is current. It starts with a stamp of the row values
it was made from — the two counts and the modalities — and ``Study.search_json_at`` holds
the ``updated_at`` it was made at; a search uses it only if the row still has those
values, checked by the database as it reads the page (``CURRENT_JSON_SQL``), and
otherwise builds the result from the attributes. Every change that can alter a study's
result moves one of them: ingest sets ``updated_at`` (latest-wins attributes come with
it), deletion changes the counts. So a row written by something that does not know about
``search_json`` — an older Archway process still running during an upgrade, a hand-made
SQL fix — is answered correctly, only more slowly, instead of from a stale text.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import orjson

from archive import levels

STUDY_UID = "0020000D"
MODALITIES_IN_STUDY = "00080061"
SOP_CLASSES_IN_STUDY = "00080062"
NUMBER_OF_SERIES = "00201206"
NUMBER_OF_INSTANCES = "00201208"
RETRIEVE_URL = "00081190"

ROOT_MARK = "\x1e"
STAMP_END = "\x1f"  # after the stamp; like ROOT_MARK, never part of JSON text
# What a default search returns, and so the most a request may want for the ready text.
READY_TAGS = frozenset(levels.STUDY_DEFAULT_TAGS) | {0x00080061, 0x00201206, 0x00201208, 0x00081190}


@lru_cache(maxsize=256)
def _keys(tags: frozenset[int]) -> tuple[str, ...]:
    """DICOM JSON keys of ``tags``, sorted, once per distinct set (not once per result)."""
    return tuple(sorted(f"{tag:08X}" for tag in tags))


def study_result(
    *,
    study_uid: str,
    attributes: dict,
    modalities: str,
    sop_classes: str | None,
    number_of_series: int,
    number_of_instances: int,
    root: str,
    wanted: frozenset[int],
) -> dict:
    """The result of one study, keys in tag order: the ``wanted`` stored attributes plus
    StudyInstanceUID, ModalitiesInStudy, the two counts, RetrieveURL, and
    SOPClassesInStudy when ``sop_classes`` is given (``None``: not asked for)."""
    data = {key: attributes[key] for key in _keys(wanted) if key in attributes}
    data[STUDY_UID] = {"vr": "UI", "Value": [study_uid]}
    modality_list = [m for m in modalities.split("\\") if m]
    data[MODALITIES_IN_STUDY] = {"vr": "CS", "Value": modality_list} if modality_list else {"vr": "CS"}
    if sop_classes is not None:
        sop_class_list = [s for s in sop_classes.split("\\") if s]
        data[SOP_CLASSES_IN_STUDY] = {"vr": "UI", "Value": sop_class_list} if sop_class_list else {"vr": "UI"}
    data[NUMBER_OF_SERIES] = {"vr": "IS", "Value": [number_of_series]}
    data[NUMBER_OF_INSTANCES] = {"vr": "IS", "Value": [number_of_instances]}
    data[RETRIEVE_URL] = {"vr": "UR", "Value": [f"{root}/studies/{study_uid}"]}
    return dict(sorted(data.items()))


def ready_json(
    *, study_uid: str, attributes: dict, modalities: str, number_of_series: int, number_of_instances: int
) -> str:
    """The default result of a study as compact JSON text, ``ROOT_MARK`` for the root URL."""
    result = study_result(
        study_uid=study_uid,
        attributes=attributes,
        modalities=modalities,
        sop_classes=None,
        number_of_series=number_of_series,
        number_of_instances=number_of_instances,
        root="",
        wanted=READY_TAGS,
    )
    url = orjson.dumps(result.pop(RETRIEVE_URL)).decode().replace('["', '["' + ROOT_MARK, 1)
    before = orjson.dumps({k: v for k, v in result.items() if k < RETRIEVE_URL}).decode()[:-1]
    after = orjson.dumps({k: v for k, v in result.items() if k > RETRIEVE_URL}).decode()[1:]
    return (
        f"{before}{',' if len(before) > 1 else ''}"
        f'"{RETRIEVE_URL}":{url}'
        f"{',' if len(after) > 1 else ''}{after}"
    )


def stamp(number_of_series: int, number_of_instances: int, modalities: str) -> str:
    """What a ready text was made from, besides ``updated_at`` (see the module docstring)."""
    return f"{number_of_series}|{number_of_instances}|{modalities}"


def ready_text(
    *,
    study_uid: str,
    attributes: dict,
    modalities: str,
    number_of_series: int,
    number_of_instances: int,
) -> str:
    """The value of ``Study.search_json``: the stamp, ``STAMP_END``, the ready result."""
    result = ready_json(
        study_uid=study_uid,
        attributes=attributes,
        modalities=modalities,
        number_of_series=number_of_series,
        number_of_instances=number_of_instances,
    )
    return stamp(number_of_series, number_of_instances, modalities) + STAMP_END + result


def ready_text_of(study) -> str:
    """``ready_text`` of a study row (a model instance or an ``archive.fastsql.Row``)."""
    return ready_text(
        study_uid=study.study_uid,
        attributes=study.attributes,
        modalities=study.modalities_in_study,
        number_of_series=study.number_of_series,
        number_of_instances=study.number_of_instances,
    )


def join_ready(texts: Iterable[str], root: str) -> bytes:
    """A JSON array of ready texts with the root URL filled in: the body of a default search."""
    escaped_root = orjson.dumps(root).decode()[1:-1]
    return ("[" + ",".join(texts) + "]").replace(ROOT_MARK, escaped_root).encode()


# The ready result of an ``archive_study`` row if it is current, else NULL: made at the
# row's ``updated_at`` and stamped with its counts and modalities (the same text as
# ``stamp``, built by the database; plain SQL that PostgreSQL and SQLite both run). Done
# in the query so that a page never transfers, parses or checks timestamps in Python
# (measured in process at 200k studies: about 1 ms per page of 100, most of it psycopg
# parsing the timestamps).
_STAMP_SQL = (
    "CAST({t}.number_of_series AS TEXT) || '|' || CAST({t}.number_of_instances AS TEXT)"
    " || '|' || {t}.modalities_in_study || %s"
)
CURRENT_JSON_SQL = (
    "CASE WHEN {t}.search_json_at = {t}.updated_at"
    " AND substr({t}.search_json, 1, length(" + _STAMP_SQL + ")) = (" + _STAMP_SQL + ")"
    " THEN substr({t}.search_json, length(" + _STAMP_SQL + ") + 1) END"
).format(t='"archive_study"')
CURRENT_JSON_PARAMS = (STAMP_END, STAMP_END, STAMP_END)
