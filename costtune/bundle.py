"""The code bundle: a sweep's ``workdir`` packed for the machines that run its trials.

- What goes in: every file under ``workdir`` except what ``.gitignore`` files (the root's and
  nested ones, git's rules, through ``pathspec``) and an optional ``.costtuneignore`` at the root
  (same syntax, applied last, so it can also re-include with ``!``) leave out. ``.git/`` never goes
  in. A symbolic link goes in as a link when its target stays inside ``workdir``; one pointing
  outside is left out and named in ``Bundle.skipped``.
- Reproducible: entries sorted by path, mtime 0, owner root (uid/gid 0, no names), mode 0644 or
  0755 (executable), gzip without a timestamp; the same tree always gives the same bytes.
- Content-addressed: ``Bundle.digest`` is the sha256 of the tarball (hex), its name everywhere.
- Size-capped: the files' total size (uncompressed) above ``max_bytes`` raises ``BundleTooLarge``,
  naming the size, the cap and the biggest files, before anything is read.
- ``unpack`` checks the digest and extracts with tarfile's ``data`` filter plus its own checks: no
  absolute names, no ``..``, no links leading out of the destination, no devices.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from costtune.errors import InputError

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
IGNORE_FILE = ".costtuneignore"
_ALWAYS_LEFT_OUT = (".git",)


class BundleError(InputError):
    """The workdir cannot be packed, or a bundle cannot be unpacked safely."""


class BundleTooLarge(BundleError):
    """The workdir's files add up to more than the bundle's cap."""


@dataclass(frozen=True)
class Bundle:
    digest: str  # sha256 of ``data``, hex
    data: bytes  # the .tar.gz
    files: int
    size: int  # bytes of the files, uncompressed
    skipped: tuple[str, ...] = field(default_factory=tuple)  # links pointing outside workdir, left out


def _spec(lines: list[str]):  # type: ignore[no-untyped-def]
    import pathspec  # a small pure-Python dependency of the core, imported where it is used

    return pathspec.GitIgnoreSpec.from_lines(lines)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


class _Ignore:
    """Git's rules: a nested ``.gitignore`` speaks for its folder and wins over its parents';
    ``.costtuneignore`` at the root wins over all of them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.rules: list[tuple[str, object]] = []  # (folder relative to root, "" for root; spec)
        self.last = _spec(_read_lines(root / IGNORE_FILE)) if (root / IGNORE_FILE).is_file() else None

    def enter(self, folder: str) -> None:
        path = self.root / folder / ".gitignore" if folder else self.root / ".gitignore"
        if path.is_file():
            self.rules.append((folder, _spec(_read_lines(path))))

    def ignored(self, rel: str, is_dir: bool) -> bool:
        name = rel + "/" if is_dir else rel
        if PurePosixPath(rel).parts[0] in _ALWAYS_LEFT_OUT:
            return True
        verdict: bool | None = None
        for folder, spec in self.rules:
            if folder and not rel.startswith(folder + "/"):
                continue
            sub = name[len(folder) + 1:] if folder else name
            result = spec.check_file(sub)  # type: ignore[attr-defined]
            if result.include is not None:
                verdict = result.include
        if self.last is not None:
            result = self.last.check_file(name)
            if result.include is not None:
                verdict = result.include
        return bool(verdict)


def _walk(root: Path) -> tuple[list[tuple[str, Path]], list[str]]:
    """(relative path, absolute path) of what goes in, sorted; and the links left out."""
    ignore = _Ignore(root)
    chosen: list[tuple[str, Path]] = []
    skipped: list[str] = []

    def visit(folder: str) -> None:
        ignore.enter(folder)
        here = root / folder if folder else root
        try:
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError as exc:
            raise BundleError(f"workdir: cannot read {str(here)!r}: {exc.strerror}") from None
        for entry in entries:
            rel = f"{folder}/{entry.name}" if folder else entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            if ignore.ignored(rel, is_dir):
                continue
            path = Path(entry.path)
            if entry.is_symlink():
                if _link_inside(root, path):
                    chosen.append((rel, path))
                else:
                    skipped.append(rel)
            elif is_dir:
                visit(rel)
            elif entry.is_file(follow_symlinks=False):
                chosen.append((rel, path))

    visit("")
    chosen.sort(key=lambda item: item[0])
    return chosen, skipped


def _link_inside(root: Path, link: Path) -> bool:
    target = os.readlink(link)
    if os.path.isabs(target):
        return False
    resolved = os.path.normpath(os.path.join(os.path.dirname(link), target))
    return resolved == str(root) or resolved.startswith(str(root) + os.sep)


def pack(workdir: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Bundle:
    """Pack ``workdir`` (see the module's notes). Raises ``BundleTooLarge`` above ``max_bytes`` of
    files (uncompressed) and ``BundleError`` when ``workdir`` is not a readable directory."""
    root = Path(workdir).expanduser().resolve()
    if not root.is_dir():
        raise BundleError(f"workdir: not a directory {str(workdir)!r}")
    chosen, skipped = _walk(root)
    sizes = [(path.lstat().st_size if not path.is_symlink() else 0, rel) for rel, path in chosen]
    total = sum(size for size, _ in sizes)
    if total > max_bytes:
        biggest = ", ".join(f"{rel} ({_mb(size)})" for size, rel in sorted(sizes, reverse=True)[:5])
        raise BundleTooLarge(
            f"workdir: {str(root)!r} packs {_mb(total)} of files, above the bundle cap of {_mb(max_bytes)}; "
            f"biggest: {biggest}. Leave data and outputs out with .gitignore or {IGNORE_FILE}, or raise "
            "server.bundle_max_mb")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel, path in chosen:
            info = tarfile.TarInfo(rel)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, os.readlink(path), 0o777
                tar.addfile(info)
                continue
            info.mode = 0o755 if mode & 0o111 else 0o644
            try:
                with open(path, "rb") as handle:
                    content = handle.read()
            except OSError as exc:
                raise BundleError(f"workdir: cannot read {rel!r}: {exc.strerror}") from None
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    data = gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)
    return Bundle(digest=hashlib.sha256(data).hexdigest(), data=data, files=len(chosen), size=total,
                  skipped=tuple(skipped))


def _mb(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB"


def unpack(data: bytes, dest: str | Path, *, digest: str | None = None,
           max_bytes: int = DEFAULT_MAX_BYTES) -> int:
    """Extract a bundle into ``dest`` (created); the number of entries extracted.

    Raises ``BundleError`` when ``digest`` is given and differs, when an entry's name is absolute or
    climbs out with ``..``, when a link leads outside ``dest``, for a device, FIFO or hard link, or
    when the files add up to more than ``max_bytes``. Nothing is extracted then.
    """
    if digest is not None and hashlib.sha256(data).hexdigest() != digest:
        raise BundleError(f"bundle: sha256 is {hashlib.sha256(data).hexdigest()}, expected {digest}")
    target = Path(dest).resolve()
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members = tar.getmembers()
            total = 0
            for member in members:
                _check_member(member, target)
                total += member.size
            if total > max_bytes:
                raise BundleError(f"bundle: {_mb(total)} of files, above the cap of {_mb(max_bytes)}")
            target.mkdir(parents=True, exist_ok=True)
            try:
                tar.extractall(target, filter="data")
            except TypeError:  # Python before 3.11.4 has no filters: the checks above are the guard
                tar.extractall(target)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"bundle: cannot read or extract it ({exc})") from None
    return len(members)


def _check_member(member: tarfile.TarInfo, target: Path) -> None:
    name = member.name
    parts = PurePosixPath(name).parts
    if not name or name.startswith("/") or ".." in parts or "\\" in name:
        raise BundleError(f"bundle: entry {name!r} would land outside the destination")
    if member.issym():
        link = member.linkname
        where = os.path.normpath(os.path.join(str(target), os.path.dirname(name), link))
        if os.path.isabs(link) or not (where == str(target) or where.startswith(str(target) + os.sep)):
            raise BundleError(f"bundle: link {name!r} -> {link!r} leads outside the destination")
    elif not (member.isfile() or member.isdir()):
        raise BundleError(f"bundle: entry {name!r} is not a file, folder or link inside it")


__all__ = ["DEFAULT_MAX_BYTES", "IGNORE_FILE", "Bundle", "BundleError", "BundleTooLarge", "pack", "unpack"]
