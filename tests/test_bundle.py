"""The code bundle (issue 9, item 4): what goes in, reproducible bytes, the cap, safe unpacking."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from costtune.bundle import BundleError, BundleTooLarge, pack, unpack


def tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return tar.getnames()


def test_gitignore_nested_gitignore_and_costtuneignore_decide_what_goes_in(tmp_path: Path) -> None:
    root = tree(tmp_path / "w", {
        ".gitignore": "*.log\ndata/\n/build\n!keep.log\n",
        ".costtuneignore": "notes.md\n!wanted.log\n",
        "train.py": "print(1)\n", "keep.log": "k", "run.log": "r", "wanted.log": "w", "notes.md": "n",
        "data/big.bin": "b", "build/out": "o", "src/build/mod.py": "m",  # /build is anchored at the root
        "src/.gitignore": "*.tmp\n!important.tmp\n", "src/a.tmp": "t", "src/important.tmp": "i", "src/x.py": "x",
        ".git/HEAD": "ref", "src/.git": "a file named .git below the root is ordinary",
    })
    got = names(pack(root).data)
    assert got == sorted(got)
    assert set(got) == {".costtuneignore", ".gitignore", "keep.log", "train.py", "wanted.log",
                        "src/.git", "src/.gitignore", "src/build/mod.py", "src/important.tmp", "src/x.py"}


def test_the_same_tree_packs_to_the_same_bytes_whatever_the_mtimes_and_owners(tmp_path: Path) -> None:
    files = {"a.py": "a", "b/c.py": "c", "run.sh": "#!/bin/sh\n"}
    one, two = tree(tmp_path / "one", files), tree(tmp_path / "two", dict(reversed(list(files.items()))))
    (one / "run.sh").chmod(0o755)
    (two / "run.sh").chmod(0o700)
    os.utime(two / "a.py", (1, 1))
    first, second = pack(one), pack(two)
    assert first.digest == second.digest == hashlib.sha256(first.data).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(first.data), mode="r:gz") as tar:
        modes = {m.name: (m.mode, m.mtime, m.uid, m.uname) for m in tar.getmembers()}
    assert modes["run.sh"] == (0o755, 0, 0, "") and modes["a.py"] == (0o644, 0, 0, "")
    (two / "a.py").write_text("changed")
    assert pack(two).digest != first.digest


def test_a_workdir_over_the_cap_is_refused_naming_size_cap_and_biggest_files(tmp_path: Path) -> None:
    root = tree(tmp_path / "w", {"model.ckpt": b"x" * 3_000_000, "data.npy": b"x" * 1_200_000, "train.py": "p"})
    with pytest.raises(BundleTooLarge) as caught:
        pack(root, max_bytes=2 * 1024 * 1024)
    text = str(caught.value)
    assert "4.0 MB" in text and "cap of 2.0 MB" in text and "model.ckpt (2.9 MB), data.npy (1.1 MB)" in text
    assert ".costtuneignore" in text


def test_links_inside_the_workdir_go_in_and_links_out_of_it_are_left_out(tmp_path: Path) -> None:
    root = tree(tmp_path / "w", {"real.py": "r"})
    (tmp_path / "outside.txt").write_text("secret")
    (root / "alias.py").symlink_to("real.py")
    (root / "escape.txt").symlink_to(tmp_path / "outside.txt")
    (root / "climb.txt").symlink_to("../outside.txt")
    made = pack(root)
    assert names(made.data) == ["alias.py", "real.py"]
    assert made.skipped == ("climb.txt", "escape.txt")
    out = tmp_path / "out"
    unpack(made.data, out, digest=made.digest)
    assert (out / "alias.py").read_text() == "r" and (out / "alias.py").is_symlink()


def evil(*members: tarfile.TarInfo, content: bytes = b"pwned") -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for member in members:
            if member.isfile():
                member.size = len(content)
                tar.addfile(member, io.BytesIO(content))
            else:
                tar.addfile(member)
    return raw.getvalue()


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(("member", "words"), [
    (tarfile.TarInfo("../escaped.txt"), "outside the destination"),
    (tarfile.TarInfo("/tmp/absolute.txt"), "outside the destination"),
    (tarfile.TarInfo("a/../../escaped.txt"), "outside the destination"),
    (link("passwd", "/etc/passwd"), "leads outside"),
    (link("up", "../../.."), "leads outside"),
    (link("hard", "/etc/passwd", tarfile.LNKTYPE), "not a file, folder or link"),
    (link("dev", "", tarfile.CHRTYPE), "not a file, folder or link"),
])
def test_unpack_refuses_entries_that_would_leave_the_destination_and_extracts_nothing(
        tmp_path: Path, member: tarfile.TarInfo, words: str) -> None:
    data = evil(tarfile.TarInfo("fine.txt"), member)
    out = tmp_path / "deep" / "out"
    with pytest.raises(BundleError, match=words):
        unpack(data, out)
    assert not out.exists() and not (tmp_path / "deep" / "escaped.txt").exists()


def test_unpack_checks_the_digest(tmp_path: Path) -> None:
    made = pack(tree(tmp_path / "w", {"a.py": "a"}))
    with pytest.raises(BundleError, match="sha256"):
        unpack(made.data + b"x", tmp_path / "out", digest=made.digest)
    with pytest.raises(BundleError, match="cannot read"):
        unpack(b"not a tarball", tmp_path / "out")
