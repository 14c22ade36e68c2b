"""New project files: all or nothing, never over an existing file."""

from __future__ import annotations

import pytest

from sparkml_ops.errors import PathExistsError
from sparkml_ops.io.files import write_new_files


def test_every_file_is_created_with_its_parents(tmp_path):
    files = {tmp_path / "a" / "b.txt": "b\n", tmp_path / "c.txt": "c\n"}
    assert write_new_files(files) == list(files)
    assert (tmp_path / "a" / "b.txt").read_text() == "b\n" and (tmp_path / "c.txt").read_text() == "c\n"


def test_an_existing_file_refuses_them_all_and_nothing_is_written(tmp_path):
    (tmp_path / "c.txt").write_text("mine\n")
    with pytest.raises(PathExistsError) as err:
        write_new_files({tmp_path / "new.txt": "x", tmp_path / "c.txt": "theirs"})
    assert err.value.message == f"{tmp_path / 'c.txt'} already exists; nothing was written."
    assert err.value.exit_code == 8
    assert not (tmp_path / "new.txt").exists() and (tmp_path / "c.txt").read_text() == "mine\n"


def test_a_failure_midway_removes_what_was_created(tmp_path):
    (tmp_path / "blocker").write_text("a file where a directory is needed")
    with pytest.raises(OSError):  # a file where a directory must go
        write_new_files({tmp_path / "first.txt": "1", tmp_path / "blocker" / "second.txt": "2"})
    assert not (tmp_path / "first.txt").exists()
