"""WebHDFS of the test cluster through the `hdfs` package, as the registry uses it."""

from __future__ import annotations

import pytest
from hdfs.util import HdfsError

pytestmark = pytest.mark.cluster


def test_write_then_read_back_bytes(hdfs_client, hdfs_dir):
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value
    hdfs_client.write(f"{hdfs_dir}/blob.bin", data=payload)

    with hdfs_client.read(f"{hdfs_dir}/blob.bin") as reader:
        assert reader.read() == payload
    assert hdfs_client.status(f"{hdfs_dir}/blob.bin")["length"] == len(payload)


def test_list_shows_files_and_directories(hdfs_client, hdfs_dir):
    hdfs_client.write(f"{hdfs_dir}/b.txt", data=b"b")
    hdfs_client.write(f"{hdfs_dir}/a.txt", data=b"a")
    hdfs_client.makedirs(f"{hdfs_dir}/sub")

    listing = dict(hdfs_client.list(hdfs_dir, status=True))

    assert sorted(listing) == ["a.txt", "b.txt", "sub"]
    assert listing["sub"]["type"] == "DIRECTORY"
    assert listing["a.txt"]["type"] == "FILE"


def test_directory_rename_moves_the_whole_tree_at_once(hdfs_client, hdfs_dir):
    hdfs_client.write(f"{hdfs_dir}/staging/v1/model.bin", data=b"weights")
    hdfs_client.write(f"{hdfs_dir}/staging/v1/meta.json", data=b"{}")

    hdfs_client.rename(f"{hdfs_dir}/staging/v1", f"{hdfs_dir}/v1")

    assert sorted(hdfs_client.list(f"{hdfs_dir}/v1")) == ["meta.json", "model.bin"]
    assert hdfs_client.status(f"{hdfs_dir}/staging/v1", strict=False) is None
    with hdfs_client.read(f"{hdfs_dir}/v1/model.bin") as reader:
        assert reader.read() == b"weights"


def test_rename_onto_an_existing_directory_does_not_replace_it(hdfs_client, hdfs_dir):
    # The registry publishes a version by renaming its staging dir; a concurrent publisher must lose, not merge.
    hdfs_client.write(f"{hdfs_dir}/first/model.bin", data=b"first")
    hdfs_client.write(f"{hdfs_dir}/second/model.bin", data=b"second")
    hdfs_client.write(f"{hdfs_dir}/target/model.bin", data=b"published")

    # WebHDFS RENAME onto an existing file fails outright...
    with pytest.raises(HdfsError):
        hdfs_client.rename(f"{hdfs_dir}/first/model.bin", f"{hdfs_dir}/target/model.bin")
    # ...and onto an existing directory it moves the source *into* it (POSIX `mv` semantics), so a
    # publisher must check that the destination is absent; the published file is never overwritten.
    hdfs_client.rename(f"{hdfs_dir}/second", f"{hdfs_dir}/target")

    with hdfs_client.read(f"{hdfs_dir}/target/model.bin") as reader:
        assert reader.read() == b"published"
    assert sorted(hdfs_client.list(f"{hdfs_dir}/target")) == ["model.bin", "second"]


def test_writing_over_an_existing_file_fails_without_overwrite(hdfs_client, hdfs_dir):
    hdfs_client.write(f"{hdfs_dir}/f.txt", data=b"kept")

    with pytest.raises(HdfsError, match="already exists"):
        hdfs_client.write(f"{hdfs_dir}/f.txt", data=b"lost")

    with hdfs_client.read(f"{hdfs_dir}/f.txt") as reader:
        assert reader.read() == b"kept"
