"""The registry storage on local disk and on HDFS (WebHDFS of the test cluster): same behaviour, same errors."""

from __future__ import annotations

import pytest

from sparkml_ops.config import RegistryAuth, RegistrySettings
from sparkml_ops.errors import ConfigError, NotFoundError, PathExistsError, PermissionDeniedError, RemoteError
from sparkml_ops.io.storage import HdfsStorage, LocalStorage, open_storage, safe_relpath

from tests.registry.backends import cluster_auth, registry_settings


@pytest.fixture(params=["local", pytest.param("hdfs", marks=pytest.mark.cluster)])
def storage(request, tmp_path):
    """A fresh empty storage root on each backend."""
    cluster = request.getfixturevalue("cluster") if request.param == "hdfs" else None
    storage = open_storage(registry_settings(request.param, tmp_path, cluster))
    yield storage
    if request.param == "hdfs":
        storage.client.delete(storage.root, recursive=True)


def test_write_read_list_status_delete(storage):
    storage.write("a/b/one.bin", b"x" * 10)
    storage.write("a/two.bin", [b"ab", b"cd"])
    assert storage.read_bytes("a/b/one.bin") == b"x" * 10
    assert storage.read_bytes("a/two.bin") == b"abcd"
    assert [(e.name, e.is_dir) for e in storage.list("a")] == [("b", True), ("two.bin", False)]
    assert storage.walk_files("a") == [("b/one.bin", 10), ("two.bin", 4)]
    assert storage.status("a/two.bin").size == 4 and storage.status("a/missing") is None
    assert storage.list("no/such/dir") == []
    assert storage.delete("a", recursive=True) and not storage.exists("a")
    assert storage.delete("a") is False


def test_write_refuses_to_overwrite_unless_asked(storage):
    storage.write("f.json", b"1")
    with pytest.raises(PathExistsError):
        storage.write("f.json", b"2")
    storage.write("f.json", b"3", overwrite=True)
    assert storage.read_bytes("f.json") == b"3"


def test_rename_noreplace_fails_when_the_target_exists_and_changes_nothing(storage):
    storage.write("stage1/manifest.json", b"mine")
    storage.write("model/1/manifest.json", b"winner")
    storage.makedirs("model/2")  # even an empty directory is never replaced or entered
    for target in ("model/1", "model/2"):
        with pytest.raises(PathExistsError):
            storage.rename_noreplace("stage1", target)
    assert storage.read_bytes("model/1/manifest.json") == b"winner"
    assert storage.list("model/2") == []
    assert storage.read_bytes("stage1/manifest.json") == b"mine"
    storage.rename_noreplace("stage1", "model/3")
    assert storage.read_bytes("model/3/manifest.json") == b"mine" and not storage.exists("stage1")


def test_replace_swaps_a_file_atomically(storage):
    storage.write("aliases/champion.json", b"1")
    storage.write("aliases/.tmp-x", b"2")
    storage.replace("aliases/.tmp-x", "aliases/champion.json")
    assert storage.read_bytes("aliases/champion.json") == b"2"
    assert [e.name for e in storage.list("aliases")] == ["champion.json"]


def test_reading_a_missing_file_is_not_found(storage):
    with pytest.raises(NotFoundError, match="does not exist"):
        storage.read_bytes("nope.bin")


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a\\b"])
def test_paths_outside_the_root_are_refused(storage, bad):
    with pytest.raises(ValueError):
        storage.write(bad, b"x")
    with pytest.raises(ValueError):
        safe_relpath(bad)


@pytest.mark.parametrize("uri,message", [
    ("file://relative/path", "key 'registry.uri' must be file:///absolute/path, got 'file://relative/path'."),
    ("webhdfs:///no-host", "key 'registry.uri' must be webhdfs://namenode:port/absolute/path, got 'webhdfs:///no-host'."),
])
def test_bad_registry_uris_are_config_errors(uri, message):
    with pytest.raises(ConfigError) as exc:
        open_storage(RegistrySettings(uri=uri))
    assert str(exc.value) == message and exc.value.exit_code == 2


def test_simple_auth_needs_a_user():
    with pytest.raises(ConfigError, match="registry.auth.method 'simple' needs registry.auth.user"):
        open_storage(RegistrySettings(uri="webhdfs://nn:9870/r", auth={"method": "simple"}))


def test_backend_is_chosen_by_scheme(tmp_path):
    assert isinstance(open_storage(RegistrySettings(uri=tmp_path.as_uri())), LocalStorage)
    hdfs = open_storage(RegistrySettings(uri="swebhdfs://nn.example:9871/apps/registry"))
    assert isinstance(hdfs, HdfsStorage) and hdfs.uri == "swebhdfs://nn.example:9871/apps/registry"
    assert hdfs.client.url == "https://nn.example:9871"


def test_unreachable_namenode_is_a_remote_error():
    # Nothing listens on port 1: a real refused connection.
    storage = open_storage(RegistrySettings(uri="webhdfs://127.0.0.1:1/registry", timeout_s=5))
    with pytest.raises(RemoteError) as exc:
        storage.list("fraud")
    assert exc.value.exit_code == 6
    assert str(exc.value).startswith("HDFS unreachable while trying to list webhdfs://127.0.0.1:1/registry/fraud: ")
    assert str(exc.value).endswith("Check that the NameNode and DataNodes are up and reachable from this host; "
                                   "retrying later is safe.")
    assert exc.value.__cause__ is not None


@pytest.mark.cluster
def test_hdfs_permission_denied_is_a_clear_error(cluster, tmp_path):
    owner = open_storage(registry_settings("hdfs", tmp_path, cluster))
    owner.makedirs("locked")
    owner.client.set_permission(owner.root + "/locked", "700")
    # On the secure cluster the stranger is the analyst principal, logged in from its keytab.
    stranger = open_storage(RegistrySettings(uri=owner.uri, auth=RegistryAuth(**cluster_auth(cluster, "other"))))
    with pytest.raises(PermissionDeniedError) as exc:
        stranger.write("locked/model.bin", b"x")
    assert exc.value.exit_code == 2
    assert str(exc.value).startswith(f"{owner.uri}/locked/model.bin: permission denied (write): ")
    assert owner.list("locked") == []


@pytest.fixture
def fake_namenode_with_dead_datanode():
    """MOCK (named as such): a stand-in NameNode that redirects data transfers to a DataNode port where
    nothing listens. A dead DataNode behind a live NameNode cannot be produced on the shared test
    cluster without breaking every other test using it."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def _redirect(self):
            self.send_response(307)
            self.send_header("Location", "http://127.0.0.1:1/webhdfs/v1/data?op=CREATE")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_PUT = do_GET = _redirect

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_unreachable_datanode_is_a_remote_error(fake_namenode_with_dead_datanode):
    port = fake_namenode_with_dead_datanode
    storage = open_storage(RegistrySettings(uri=f"webhdfs://127.0.0.1:{port}/registry", timeout_s=5))
    with pytest.raises(RemoteError) as exc:
        storage.write("fraud/1/model.bin", b"x")
    assert str(exc.value).startswith(f"HDFS unreachable while trying to write webhdfs://127.0.0.1:{port}/registry/"
                                     "fraud/1/model.bin: ConnectionError: ")
    with pytest.raises(RemoteError, match="HDFS unreachable while trying to read"):
        storage.read_bytes("fraud/1/model.bin")


@pytest.mark.parametrize("limit", [11, 10, 7, 14])
def test_read_upto_reads_at_most_the_limit_so_a_longer_file_shows(storage, limit):
    storage.write("blob", b"0123456789")
    # A loader asks for the manifest's size + 1: one byte more than expected means the file is longer.
    assert storage.read_upto("blob", limit) == b"0123456789"[:limit]


def test_local_symlinks_out_of_the_root_are_not_followed(tmp_path):
    secret = tmp_path / "outside.txt"
    secret.write_text("not a model")
    storage = LocalStorage(tmp_path / "registry")
    storage.makedirs("fraud/1/model")
    (tmp_path / "registry/fraud/1/model/model.pkl").symlink_to(secret)
    with pytest.raises(PermissionDeniedError, match="outside the registry root; refusing to read it"):
        storage.read_bytes("fraud/1/model/model.pkl")
    with pytest.raises(PermissionDeniedError):
        storage.read_upto("fraud/1/model/model.pkl", 11)


@pytest.mark.cluster
def test_legacy_rename_of_an_httpfs_gateway_is_detected_and_undone(cluster, tmp_path):
    # Stand-in for HttpFS (named as such): the real NameNode, but renameoptions is dropped the way
    # HttpFS drops it, so the legacy rename runs; there is no HttpFS server in the test cluster.
    storage = open_storage(registry_settings("hdfs", tmp_path, cluster))
    real_rename = storage.client._rename

    def legacy_rename(path, **params):
        params.pop("renameoptions", None)
        return real_rename(path, **params)

    storage.client._rename = legacy_rename
    try:
        storage.write("stage1/manifest.json", b"mine")
        storage.write("model/1/manifest.json", b"winner")
        with pytest.raises(PathExistsError):
            storage.rename_noreplace("stage1", "model/1")
        assert storage.walk_files("model/1") == [("manifest.json", 6)]  # the move into it was undone
        assert storage.read_bytes("stage1/manifest.json") == b"mine"
        storage.rename_noreplace("stage1", "model/2")
        assert storage.read_bytes("model/2/manifest.json") == b"mine"
    finally:
        storage.client.delete(storage.root, recursive=True)
