"""QIDO on PostgreSQL: fuzzy names by exact prefix lexemes; a covering newest-first index.

1. ``archway_name_prefixes(name)``: the tsvector of every prefix (1 to 64 characters) of
   every word of a normalized name (words as ``archive.indexing.name_words`` splits
   them: on ``^``, ``=`` and white space, empty ones dropped). A fuzzy query word is a
   prefix of some name word exactly when it is one of these lexemes, so the GIN indexes
   on it answer ``'JO' & 'DO'`` with exact entries instead of the prefix matches
   ``'JO':* & 'DO':*`` of migration 0007's word indexes, which gather every study of
   every word starting with JO before intersecting (measured at 200k studies: 4.2 ms in
   the index for "jo do", 0.33 ms with exact entries). They replace 0007's indexes.
2. ``archive_study_recent`` (updated_at DESC, id DESC) is rebuilt with
   ``INCLUDE (patient_name_norm)``: ``PatientName=DOE*`` walks it newest first and checks
   the name in the index alone (index-only scan), instead of visiting a table row for
   every study it skips (200k studies: 34 instead of 1,125 buffers).

PostgreSQL only (``connection.vendor``); other databases keep ``PersonNameWord`` and
the plain index.
"""

from django.db import migrations

FUNCTION = r"""
CREATE OR REPLACE FUNCTION archway_name_prefixes(name text) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE COST 10000 AS $$
DECLARE
    word text;
    prefixes text[] := '{}';
BEGIN
    FOREACH word IN ARRAY regexp_split_to_array(translate(name, '^=', '  '), '\s+') LOOP
        FOR n IN 1..least(length(word), 64) LOOP
            prefixes := prefixes || left(word, n);
        END LOOP;
    END LOOP;
    RETURN array_to_tsvector(prefixes);
END
$$
"""

PREFIX_INDEXES = {
    "archive_study_pn_prefixes": "patient_name_norm",
    "archive_study_rpn_prefixes": "referring_physician_name_norm",
}
WORD_INDEXES = {  # migration 0007's
    "archive_study_pn_words": "patient_name_norm",
    "archive_study_rpn_words": "referring_physician_name_norm",
}


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    schema_editor.execute(FUNCTION)
    for name, column in PREFIX_INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON archive_study USING gin "
            f"(archway_name_prefixes({quote(column)}))"
        )
    for name in WORD_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")
    schema_editor.execute("DROP INDEX IF EXISTS archive_study_recent")
    schema_editor.execute(
        "CREATE INDEX archive_study_recent ON archive_study "
        '("updated_at" DESC, "id" DESC) INCLUDE ("patient_name_norm")'
    )


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from archive.query import NAME_WORDS_SQL

    quote = schema_editor.quote_name
    schema_editor.execute("DROP INDEX IF EXISTS archive_study_recent")
    schema_editor.execute('CREATE INDEX archive_study_recent ON archive_study ("updated_at" DESC, "id" DESC)')
    for name, column in WORD_INDEXES.items():
        expression = NAME_WORDS_SQL.format(column=quote(column))
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON archive_study USING gin (({expression}))"
        )
    for name in PREFIX_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")
    schema_editor.execute("DROP FUNCTION IF EXISTS archway_name_prefixes(text)")


class Migration(migrations.Migration):
    dependencies = [
        ("archive", "0008_drop_store_reservation"),
    ]

    operations = [migrations.RunPython(forward, backward)]
