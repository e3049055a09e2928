"""Fetching checkpoints from URLs into a local cache.

The released ``anatcl`` package caches every checkpoint as ``weights.pth``, so after the first download all
folds and variants silently load the first one. Here the cache file name is derived from the *whole* URL
(sha256), keeping the basename only for readability, and the download goes to a temporary file that is
renamed into place, so an interrupted download never leaves a truncated cache entry.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from anatlearn.errors import CheckpointError
from anatlearn.io import atomic_path

URL_SCHEMES = ("http", "https", "file")


def is_url(path_or_url) -> bool:
    return isinstance(path_or_url, str) and urllib.parse.urlparse(path_or_url).scheme in URL_SCHEMES


def default_cache_dir() -> Path:
    return Path(os.environ.get("ANATLEARN_CACHE", Path.home() / ".cache" / "anatlearn"))


def cache_path(url: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache file of ``url``: ``<sha256(url)[:24]>-<basename>``; two different URLs never collide."""
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:24]
    base = Path(urllib.parse.urlparse(url).path).name or "checkpoint"
    return Path(cache_dir or default_cache_dir()) / f"{digest}-{base}"


def fetch(url: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the local path of ``url``, downloading it into the cache on first use."""
    target = cache_path(url, cache_dir)
    if target.exists():
        return target
    try:
        with urllib.request.urlopen(url, timeout=60) as response, atomic_path(target) as tmp:
            with open(tmp, "wb") as fh:
                shutil.copyfileobj(response, fh)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CheckpointError(f"could not download checkpoint {url}: {exc}") from None
    return target
