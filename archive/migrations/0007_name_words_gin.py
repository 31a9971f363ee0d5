"""GIN indexes for fuzzy person-name search on PostgreSQL (``archive.query.NAME_WORDS_SQL``).

Expression indexes on the words of the normalized PatientName and ReferringPhysicianName;
other databases keep using ``PersonNameWord`` and get nothing here.
"""

from django.db import migrations

INDEXES = {
    "archive_study_pn_words": "patient_name_norm",
    "archive_study_rpn_words": "referring_physician_name_norm",
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from archive.query import NAME_WORDS_SQL

    for name, column in INDEXES.items():
        expression = NAME_WORDS_SQL.format(column=schema_editor.quote_name(column))
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON archive_study USING gin (({expression}))"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("archive", "0006_study_date_covering_index"),
    ]

    operations = [migrations.RunPython(create, drop)]
