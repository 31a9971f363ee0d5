"""Fuzzy names on PostgreSQL: one lexeme per pair of two-letter word starts.

``archway_name_prefixes`` (0009) gave every name the lexemes of all prefixes of its
words; ``PatientName=ma an&fuzzymatching=true`` then intersected the index entries of
``MA`` and ``AN``, which at 200k studies hold 30,007 and 19,374 studies for 1,724
matches: 1.9 ms in the GIN index, growing with the archive. Now the vector also holds,
for every two words of the name (a word with itself included), the lexeme of their
first two letters, the two in code-point order with a space between (``AN MA``): words
cannot contain a space, so these never meet a prefix lexeme. A query whose words all
have exactly two letters — what people type for a quick search — asks for those pair
lexemes alone (``archive.query._prefixes_tsquery``), whose index entries are exactly its
matches. Every other query is unchanged. Cost: n(n+1)/2 more lexemes for an n-word
name, and the study table is rewritten once here, like 0009 (plan for it).

PostgreSQL only, as 0009.
"""

import importlib

from django.db import migrations

FUNCTION = r"""
CREATE OR REPLACE FUNCTION archway_name_prefixes(name text) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    word text;
    words text[] := '{}';
    starts text[];
    prefixes text[] := '{}';
BEGIN
    FOREACH word IN ARRAY regexp_split_to_array(translate(name, '^=', '  '), '\s+') LOOP
        CONTINUE WHEN word = '';
        words := words || word;
        FOR n IN 1..least(length(word), 64) LOOP
            prefixes := prefixes || left(word, n);
        END LOOP;
    END LOOP;
    starts := ARRAY(SELECT left(w, 2) FROM unnest(words) AS w);
    FOR i IN 1..coalesce(array_length(starts, 1), 0) LOOP
        FOR j IN i..array_length(starts, 1) LOOP
            prefixes := prefixes || (
                least(starts[i] COLLATE "C", starts[j] COLLATE "C")
                || ' ' || greatest(starts[i] COLLATE "C", starts[j] COLLATE "C")
            );
        END LOOP;
    END LOOP;
    RETURN array_to_tsvector(prefixes);
END
$$
"""


def _rebuild(schema_editor, function: str) -> None:
    """Replace the function and recompute the stored vectors (one table rewrite), reindex."""
    previous = importlib.import_module("archive.migrations.0009_name_prefixes_gin")
    quote = schema_editor.quote_name
    schema_editor.execute(function)
    drops = [f"DROP COLUMN {quote(column)}" for column in previous.PREFIX_COLUMNS]
    adds = [
        f"ADD COLUMN {quote(column)} tsvector "
        f"GENERATED ALWAYS AS (archway_name_prefixes({quote(source)})) STORED"
        for column, (source, _) in previous.PREFIX_COLUMNS.items()
    ]
    schema_editor.execute(f"ALTER TABLE archive_study {', '.join(drops + adds)}")
    for column, (_, index) in previous.PREFIX_COLUMNS.items():
        schema_editor.execute(f"CREATE INDEX {index} ON archive_study USING gin ({quote(column)})")


def forward(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        _rebuild(schema_editor, FUNCTION)


def backward(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        _rebuild(schema_editor, importlib.import_module("archive.migrations.0009_name_prefixes_gin").FUNCTION)


class Migration(migrations.Migration):
    dependencies = [
        ("archive", "0011_study_search_json"),
    ]

    operations = [migrations.RunPython(forward, backward)]
