"""PersonNameWord (fuzzy PN search) and indexes for the representative QIDO queries.

The data step fills PersonNameWord for existing studies in batches. The word splitting
is copied here (not imported) so the migration keeps its meaning if the code changes.
"""

import django.db.models.deletion
import django.db.models.functions.text
from django.db import migrations, models


def _words(normalized: str) -> list[str]:
    seen: dict[str, None] = {}
    for word in normalized.replace("^", " ").replace("=", " ").split():
        seen.setdefault(word[:64], None)
    return list(seen)


def fill_name_words(apps, schema_editor):
    Study = apps.get_model("archive", "Study")
    PersonNameWord = apps.get_model("archive", "PersonNameWord")
    db = schema_editor.connection.alias
    rows = (
        Study.objects.using(db)
        .order_by("pk")
        .values_list("pk", "patient_name_norm", "referring_physician_name_norm")
    )
    batch = []
    for pk, patient, referring in rows.iterator(chunk_size=5000):
        batch += [PersonNameWord(study_id=pk, field="P", word=w) for w in _words(patient)]
        batch += [PersonNameWord(study_id=pk, field="R", word=w) for w in _words(referring)]
        if len(batch) >= 5000:
            PersonNameWord.objects.using(db).bulk_create(batch)
            batch = []
    PersonNameWord.objects.using(db).bulk_create(batch)


class Migration(migrations.Migration):
    dependencies = [
        ("archive", "0002_changefeedentry"),
    ]

    operations = [
        migrations.CreateModel(
            name="PersonNameWord",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("field", models.CharField(max_length=1)),
                ("word", models.CharField(max_length=64)),
            ],
        ),
        migrations.AddIndex(
            model_name="patient",
            index=models.Index(
                django.db.models.functions.text.Upper("patient_id"), name="archive_patient_id_upper"
            ),
        ),
        migrations.AddIndex(
            model_name="series",
            index=models.Index(
                django.db.models.functions.text.Upper("modality"),
                models.OrderBy(models.F("updated_at"), descending=True),
                models.OrderBy(models.F("id"), descending=True),
                name="archive_series_modality_recent",
            ),
        ),
        migrations.AddIndex(
            model_name="study",
            index=models.Index(fields=["-updated_at", "-id"], name="archive_study_recent"),
        ),
        migrations.AddIndex(
            model_name="study",
            index=models.Index(
                fields=["patient_name_norm"], name="archive_study_pn_like", opclasses=["varchar_pattern_ops"]
            ),
        ),
        migrations.AddField(
            model_name="personnameword",
            name="study",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="name_words", to="archive.study"
            ),
        ),
        migrations.AddIndex(
            model_name="personnameword",
            index=models.Index(
                fields=["field", "word"],
                include=("study",),
                name="archive_pnword_prefix",
                opclasses=["varchar_pattern_ops", "varchar_pattern_ops"],
            ),
        ),
        migrations.RunPython(fill_name_words, migrations.RunPython.noop, elidable=True),
    ]
