"""Lambda layers as AWS keeps and unpacks them: published versions, merged into /opt in order.

A layer version is published from a .zip archive or a folder of what the archive holds (SAM's
``ContentUri``); its content is copied at publish, so it never changes after, and it is named by
its version ARN (``arn:aws:lambda:<region>:<account>:layer:<name>:<version>``). A function lists up
to five; AWS extracts them into /opt in the order listed, a later layer's file replacing an
earlier one's at the same path, and a Python function imports from /opt/python and
/opt/python/lib/python3.x/site-packages after its own code. ``merge_into`` builds that /opt
once per function version (the environment mounts it at /opt, ``mount_namespace.py``).
"""

from __future__ import annotations

import re
import shutil
import sys
import threading
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Final

from demo_apps.cloud.lambdas.lambda_errors import DeployError
from demo_apps.cloud.lambdas.lambda_refs import ACCOUNT, REGION

MAX_LAYERS: Final = 5  # AWS: a function uses up to five layers
SITE_PACKAGES: Final = f"python/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
PYTHON_FOLDERS: Final = (SITE_PACKAGES, "python")  # the order the runtime puts them on sys.path
_NAME = re.compile(r"[A-Za-z0-9_-]{1,140}")


def layer_arn(name: str, version: int) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{name}:{version}"


def content_bytes(content: Path) -> tuple[int, int]:
    """(zipped, unzipped) bytes of a code folder or layer: an archive's own, a folder's files each
    deflated as a zip would hold them."""
    if content.is_file() and zipfile.is_zipfile(content):
        with zipfile.ZipFile(content) as opened:
            members = opened.infolist()
        return content.stat().st_size, sum(m.file_size for m in members)
    zipped = unzipped = 0
    for path in content.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            data = path.read_bytes()
            unzipped += len(data)
            zipped += len(zlib.compress(data, 6)) + 30 + len(path.name)  # + a local file header
    return zipped, unzipped


def layer_holds(layer: Path, relative: Path) -> bool:
    """Whether a layer has `relative` (a module's file) where the runtime imports from."""
    wanted = [f"{folder}/{relative.as_posix()}" for folder in PYTHON_FOLDERS]
    if layer.is_file() and zipfile.is_zipfile(layer):
        with zipfile.ZipFile(layer) as opened:
            return bool(set(wanted) & set(opened.namelist()))
    return any((layer / path).is_file() for path in wanted)


def _extract(archive: Path, into: Path) -> None:
    """Unzip `archive` into `into`, refusing members that would land outside it."""
    with zipfile.ZipFile(archive) as opened:
        for member in opened.infolist():
            path = PurePosixPath(member.filename)
            if path.is_absolute() or ".." in path.parts:
                raise DeployError(f"layer {archive.name}: member {member.filename!r} leaves the layer's folder")
        opened.extractall(into)


def copy_content(content: Path, into: Path) -> None:
    """A layer's files (an archive's, or a folder's with links followed) added into `into`."""
    if content.is_file() and zipfile.is_zipfile(content):
        _extract(content, into)
    elif content.is_dir():
        shutil.copytree(content, into, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        raise DeployError(f"layer content {content} is neither a .zip archive nor a folder")


def merge_into(layers: Sequence[Path], opt: Path) -> Path:
    """`opt` holding every layer's files, in order (later ones win), as AWS's /opt does."""
    opt.mkdir(parents=True, exist_ok=True)
    for layer in layers:
        copy_content(layer, opt)
    return opt


class LayerStore:
    """Published layer versions of this cloud's account (PublishLayerVersion, and lookups by ARN)."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._versions: dict[str, int] = {}
        self._contents: dict[str, Path] = {}  # version ARN -> the copied content
        self._merged: dict[tuple[Path, ...], Path] = {}  # a function's layers -> its /opt
        self._lock = threading.Lock()

    def publish(self, name: str, content: Path) -> str:
        """A new version of layer `name` holding `content`'s files now; its version ARN."""
        if not _NAME.fullmatch(name):
            raise DeployError(f"layer name {name!r} is not 1-140 letters, digits, '-' or '_'")
        with self._lock:
            version = self._versions.get(name, 0) + 1
            self._versions[name] = version
        arn = layer_arn(name, version)
        folder = self._root / name / str(version)
        copy_content(content, folder)
        with self._lock:
            self._contents[arn] = folder
        return arn

    def content(self, arn: str) -> Path:
        """The published content of a layer version; DeployError for an ARN never published."""
        with self._lock:
            found = self._contents.get(arn)
        if found is None:
            raise DeployError(f"layer version {arn!r} does not exist (publish it first)")
        return found

    def opt_for(self, layers: tuple[Path, ...]) -> Path | None:
        """The /opt of a function with these layers (merged once, then shared); None without."""
        if not layers:
            return None
        with self._lock:
            if layers not in self._merged:
                self._merged[layers] = merge_into(layers, self._root / "opt" / str(len(self._merged)))
            return self._merged[layers]
