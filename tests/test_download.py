import functools
import http.server
import socket
import threading
import zipfile

import pytest

from tools.download_data import fetch_names
from utils.data import load_samples
from utils.errors import DataError


@pytest.fixture
def archive_server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving a small copy of the tutorial's data.zip layout."""
    root = tmp_path / "www"
    root.mkdir()
    with zipfile.ZipFile(root / "data.zip", "w") as zf:
        zf.writestr("data/eng-fra.txt", "not a names file\n")
        zf.writestr("data/names/Japanese.txt", "Nakamura\nTanaka\n")
        zf.writestr("data/names/Greek.txt", "Papadopoulos\n")
    (root / "broken.zip").write_bytes(b"this is not a zip archive")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_extracts_only_the_names_files(archive_server, tmp_path):
    dest = tmp_path / "data" / "names"
    fetch_names(f"{archive_server}/data.zip", dest)
    assert sorted(p.name for p in dest.iterdir()) == ["Greek.txt", "Japanese.txt"]
    assert [(s.name, s.country) for s in load_samples(dest)] == [
        ("Papadopoulos", "Greek"), ("Nakamura", "Japanese"), ("Tanaka", "Japanese")]


def test_the_archive_is_downloaded_once(archive_server, tmp_path):
    dest = tmp_path / "data" / "names"
    fetch_names(f"{archive_server}/data.zip", dest)
    assert (tmp_path / "data" / "data.zip").is_file()
    (dest / "Greek.txt").unlink()
    # a second call unpacks the archive it already has and never touches the network
    fetch_names("http://127.0.0.1:9/unreachable.zip", dest)
    assert sorted(p.name for p in dest.iterdir()) == ["Greek.txt", "Japanese.txt"]


def test_offline_gives_one_clear_line_and_leaves_nothing_behind(tmp_path):
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = tmp_path / "data" / "names"
    with pytest.raises(DataError, match=r"could not download .*pass --data PATH") as info:
        fetch_names(f"http://127.0.0.1:{port}/data.zip", dest)
    assert "\n" not in str(info.value)
    assert not dest.exists() and list((tmp_path / "data").iterdir()) == []


def test_http_error_and_bad_archive_are_reported(archive_server, tmp_path):
    with pytest.raises(DataError, match="could not download"):
        fetch_names(f"{archive_server}/missing.zip", tmp_path / "a" / "names")
    dest = tmp_path / "b" / "names"
    dest.parent.mkdir()
    with pytest.raises(DataError, match="not a zip archive"):
        fetch_names(f"{archive_server}/broken.zip", dest)
