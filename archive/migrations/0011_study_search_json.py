"""Study.search_json: each study's default QIDO-RS result kept ready (``archive.studyresult``).

Adds the column and fills it for the studies already indexed, 2,000 per transaction, so
the archive keeps storing and answering meanwhile (a study not filled yet is answered from
its attributes, as before). Measured on the 200k-study benchmark database (PostgreSQL,
2 vCPU): 79 s; every row is rewritten, with its index entries (GIN ones included).
"""

import django.utils.timezone
from django.db import migrations, models, transaction

BATCH = 2_000


def fill(apps, schema_editor) -> None:
    from archive.studyresult import ready_text_of  # reads only the row's fields

    Study = apps.get_model("archive", "Study")
    last = 0
    while True:
        batch = list(
            Study.objects.filter(pk__gt=last)
            .order_by("pk")
            .only(
                "study_uid",
                "attributes",
                "modalities_in_study",
                "number_of_series",
                "number_of_instances",
                "updated_at",
            )[:BATCH]
        )
        if not batch:
            return
        for study in batch:
            study.search_json, study.search_json_at = ready_text_of(study), study.updated_at
        with transaction.atomic():
            Study.objects.bulk_update(batch, ["search_json", "search_json_at"], batch_size=500)
        last = batch[-1].pk


class Migration(migrations.Migration):
    atomic = False  # the fill commits batch by batch (see above)

    dependencies = [
        ("archive", "0010_drop_duplicate_study_name_like_index"),
    ]

    operations = [
        # updated_at: set by ``Study.save()`` itself now, not by auto_now (no SQL change).
        migrations.AlterField(
            model_name="study",
            name="updated_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AddField(
            model_name="study",
            name="search_json",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.AddField(
            model_name="study",
            name="search_json_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop, elidable=True),
    ]
