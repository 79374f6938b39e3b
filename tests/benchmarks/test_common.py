"""Helpers every benchmark shares."""

from benchmarks import common


def test_runs_folder_links_a_teacher_cache_that_does_not_exist_yet(tmp_path, monkeypatch):
    # A fresh checkout has no results/teachers: the link must still lead somewhere the
    # first search can write its teacher to, and running again must reuse the link.
    monkeypatch.setattr(common, "ROOT", tmp_path / "checkout")
    runs = tmp_path / "runs"
    for _ in range(2):
        with common.runs_folder(str(runs), prefix="t-") as results:
            (results / "teachers" / "some-teacher").mkdir(exist_ok=True)
    assert (tmp_path / "checkout" / "results" / "teachers" / "some-teacher").is_dir()
    assert (runs / "teachers").is_symlink()


def test_runs_folder_without_runs_is_temporary(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "ROOT", tmp_path / "checkout")
    with common.runs_folder(None, prefix="t-") as results:
        assert (results / "teachers").is_dir()
    assert not results.exists()
