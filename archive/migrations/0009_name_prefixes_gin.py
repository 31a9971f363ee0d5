"""QIDO on PostgreSQL: fuzzy names by exact prefix lexemes; a covering newest-first index.

1. ``archway_name_prefixes(name)``: the tsvector of every prefix (1 to 64 characters) of
   every word of a normalized name (words as ``archive.indexing.name_words`` splits
   them: on ``^``, ``=`` and white space, empty ones dropped). A fuzzy query word is a
   prefix of some name word exactly when it is one of these lexemes, so a GIN index on
   them answers ``'JO' & 'DO'`` with exact entries instead of the prefix matches
   ``'JO':* & 'DO':*`` of migration 0007's word indexes, which gather every study of
   every word starting with JO before intersecting (measured at 200k studies, "jo do":
   3.6-4.3 ms in the index before, 0.3-0.5 ms with exact entries).
2. The vectors are stored generated columns of ``archive_study``
   (``patient_name_prefixes``, ``referring_physician_name_prefixes``; not model fields:
   PostgreSQL computes them on every insert and update), GIN-indexed; 0007's expression
   indexes are dropped. Stored rather than an expression index because a query that
   names the function makes the planner cost it per row: with its default cost a
   fuzzy search matching many studies (``PatientName=j``) walked a whole index calling
   the function per row (0.7-0.8 s at 200k studies); with a high cost the estimates
   grew so large that plans went parallel ("ma pe": 11 ms with a parallel worker, 2.3 ms
   on the column). The column is a plain ``tsvector @@ tsquery`` for the planner. Cost: ~100 bytes per name
   in every study row, and the table is rewritten once here (15 s at 200k studies).
3. ``archive_study_recent`` (updated_at DESC, id DESC) is rebuilt with
   ``INCLUDE (patient_name_norm)``: ``PatientName=DOE*`` walks it newest first and checks
   the name in the index alone (index-only scan), instead of visiting a table row for
   every study it skips (200k studies: 34 instead of 1,125 buffers).

PostgreSQL only (``connection.vendor``); other databases keep ``PersonNameWord`` and the
plain index. Note for later migrations: PostgreSQL refuses to change the type (or
length) of ``patient_name_norm`` / ``referring_physician_name_norm`` while a generated
column uses it; drop and re-add the generated column around such a change.
"""

from django.db import migrations, models

FUNCTION = r"""
CREATE OR REPLACE FUNCTION archway_name_prefixes(name text) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
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

# generated column -> (its source column, its GIN index); archive.query.NAME_PREFIX_COLUMNS
PREFIX_COLUMNS = {
    "patient_name_prefixes": ("patient_name_norm", "archive_study_pn_prefixes"),
    "referring_physician_name_prefixes": ("referring_physician_name_norm", "archive_study_rpn_prefixes"),
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
    columns = ", ".join(
        f"ADD COLUMN {quote(column)} tsvector "
        f"GENERATED ALWAYS AS (archway_name_prefixes({quote(source)})) STORED"
        for column, (source, _) in PREFIX_COLUMNS.items()
    )
    schema_editor.execute(f"ALTER TABLE archive_study {columns}")  # one rewrite for both
    for column, (_, index) in PREFIX_COLUMNS.items():
        schema_editor.execute(f"CREATE INDEX {index} ON archive_study USING gin ({quote(column)})")
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
    columns = ", ".join(f"DROP COLUMN IF EXISTS {quote(column)}" for column in PREFIX_COLUMNS)
    schema_editor.execute(f"ALTER TABLE archive_study {columns}")  # drops their indexes too
    schema_editor.execute("DROP FUNCTION IF EXISTS archway_name_prefixes(text)")


class Migration(migrations.Migration):
    dependencies = [
        ("archive", "0008_drop_store_reservation"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            # forward() rebuilds archive_study_recent with the INCLUDE on PostgreSQL; the
            # model state says so too (other databases have no covering indexes, and Django
            # creates the index there without it).
            database_operations=[migrations.RunPython(forward, backward)],
            state_operations=[
                migrations.RemoveIndex(model_name="study", name="archive_study_recent"),
                migrations.AddIndex(
                    model_name="study",
                    index=models.Index(
                        fields=["-updated_at", "-id"],
                        include=["patient_name_norm"],
                        name="archive_study_recent",
                    ),
                ),
            ],
        )
    ]
