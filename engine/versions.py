"""Versions that are part of a run's identity (its spec hash), torch-free.

A finished run is reused when a new request has the same spec hash. The spec holds the resolved
parameters, so a changed *default* already changes the hash; these versions cover what the
parameters do not:

- ``data``: the dataset's content version. The embedded generator carries ``SYN_VERSION``
  (bumped whenever the generator's output changes); a file dataset (CIFAR pickles, npz) is
  fingerprinted by its files' sizes and first and last MiB (content-bound, cheap even for the
  170 MB CIFAR files).
- ``method``: a fingerprint of the method's implementation files (``MethodInfo.code``) with
  comments and blank lines left out, so an edit of the algorithm is a new version and a reworded
  comment is not.

``runs show`` prints both; ``spec.versions`` holds them.
"""

from __future__ import annotations

import hashlib
import io
import tokenize
from functools import lru_cache
from pathlib import Path

METHODS_DIR = Path(__file__).resolve().parent / "methods"
_EDGE = 1 << 20  # bytes read from each end of a data file


@lru_cache(maxsize=64)
def _file_fingerprint(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(_EDGE))
        if size > 2 * _EDGE:
            f.seek(size - _EDGE)
            h.update(f.read(_EDGE))
        else:
            h.update(f.read())
    return h.hexdigest()


def files_version(paths: list[Path]) -> str:
    """Fingerprint of data files (missing files count as absent, never an error: the loader
    reports those)."""
    h = hashlib.sha256()
    for p in sorted(paths):
        try:
            st = p.stat()
        except OSError:
            h.update(f"{p.name}:missing".encode())
            continue
        h.update(p.name.encode())
        h.update(_file_fingerprint(str(p), st.st_size, st.st_mtime_ns).encode())
    return h.hexdigest()[:12]


def _code_tokens(path: Path) -> bytes:
    """The file's tokens without comments and blank lines (layout-insensitive)."""
    src = path.read_text()
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.INDENT, tokenize.DEDENT):
            continue
        out.append(f"{tok.type}:{tok.string}" if tok.type != tokenize.NEWLINE else "\n")
    return " ".join(out).encode()


@lru_cache(maxsize=None)
def code_version(files: tuple[str, ...]) -> str:
    """Fingerprint of files under ``engine/methods`` (names as in ``MethodInfo.code``)."""
    h = hashlib.sha256()
    for name in files:
        h.update(name.encode())
        h.update(_code_tokens(METHODS_DIR / name))
    return h.hexdigest()[:12]


def method_version(method: str) -> str:
    from .methods.params import CATALOG

    return code_version(CATALOG.get(method).code)


def dataset_version(dataset: str, data_root: str | None) -> str:
    from .datasets import DATASETS

    return DATASETS.get(dataset).version(data_root)


def versions_for(dataset: str, data_root: str | None, method: str) -> dict[str, str]:
    return {"data": dataset_version(dataset, data_root), "method": method_version(method)}
