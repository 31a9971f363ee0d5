"""Management commands: bootstrap, issue_token, import_dicom and sweep_orphans."""

from __future__ import annotations

import io
import os
import re
import zipfile
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.authtoken.models import Token
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from archive import storage
from archive.ingest import StoreBatch, store
from archive.management.commands import import_dicom
from archive.models import Instance
from dicomweb.authentication import BearerTokenAuthentication
from tests.factories import make_instance, new_uid

pytestmark = pytest.mark.both_tiers

ROLES = {"read", "write", "delete", "worklist"}


def run(name: str, *args: str) -> tuple[str, str, int]:
    """Run a command; return (stdout, stderr, exit code) — SystemExit is an exit code."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=err)
    except SystemExit as exc:
        return out.getvalue(), err.getvalue(), int(exc.code or 0)
    return out.getvalue(), err.getvalue(), 0


def authenticated_user(key: str) -> User | None:
    """Who the API's Bearer authentication says the key belongs to (None: rejected)."""
    request = Request(APIRequestFactory().get("/dicomweb/studies", HTTP_AUTHORIZATION=f"Bearer {key}"))
    try:
        result = BearerTokenAuthentication().authenticate(request)
    except Exception:
        return None
    return result[0] if result else None


def blob_keys() -> set[str]:
    return {blob.key for blob in storage.iter_blobs("dicom/")}


# --- bootstrap -------------------------------------------------------------------------------


def test_bootstrap_creates_one_admin_and_prints_credentials_once(db, monkeypatch) -> None:
    monkeypatch.setenv("PORT", "8123")
    out, _, code = run("bootstrap")
    assert code == 0
    admin = User.objects.get(is_superuser=True)
    assert admin.username == "admin"
    assert {g.name for g in admin.groups.all()} == ROLES
    token = Token.objects.get(user=admin)

    password = re.search(r"Password:\s+(\S+)", out).group(1)
    assert len(password) >= 20
    assert admin.check_password(password)
    assert "http://127.0.0.1:8123/admin/" in out
    assert re.search(r"Username:\s+admin\b", out)
    assert f'curl -H "Authorization: Bearer {token.key}"' in out
    assert authenticated_user(token.key) == admin

    out2, _, code2 = run("bootstrap")
    assert code2 == 0
    assert "already exists" in out2
    assert password not in out2 and token.key not in out2 and "Password" not in out2
    assert len(out2.strip().splitlines()) == 1
    assert User.objects.filter(is_superuser=True).count() == 1
    admin.refresh_from_db()
    assert admin.check_password(password)
    assert Token.objects.get(user=admin).key == token.key


def test_bootstrap_default_port_and_random_password(db, monkeypatch) -> None:
    monkeypatch.delenv("PORT", raising=False)
    out, _, _ = run("bootstrap")
    assert "http://127.0.0.1:8000/admin/" in out
    first = re.search(r"Password:\s+(\S+)", out).group(1)
    User.objects.all().delete()
    second = re.search(r"Password:\s+(\S+)", run("bootstrap")[0]).group(1)
    assert first != second


def test_bootstrap_does_nothing_when_another_superuser_exists(db) -> None:
    User.objects.create_superuser("root", password="x")
    out, _, _ = run("bootstrap")
    assert "already exists" in out and "root" in out
    assert not User.objects.filter(username="admin").exists()
    assert not Token.objects.exists()


def test_bootstrap_refuses_to_take_over_a_plain_user_named_admin(db) -> None:
    User.objects.create_user("admin", password="theirs")
    with pytest.raises(CommandError, match="not a superuser"):
        call_command("bootstrap", stdout=io.StringIO())
    user = User.objects.get(username="admin")
    assert not user.is_superuser and user.check_password("theirs")


# --- issue_token -----------------------------------------------------------------------------


def test_issue_token_prints_only_a_working_key(db) -> None:
    alice = User.objects.create_user("alice", password="pw")
    out, _, _ = run("issue_token", "alice")
    key = out.strip()
    assert out == key + "\n"  # nothing but the key on stdout
    assert Token.objects.get(user=alice).key == key
    assert authenticated_user(key) == alice
    assert authenticated_user("0" * 40) is None
    # Without --rotate the same key is printed again.
    assert run("issue_token", "alice")[0].strip() == key


def test_issue_token_missing_user_is_an_error_without_create_user(db) -> None:
    with pytest.raises(CommandError, match=r"'bob' does not exist.*--create-user"):
        call_command("issue_token", "bob", stdout=io.StringIO(), stderr=io.StringIO())
    assert not User.objects.filter(username="bob").exists()
    assert not Token.objects.exists()


def test_issue_token_create_user_with_groups(db) -> None:
    out, err, _ = run("issue_token", "bob", "--create-user", "--groups", "read, write")
    bob = User.objects.get(username="bob")
    assert not bob.has_usable_password()
    assert {g.name for g in bob.groups.all()} == {"read", "write"}
    assert authenticated_user(out.strip()) == bob
    assert "created user" in err and out.count("\n") == 1
    # Groups are added, never removed.
    run("issue_token", "bob", "--groups", "worklist")
    assert {g.name for g in bob.groups.all()} == {"read", "write", "worklist"}


def test_issue_token_unknown_group_lists_valid_ones(db) -> None:
    with pytest.raises(CommandError) as excinfo:
        call_command("issue_token", "carol", "--create-user", "--groups", "read,admins", stdout=io.StringIO())
    message = str(excinfo.value)
    assert "'admins'" in message
    for role in ("read", "write", "delete", "worklist"):
        assert role in message
    assert not User.objects.filter(username="carol").exists()
    assert not Group.objects.filter(name="admins").exists()


def test_issue_token_rotate_replaces_the_key(db) -> None:
    user = User.objects.create_user("dave")
    old = run("issue_token", "dave")[0].strip()
    new = run("issue_token", "dave", "--rotate")[0].strip()
    assert new and new != old
    assert Token.objects.get(user=user).key == new
    assert authenticated_user(old) is None
    assert authenticated_user(new) == user


# --- import_dicom ----------------------------------------------------------------------------


def counts(out: str) -> dict[str, int]:
    found = {}
    for label in ("stored", "replaced", "already present", "skipped (not DICOM)", "failed"):
        match = re.search(rf"^\s+{re.escape(label)}\s+(\d+)", out, re.MULTILINE)
        assert match, f"no {label!r} line in:\n{out}"
        found[label] = int(match.group(1))
    return found


def write_instance(path: Path, **kwargs) -> str:
    uid = kwargs.setdefault("instance_uid", new_uid())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(make_instance(**kwargs))
    return uid


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, list[str], list[str]]:
    """A folder to import: 5 instances in nested dirs, a zip with 2, and things to skip/fail.

    Returns (root, UIDs that must be stored, UIDs that must not be).
    """
    root = tmp_path / "import"
    study = new_uid()
    stored = [
        write_instance(root / "a" / "one.dcm", study_uid=study),
        write_instance(root / "a" / "two", study_uid=study),  # no extension
        write_instance(root / "a" / "b" / "c" / "three.dcm", study_uid=study),
        write_instance(root / "a" / "b" / "c" / "four.DCM", study_uid=study),
        write_instance(root / "d" / "five.dcm"),
    ]
    (root / "a" / "notes.txt").write_text("not a DICOM file\n" * 20)
    not_stored = [
        write_instance(root / "a" / "b" / "invalid.dcm", patient_id=None),  # 43264
        write_instance(root / ".hidden.dcm"),
        write_instance(root / ".cache" / "six.dcm"),
    ]
    zipped = [new_uid(), new_uid()]
    with zipfile.ZipFile(root / "d" / "export.zip", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("DICOM/IM1", make_instance(instance_uid=zipped[0]))
        archive.writestr("DICOM/sub/IM2.dcm", make_instance(instance_uid=zipped[1]))
        archive.writestr("README.txt", "exported by a CD burner")
        archive.writestr("__MACOSX/DICOM/._IM1", b"resource fork")
    return root, stored + zipped, not_stored


def test_import_dicom_folder_zip_and_rerun(db, dicom_storage, tree) -> None:
    root, uids, not_stored = tree
    out, _, code = run("import_dicom", str(root))

    assert code == 1  # the invalid instance failed
    assert counts(out) == {
        "stored": 7,
        "replaced": 0,
        "already present": 0,
        "skipped (not DICOM)": 2,  # notes.txt, README.txt inside the zip
        "failed": 1,
    }
    assert re.search(r"invalid\.dcm: 43264 .*PatientID", out)
    rows = Instance.objects.filter(instance_uid__in=uids)
    assert rows.count() == 7 == Instance.objects.count()
    assert all(storage.exists(row.blob_key) for row in rows)
    assert not Instance.objects.filter(instance_uid__in=not_stored).exists()
    keys_after_first = blob_keys()
    assert len(keys_after_first) == 7

    out2, _, code2 = run("import_dicom", str(root), "--quiet")
    assert code2 == 1
    assert counts(out2) == {
        "stored": 0,
        "replaced": 0,
        "already present": 7,
        "skipped (not DICOM)": 2,
        "failed": 1,
    }
    assert Instance.objects.count() == 7
    assert blob_keys() == keys_after_first


def test_import_dicom_exit_code_zero_without_failures_and_replace(db, dicom_storage, tmp_path) -> None:
    uids = [write_instance(tmp_path / f"im{i}.dcm") for i in range(3)]
    out, err, code = run("import_dicom", str(tmp_path))
    assert code == 0
    assert counts(out)["stored"] == 3 and counts(out)["failed"] == 0
    assert "failures:" not in out
    assert err == ""  # no progress bar when stderr is not a terminal

    out, _, code = run("import_dicom", str(tmp_path / "im0.dcm"), "--replace")
    assert code == 0
    assert counts(out)["replaced"] == 1 and counts(out)["stored"] == 0
    assert Instance.objects.filter(instance_uid__in=uids).count() == 3


def test_import_dicom_study_uid_mismatch(db, dicom_storage, tmp_path) -> None:
    study, other = new_uid(), new_uid()
    for i in range(3):
        write_instance(tmp_path / "s" / f"im{i}.dcm", study_uid=study)
    out, _, code = run("import_dicom", str(tmp_path / "s"), "--study-uid", other)
    assert code == 1
    assert counts(out)["failed"] == 3 and counts(out)["stored"] == 0
    assert len(re.findall(r"im\d\.dcm: 43265 ", out)) == 3
    assert not Instance.objects.exists()

    out, _, code = run("import_dicom", str(tmp_path / "s"), "--study-uid", study)
    assert code == 0 and counts(out)["stored"] == 3


def test_import_dicom_zip_failures_are_labelled_with_the_member(db, dicom_storage, tmp_path) -> None:
    archive_path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        archive.writestr("ok.dcm", make_instance())
        archive.writestr("dir/bad.dcm", make_instance(patient_id=None))
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    out, _, code = run("import_dicom", str(archive_path), str(tmp_path / "broken.zip"))
    assert code == 1
    assert f"{archive_path}!dir/bad.dcm: 43264 " in out
    assert f"{tmp_path / 'broken.zip'}: 272 not a readable zip archive" in out
    assert counts(out)["stored"] == 1 and counts(out)["failed"] == 2


def test_import_dicom_lists_at_most_20_failures(db, dicom_storage, tmp_path) -> None:
    for i in range(23):
        write_instance(tmp_path / f"bad{i:02}.dcm", patient_id=None)
    out, _, code = run("import_dicom", str(tmp_path))
    assert code == 1
    assert counts(out)["failed"] == 23
    assert len(re.findall(r"^  \S+bad\d\d\.dcm: 43264 ", out, re.MULTILINE)) == 20
    assert "... and 3 more" in out


def test_import_dicom_batches_keep_every_outcome_with_its_file(db, dicom_storage, tmp_path) -> None:
    """Files are indexed in batches of ``StoreBatch.MAX_PENDING``: each keeps its own outcome."""
    study = new_uid()
    n = 2 * StoreBatch.MAX_PENDING + 3
    bad = {7, StoreBatch.MAX_PENDING, n - 1}  # inside a batch, first of the next, the very last
    for i in range(n):
        write_instance(tmp_path / f"im{i:03}.dcm", study_uid=study, patient_id=None if i in bad else "P1")
    # The same instance twice in one batch: the second is "already present", not a failure.
    (tmp_path / "im001-copy.dcm").write_bytes((tmp_path / "im001.dcm").read_bytes())

    out, _, code = run("import_dicom", str(tmp_path))

    assert code == 1
    assert counts(out) == {
        "stored": n - len(bad),
        "replaced": 0,
        "already present": 1,
        "skipped (not DICOM)": 0,
        "failed": len(bad),
    }
    assert sorted(re.findall(r"(im\d{3})\.dcm: 43264 ", out)) == [f"im{i:03}" for i in sorted(bad)]
    assert Instance.objects.count() == n - len(bad)
    assert blob_keys() == set(Instance.objects.values_list("blob_key", flat=True))


def test_import_dicom_interrupted_indexes_what_it_wrote(db, dicom_storage, tmp_path, monkeypatch) -> None:
    """Ctrl-C between files: the files written so far are indexed, no blob is left without a row.

    The interrupt is injected into the file walk (a KeyboardInterrupt where the user's
    Ctrl-C would land), after more files than one batch holds.
    """
    for i in range(StoreBatch.MAX_PENDING + 10):
        write_instance(tmp_path / f"im{i:03}.dcm")
    walk = import_dicom.iter_files

    def interrupted_walk(root, on_error):
        for number, path in enumerate(sorted(walk(root, on_error))):
            if number == StoreBatch.MAX_PENDING + 5:
                raise KeyboardInterrupt
            yield path

    monkeypatch.setattr(import_dicom, "iter_files", interrupted_walk)
    out, _, code = run("import_dicom", str(tmp_path))

    assert code == 130
    assert "import_dicom INTERRUPTED" in out
    assert counts(out)["stored"] == StoreBatch.MAX_PENDING + 5
    assert Instance.objects.count() == StoreBatch.MAX_PENDING + 5
    assert blob_keys() == set(Instance.objects.values_list("blob_key", flat=True))


def test_import_dicom_survives_symlink_loops(db, dicom_storage, tmp_path) -> None:
    write_instance(tmp_path / "data" / "im.dcm")
    os.symlink(tmp_path / "data", tmp_path / "data" / "loop")
    out, _, code = run("import_dicom", str(tmp_path / "data"))
    assert code == 0
    assert counts(out)["stored"] == 1 and counts(out)["already present"] == 0


def test_import_dicom_rejects_missing_paths_and_bad_study_uid(db, tmp_path) -> None:
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_dicom", str(tmp_path / "nope"), stdout=io.StringIO())
    with pytest.raises(CommandError, match="not a valid UID"):
        call_command("import_dicom", str(tmp_path), "--study-uid", "1.2.x y", stdout=io.StringIO())


# --- sweep_orphans ---------------------------------------------------------------------------


def put_blob(key: str, data: bytes = b"orphan bytes") -> str:
    storage.put(key, io.BytesIO(data), size=len(data))
    return key


def store_instance(**kwargs) -> Instance:
    outcome = store(io.BytesIO(make_instance(**kwargs)))
    assert outcome.stored, outcome.failure_message
    return Instance.objects.get(pk=outcome.instance_id)


def test_sweep_deletes_old_orphans_and_keeps_indexed_blobs(db, dicom_storage) -> None:
    instance = store_instance()
    orphan = put_blob(f"dicom/{new_uid()}/{new_uid()}/{new_uid()}.1.dcm")
    out, _, code = run("sweep_orphans", "--grace", "0")
    assert code == 0
    assert not storage.exists(orphan)
    assert f"orphan blob {orphan}" in out and "deleted" in out
    assert storage.exists(instance.blob_key)
    assert Instance.objects.filter(pk=instance.pk).exists()
    assert re.search(r"orphan blobs deleted\s+1\b", out)


def test_sweep_keeps_young_orphans(db, dicom_storage) -> None:
    orphan = put_blob("dicom/1.2.3/young.dcm")
    out, _, code = run("sweep_orphans", "--grace", "3600")
    assert code == 0
    assert storage.exists(orphan)
    assert f"orphan blob {orphan}" in out and "young, kept" in out


def test_sweep_ignores_blobs_outside_the_dicom_prefix(db, dicom_storage) -> None:
    other = put_blob("exports/report.bin")
    run("sweep_orphans", "--grace", "0")
    assert storage.exists(other)


def test_sweep_reports_instances_whose_blob_is_missing(db, dicom_storage) -> None:
    lost = store_instance()
    kept = store_instance()
    storage.delete(lost.blob_key)
    out, _, code = run("sweep_orphans", "--grace", "0")
    assert code == 0
    line = next(line for line in out.splitlines() if lost.instance_uid in line)
    assert lost.study.study_uid in line and lost.blob_key in line
    assert kept.instance_uid not in out
    assert Instance.objects.filter(pk=lost.pk).exists()  # never deleted automatically
    assert re.search(r"instances with missing blob\s+1\b", out)


def test_sweep_dry_run_deletes_nothing(db, dicom_storage) -> None:
    orphan = put_blob("dicom/9.8/9.8.7/9.8.7.6/1.dcm")
    lost = store_instance()
    storage.delete(lost.blob_key)

    out, _, code = run("sweep_orphans", "--grace", "0", "--dry-run")
    assert code == 0
    assert storage.exists(orphan)
    assert Instance.objects.filter(pk=lost.pk).exists()
    assert "would delete" in out and lost.instance_uid in out
    assert re.search(r"orphan blobs would delete\s+1\b", out)

    run("sweep_orphans", "--grace", "0")
    assert not storage.exists(orphan)


def test_sweep_works_in_batches(db, dicom_storage, monkeypatch) -> None:
    from archive.management.commands import sweep_orphans

    monkeypatch.setattr(sweep_orphans, "BATCH_SIZE", 2)
    instances = [store_instance() for _ in range(3)]
    orphans = [put_blob(f"dicom/5.5/5.5.{i}/5.5.{i}.1/1.dcm") for i in range(5)]
    out, _, _ = run("sweep_orphans", "--grace", "0")
    assert not any(storage.exists(key) for key in orphans)
    assert all(storage.exists(instance.blob_key) for instance in instances)
    assert re.search(r"blobs checked\s+8\b", out)
    assert re.search(r"instances checked\s+3\b", out)


def test_sweep_removes_unfinished_filesystem_writes(dicom_storage, db):
    import os
    import time

    from django.core.files.storage import storages

    if dicom_storage != "filesystem":
        pytest.skip("temporary files exist only on the filesystem backend")
    root = storages["dicom"].location
    os.makedirs(os.path.join(root, "dicom", "1.2"), exist_ok=True)
    partial = os.path.join(root, "dicom", "1.2", ".x.dcm.1234.archway-partial")
    with open(partial, "wb") as handle:
        handle.write(b"half an instance")
    old = time.time() - 7200
    os.utime(partial, (old, old))
    out = io.StringIO()
    call_command("sweep_orphans", "--grace", "3600", stdout=out)
    assert not os.path.exists(partial)
    assert "1 unfinished blob write" in out.getvalue()
