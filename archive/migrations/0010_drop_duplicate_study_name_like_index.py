"""Drop archive_study_pn_like: it duplicated the pattern-opclass index Django makes for patient_name_norm.

``db_index=True`` on a CharField already gives PostgreSQL ``…_like`` (varchar_pattern_ops)
and other databases a plain index; 0003 added the same index again. Every study UPDATE
(each store batch moves updated_at, so it is never a HOT update) wrote one entry more.
Checked on the 200k benchmark database: PatientName=ZZ* uses the remaining ``_like`` index.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("archive", "0009_name_prefixes_gin"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="study",
            name="archive_study_pn_like",
        ),
    ]
