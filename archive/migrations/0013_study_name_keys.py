"""StudyNameKey: fuzzy two-letter name queries read the newest matches first (PostgreSQL).

Creates ``archive_studynamekey`` and the triggers that keep it (see the model), then
fills it from the studies already indexed. The triggers come first, in the same
transaction, so no study written meanwhile is missed: study writes wait until this
migration commits. Measured on the 200k-study benchmark database (2 vCPU): 17 s;
1.4M rows, 175 MB with its indexes.

Elsewhere the table is created and stays empty (SQLite fuzzy search uses PersonNameWord).
"""

import django.db.models.deletion
from django.db import migrations, models

# Every pair of the name's words of two letters or more (a word with itself included):
# their two-letter starts, in code-point order ("C"; Python's ``sorted``), space-joined.
# Words as ``archive.indexing.name_words`` splits them: on ^, = and white space.
# PL/pgSQL rather than SQL: PostgreSQL 15 plans a SQL function's body again for every
# statement that calls it, and the trigger below calls it once per study (measured at
# 200k studies, 10,000 studies moved to a new second: 482 µs each that way, 298 µs so).
KEYS_FUNCTION = r"""
CREATE OR REPLACE FUNCTION archway_name_keys(name text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    word text;
    starts text[] := '{}';
    keys text[] := '{}';
    first text;
    other text;
BEGIN
    FOREACH word IN ARRAY regexp_split_to_array(translate(name, '^=', '  '), '\s+') LOOP
        IF length(word) >= 2 THEN
            starts := starts || left(word, 2);
        END IF;
    END LOOP;
    FOR i IN 1..coalesce(array_length(starts, 1), 0) LOOP
        FOR j IN i..array_length(starts, 1) LOOP
            first := least(starts[i] COLLATE "C", starts[j] COLLATE "C");
            other := greatest(starts[i] COLLATE "C", starts[j] COLLATE "C");
            IF NOT (first || ' ' || other) = ANY(keys) THEN
                keys := keys || (first || ' ' || other);
            END IF;
        END LOOP;
    END LOOP;
    RETURN keys;
END
$$
"""

SECOND_FUNCTION = """
CREATE OR REPLACE FUNCTION archway_second(moment timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT floor(extract(epoch FROM moment))::bigint $$
"""

# A new name replaces the study's rows (found by study_id, so a row that should not be
# there goes too); a new second only moves them.
SYNC_FUNCTION = """
CREATE OR REPLACE FUNCTION archway_study_name_keys_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM archive_studynamekey;  -- not TRUNCATE: the statement may be truncating it too
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE'
       AND NEW.patient_name_norm IS NOT DISTINCT FROM OLD.patient_name_norm
       AND NEW.referring_physician_name_norm IS NOT DISTINCT FROM OLD.referring_physician_name_norm THEN
        UPDATE archive_studynamekey SET second = archway_second(NEW.updated_at) WHERE study_id = NEW.id;
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM archive_studynamekey WHERE study_id = OLD.id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO archive_studynamekey (field, key, second, study_id)
        SELECT 'P', key, archway_second(NEW.updated_at), NEW.id
        FROM unnest(archway_name_keys(NEW.patient_name_norm)) AS key
        UNION ALL
        SELECT 'R', key, archway_second(NEW.updated_at), NEW.id
        FROM unnest(archway_name_keys(NEW.referring_physician_name_norm)) AS key;
    END IF;
    RETURN NULL;
END
$$
"""

TRIGGERS = (
    "CREATE TRIGGER archway_study_name_keys_insert AFTER INSERT ON archive_study"
    " FOR EACH ROW EXECUTE FUNCTION archway_study_name_keys_sync()",
    "CREATE TRIGGER archway_study_name_keys_delete AFTER DELETE ON archive_study"
    " FOR EACH ROW EXECUTE FUNCTION archway_study_name_keys_sync()",
    "CREATE TRIGGER archway_study_name_keys_truncate AFTER TRUNCATE ON archive_study"
    " FOR EACH STATEMENT EXECUTE FUNCTION archway_study_name_keys_sync()",
    # Most study UPDATEs (a store batch's new counts and updated_at) change neither the
    # name nor the second: the trigger does not even run for them.
    "CREATE TRIGGER archway_study_name_keys_update"
    " AFTER UPDATE OF updated_at, patient_name_norm, referring_physician_name_norm ON archive_study"
    " FOR EACH ROW WHEN ("
    " archway_second(OLD.updated_at) IS DISTINCT FROM archway_second(NEW.updated_at)"
    " OR OLD.patient_name_norm IS DISTINCT FROM NEW.patient_name_norm"
    " OR OLD.referring_physician_name_norm IS DISTINCT FROM NEW.referring_physician_name_norm"
    ") EXECUTE FUNCTION archway_study_name_keys_sync()",
)

FILL = """
INSERT INTO archive_studynamekey (field, key, second, study_id)
SELECT 'P', key, archway_second(s.updated_at), s.id
FROM archive_study AS s, unnest(archway_name_keys(s.patient_name_norm)) AS key
UNION ALL
SELECT 'R', key, archway_second(s.updated_at), s.id
FROM archive_study AS s, unnest(archway_name_keys(s.referring_physician_name_norm)) AS key
"""


def forward(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for sql in (KEYS_FUNCTION, SECOND_FUNCTION, SYNC_FUNCTION, *TRIGGERS, FILL):
        schema_editor.execute(sql)


def backward(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for event in ("insert", "delete", "truncate", "update"):
        schema_editor.execute(f"DROP TRIGGER archway_study_name_keys_{event} ON archive_study")
    schema_editor.execute("DROP FUNCTION archway_study_name_keys_sync()")
    schema_editor.execute("DROP FUNCTION archway_second(timestamptz)")
    schema_editor.execute("DROP FUNCTION archway_name_keys(text)")


class Migration(migrations.Migration):
    dependencies = [
        ("archive", "0012_name_prefix_pairs"),
    ]

    operations = [
        migrations.CreateModel(
            name="StudyNameKey",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "field",
                        "key",
                        "second",
                        "study",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("field", models.CharField(max_length=1)),
                ("key", models.CharField(max_length=5)),
                ("second", models.BigIntegerField()),
                (
                    "study",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="name_keys",
                        to="archive.study",
                    ),
                ),
            ],
        ),
        migrations.RunPython(forward, backward),
    ]
