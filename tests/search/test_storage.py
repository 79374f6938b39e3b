"""Storage URLs in logs, reports and errors: passwords never shown, wherever they sit."""

from __future__ import annotations

import pytest

from search.storage import StorageError, open_storage, safe_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://bob:pw1234@db.host/nas", "postgresql://bob:***@db.host/nas"),
        (
            "postgresql+psycopg2://bob@127.0.0.1:5432/nas?password=S3cretPW",
            "postgresql+psycopg2://bob@127.0.0.1:5432/nas?password=***",
        ),
        (
            "postgresql://bob@h/nas?sslmode=require&sslpassword=abc%40def",
            "postgresql://bob@h/nas?sslmode=require&sslpassword=***",
        ),
        ("sqlite:///results/r/study.db", "sqlite:///results/r/study.db"),
    ],
)
def test_safe_url_masks_the_password_before_the_host_and_in_the_query(url, shown):
    assert safe_url(url) == shown


def test_a_refused_storage_never_quotes_its_query_password():
    # Nothing listens on port 1: the driver's own message must not carry the password.
    url = "postgresql+psycopg2://bob@127.0.0.1:1/nas?password=S3cretPW&connect_timeout=2"
    with pytest.raises(StorageError) as error:
        open_storage(url)
    assert "S3cretPW" not in str(error.value)
    assert "password=***" in str(error.value)


@pytest.mark.parametrize("kind", ["sqlite:///{}/nosuch.db", "{}/nosuch.journal"])
def test_a_worker_given_a_missing_study_file_creates_nothing(tmp_path, capsys, kind):
    from search.cli import main

    url = kind.format(tmp_path)
    assert main(["worker", "--storage", url, "--study", "r"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no study storage at" in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []
