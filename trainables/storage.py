"""Where an experiment is stored: a local folder or an object store (``s3://``, ``gs://``), as one pyarrow (filesystem, path).

``--storage-path`` (and the experiment given to ``analysis.report``,
``search.export``, ``search.predict`` and ``Classifier.load``) is turned into
a :class:`Storage` once, by :func:`locate`: a local path or a ``file://`` URI
is an absolute local folder; any other URI is what
``pyarrow.fs.FileSystem.from_uri`` makes of it, query included
(``s3://bucket/exp?endpoint_override=127.0.0.1:9000&scheme=http``), with
credentials and region the usual way (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``; for Google Cloud Storage,
``GOOGLE_APPLICATION_CREDENTIALS``). Ray Tune gets the same pair
(``RunConfig(storage_path=..., storage_filesystem=...)``); a local folder
goes to Ray as a plain path, as before.

A :class:`Storage` reads like the ``pathlib.Path`` the code used before
(``/``, ``exists``, ``is_file``, ``read_text``), so that code which reads
one file at a time takes either. Code that needs local files (torch's loads
of a checkpoint folder) asks for :meth:`Storage.local_copy`: the folder itself
when it is local, else a download of that one folder to a temporary folder;
whole experiments are never copied.
"""

from __future__ import annotations

import functools
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import pyarrow.fs

from trainables.errors import InputError


def is_remote(value: str | os.PathLike) -> bool:
    """Whether ``value`` is a URI of storage other than this machine's disk (``s3://``, ``gs://``; not ``file://``)."""
    text = str(value)
    return "://" in text and urlsplit(text).scheme.lower() != "file"


def local_path(value: str | os.PathLike) -> Path:
    """A local path or a ``file://`` URI as an absolute path; ValueError for a ``file://`` URI of another host."""
    text = str(value)
    if "://" in text:
        uri = urlsplit(text)
        if uri.netloc not in ("", "localhost"):
            raise ValueError(f"a file:// URI names this machine's files, not those of {uri.netloc!r}")
        text = unquote(uri.path)
    return Path(text).expanduser().resolve()


@dataclass(frozen=True)
class Storage:
    """A folder on a pyarrow filesystem: ``path`` on ``filesystem`` (no scheme, no query), ``uri`` as a user writes it."""

    filesystem: pyarrow.fs.FileSystem
    path: str
    uri: str

    @property
    def local(self) -> bool:
        return isinstance(self.filesystem, pyarrow.fs.LocalFileSystem)

    @property
    def ray_filesystem(self) -> pyarrow.fs.FileSystem | None:
        """What Ray's ``storage_filesystem`` takes: None for a local folder (Ray reads the plain path), else the filesystem."""
        return None if self.local else self.filesystem

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return self.uri

    def __truediv__(self, name: str) -> Storage:
        """The file or folder ``name`` (which may hold ``/``) inside this folder."""
        name = str(name).strip("/")
        if self.local:
            joined = str(Path(self.path) / name)
            return Storage(self.filesystem, joined, joined)
        parts = urlsplit(self.uri)
        uri = urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{name}"))
        return Storage(self.filesystem, f"{self.path.rstrip('/')}/{name}", uri)

    def _type(self) -> pyarrow.fs.FileType:
        return self.filesystem.get_file_info(self.path).type

    def exists(self) -> bool:
        return self._type() != pyarrow.fs.FileType.NotFound

    def is_file(self) -> bool:
        return self._type() == pyarrow.fs.FileType.File

    def is_dir(self) -> bool:
        return self._type() == pyarrow.fs.FileType.Directory

    def names(self) -> list[str]:
        """The names of the folder's entries; [] when it does not exist."""
        selector = pyarrow.fs.FileSelector(self.path, allow_not_found=True)
        return sorted(info.base_name for info in self.filesystem.get_file_info(selector))

    def read_bytes(self) -> bytes:
        """The file's content; FileNotFoundError when there is none (object stores say so in their own words)."""
        if not self.is_file():
            raise FileNotFoundError(f"no file at {self.uri!r}")
        with self.filesystem.open_input_stream(self.path) as stream:
            return stream.readall()

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def write_text(self, text: str) -> Storage:
        """Write ``text`` whole: locally through a temporary file; on an object store one upload, which is atomic."""
        if self.local:
            write_local_atomically(text, Path(self.path))
            return self
        with self.filesystem.open_output_stream(self.path) as stream:
            stream.write(text.encode())
        return self

    def mkdir(self) -> None:
        """Create the folder and its parents (on an object store, where folders are prefixes, at most a marker)."""
        if self.local:  # OSError with its errno and strerror, as before
            Path(self.path).mkdir(parents=True, exist_ok=True)
            return
        self.filesystem.create_dir(self.path, recursive=True)

    def check_writable(self) -> None:
        """Write and delete a file in the folder (OSError if refused): some places refuse only then (``/proc``)."""
        if self.local:
            with tempfile.TemporaryFile(dir=self.path):
                return
        probe = self / f".write-probe-{uuid.uuid4().hex}"
        probe.write_text("")
        self.filesystem.delete_file(probe.path)

    def delete(self) -> None:
        """Delete the folder and everything in it; nothing when it is not there."""
        try:
            self.filesystem.delete_dir(self.path)
        except FileNotFoundError:
            pass

    @contextmanager
    def local_copy(self) -> Iterator[Path]:
        """A local folder with this folder's files: itself when local; else a download of it, deleted afterwards."""
        if self.local:
            yield Path(self.path)
            return
        with tempfile.TemporaryDirectory(prefix=f"{self.name}.") as folder:
            pyarrow.fs.copy_files(self.path, folder, source_filesystem=self.filesystem,
                                  destination_filesystem=pyarrow.fs.LocalFileSystem())
            yield Path(folder)

    def upload(self, folder: str | os.PathLike) -> None:
        """Copy the local ``folder``'s files into this folder."""
        self.mkdir()
        pyarrow.fs.copy_files(str(folder), self.path, source_filesystem=pyarrow.fs.LocalFileSystem(),
                              destination_filesystem=self.filesystem)


def locate(value: str | os.PathLike) -> Storage:
    """``value`` (a local path, a ``file://`` URI, or a URI pyarrow reads) as a :class:`Storage`.

    ValueError (pyarrow's ``ArrowInvalid``) for a scheme pyarrow does not know, OSError where it cannot reach the
    storage (e.g. a bucket whose region it cannot find).
    """
    if not is_remote(value):
        folder = str(local_path(value))
        return Storage(pyarrow.fs.LocalFileSystem(), folder, folder)
    filesystem, path = _from_uri(str(value))
    return Storage(filesystem, path.rstrip("/"), str(value))


@functools.lru_cache(maxsize=16)
def _from_uri(uri: str) -> tuple[pyarrow.fs.FileSystem, str]:
    # Once per URI in a process: from_uri can ask the server (an S3 bucket's region).
    return pyarrow.fs.FileSystem.from_uri(uri)


def check_reachable(storage: Storage) -> None:
    """OSError (or FileNotFoundError) unless the bucket, or the nearest existing folder, of ``storage`` can be read.

    Reads only: a dry run writes nothing. On an object store, the first part of the path is the bucket.
    """
    if storage.local:
        return
    bucket = storage.path.split("/", 1)[0]
    if storage.filesystem.get_file_info(bucket).type == pyarrow.fs.FileType.NotFound:
        raise FileNotFoundError(f"bucket {bucket!r} does not exist")
    storage.filesystem.get_file_info(pyarrow.fs.FileSelector(storage.path, allow_not_found=True))


def write_local_atomically(text: str, path: Path) -> Path:
    """Write ``text`` to the local ``path`` through a temporary file, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def user_folder(value: str | os.PathLike) -> Path | Storage:
    """A folder a user named: a :class:`Storage` for a bucket's URI, else a local ``Path`` (``~`` expanded, as given).

    InputError naming ``value`` and the reason where pyarrow makes no filesystem of the URI or cannot reach it.
    """
    if not is_remote(value):
        return local_path(value) if "://" in str(value) else Path(value).expanduser()
    try:
        return locate(value)
    except (ValueError, OSError) as err:
        raise InputError(f"{str(value)!r}: {first_line(err)}") from None


@contextmanager
def local_folder(where: str | os.PathLike | Storage) -> Iterator[Path]:
    """A local folder with ``where``'s files: a local path itself, a :class:`Storage` its :meth:`~Storage.local_copy`."""
    if isinstance(where, Storage):
        with where.local_copy() as folder:
            yield folder
    else:
        yield Path(where)


def first_line(err: BaseException) -> str:
    """An error in one line: pyarrow's messages about a bucket run to several (and its OSErrors have no strerror)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def as_storage(where: str | os.PathLike | Storage) -> Storage:
    """``where`` as a :class:`Storage`: itself, or :func:`locate` of a path or URI."""
    return where if isinstance(where, Storage) else locate(where)


__all__ = ["Storage", "as_storage", "check_reachable", "first_line", "is_remote", "local_folder", "local_path", "locate",
           "user_folder", "write_local_atomically"]
