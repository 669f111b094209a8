"""Download the official copy of the surname data set (the PyTorch tutorial's archive) into data/names/.

    python -m tools.download_data                 # from the repository root
    python train.py --data data/names             # then train on it

The project ships a copy as data/names.tsv (data/README.md says how it differs); this fetches the
archive's names/<Country>.txt files, 20,074 names, once.
"""
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from utils.errors import DataError


def download(url: str, dest: Path, timeout: float = 30.0) -> None:
    """Stream `url` to `dest` with a progress bar; `dest` appears only when complete."""
    partial = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {url}") as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as e:
        partial.unlink(missing_ok=True)
        reason = getattr(e, "reason", e)
        raise DataError(f"could not download {url} ({reason}); offline? pass --data PATH to a names.tsv or names/ folder") from None
    partial.replace(dest)


def extract_names(archive: Path, dest: Path) -> int:
    """Unpack the archive's `*/names/*.txt` into `dest` (all or nothing); returns the file count."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist()
                       if PurePosixPath(m.filename).parent.name == "names" and m.filename.endswith(".txt")]
            if not members:
                raise DataError(f"{archive}: the archive has no names/<Country>.txt files")
            staging = Path(tempfile.mkdtemp(prefix=".names-", dir=dest.parent))
            for member in members:
                (staging / PurePosixPath(member.filename).name).write_bytes(zf.read(member))
    except zipfile.BadZipFile:
        raise DataError(f"{archive}: not a zip archive; delete it and run again") from None
    if dest.exists():
        shutil.rmtree(dest)
    staging.rename(dest)
    return len(members)


def fetch_names(url: str, dest: Path) -> Path:
    """Download `url` and leave its names/*.txt in `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    archive = dest.parent / "data.zip"
    if not archive.exists():
        download(url, archive)
    count = extract_names(archive, dest)
    print(f"extracted {count} files into {dest}")
    return dest


def main() -> None:
    from config.config import DATA_URL, ROOT

    fetch_names(DATA_URL, ROOT / "data" / "names")


if __name__ == "__main__":
    from utils.errors import run_script

    run_script(main)
