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


HF_HUB_PREFIX = "hf-hub:"


def is_hf_hub(spec) -> bool:
    return isinstance(spec, str) and spec.startswith(HF_HUB_PREFIX)


def _offline() -> bool:
    # read at call time: huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def resolve_hf_hub(spec: str) -> Path:
    """The local folder of ``hf-hub:ORG/NAME[@REVISION]``, through huggingface_hub's cache.

    ``HF_HUB_CACHE`` (or ``HF_HOME``) chooses the cache and ``HF_HUB_OFFLINE=1`` forbids the network: the
    snapshot must then already be cached (``models--ORG--NAME/snapshots/<commit>/``, ``refs/<revision>``).
    """
    repo = spec[len(HF_HUB_PREFIX):]
    repo_id, _, revision = repo.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise CheckpointError(f"{spec!r} is not a Hub model id: expected hf-hub:ORG/NAME (optionally @REVISION)")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError:
        raise CheckpointError(f"loading {spec} needs huggingface_hub, the optional extra 'hub': "
                              f"pip install 'anatlearn[hub]'") from None
    cache = os.environ.get("HF_HUB_CACHE") or (os.path.join(os.environ["HF_HOME"], "hub") if os.environ.get("HF_HOME") else None)
    try:
        folder = snapshot_download(repo_id, revision=revision or None, cache_dir=cache, local_files_only=_offline())
    except LocalEntryNotFoundError:
        where = cache or "the default huggingface_hub cache"
        raise CheckpointError(f"{spec}: not in the Hub cache ({where}) and downloads are off "
                              f"(HF_HUB_OFFLINE=1 or no connection); download it once with network access") from None
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise CheckpointError(f"could not fetch {spec} from the Hugging Face Hub: {exc}") from None
    return Path(folder)
