"""What a sandboxed command sees of the host: an explicit, read-only system view.

Not `/`: binding the whole system would show every host socket (a database's, Docker's,
D-Bus's under /run, /var/run, /tmp), and the host's own files wherever they are. The view is

- the system: `/usr`, `/bin`, `/sbin`, `/lib*` (as symlinks where the host has them) and `/etc`
  (what the sandbox user may read of it: root-only files stay unreadable);
- the directories of the command's PATH outside those (a virtualenv as a whole, with the
  Python it was made from), and whatever the caller adds (`Limits.show`), all read-only;
- a fresh `/dev`, `/proc`, an empty private `/tmp`, `/run` and `/var/tmp`;
- the workspace, through the overlay, at its own path: the only writable place.

goex's own files (the blob store, the journal, the secrets file) are covered by an empty
tmpfs wherever they fall inside something shown.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

SYSTEM = ("/usr", "/etc")
TOP_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
FRESH = ("/tmp", "/run", "/var/tmp")  # empty and private to the command
NEVER_SHOWN = ("/", "/proc", "/sys", "/dev", "/run", "/var/run", "/tmp", "/var", "/home", "/root")


@functools.cache
def system_binds() -> tuple[str, ...]:
    """bwrap arguments for the system part of the view (looked at once per process)."""
    argv: list[str] = []
    for top in SYSTEM:
        argv += ["--ro-bind", top, top]
    for top in TOP_LINKS:
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    return tuple(argv)


def fresh_dirs() -> list[str]:
    argv = ["--dev", "/dev", "--proc", "/proc"]
    for path in FRESH:
        argv += ["--perms", "1777" if path.endswith("tmp") else "0755", "--tmpfs", path]
    return argv


def resolver(network: bool) -> list[str]:
    """With network: /etc/resolv.conf where it points into /run (systemd-resolved), which the
    fresh /run would leave dangling. Only the file is shown, never the directory's sockets."""
    if not network or not os.path.islink("/etc/resolv.conf"):
        return []
    target = os.path.realpath("/etc/resolv.conf")
    if target.startswith("/run/") and os.path.isfile(target):
        return ["--ro-bind", target, target]
    return []


def shown_paths(search_path: str, workspace: Path, extra: list[str]) -> list[Path]:
    """The host directories shown read-only beside the system: PATH entries outside the
    system view (a virtualenv as a whole, with its base interpreter), then `extra`."""
    return [
        path
        for path in _shown(search_path, tuple(extra))
        if path != workspace and workspace not in path.parents  # there through the overlay
    ]


@functools.lru_cache(maxsize=16)
def _shown(search_path: str, extra: tuple[str, ...]) -> tuple[Path, ...]:
    found: list[Path] = []

    def add(path: Path) -> None:
        if in_system(path) or str(path) in NEVER_SHOWN or path in found:
            return
        if any(parent in found for parent in path.parents):
            return
        found.append(path)

    for entry in search_path.split(os.pathsep):
        if not entry or not os.path.isabs(entry) or not os.path.isdir(entry):
            continue
        path = Path(os.path.normpath(entry))
        venv = path.parent / "pyvenv.cfg"
        if venv.is_file():
            add(path.parent)
            base = _venv_base(venv)
            if base is not None:
                add(base)
            continue
        add(path)
    for entry in extra:
        add(Path(os.path.normpath(entry)))
    return tuple(found)


def parents(path: Path) -> list[str]:
    """bwrap arguments making the directories above `path` searchable by the sandbox user
    (bwrap would make them 0700, root's): names only, nothing of their contents."""
    argv: list[str] = []
    for parent in reversed(path.parents[:-1]):  # outermost first, without "/"
        if not in_system(parent):
            argv += ["--perms", "0755", "--dir", str(parent)]
    return argv


def in_system(path: Path) -> bool:
    text = str(path)
    tops = (*SYSTEM, *TOP_LINKS)
    return any(text == top or text.startswith(top + "/") for top in tops)


def hidden_under(shown: list[Path], hidden: list[Path], *, system: bool = True) -> list[Path]:
    """Those of goex's own directories that something shown (and, with `system`, the
    host's system view) would reveal."""
    roots = [*shown, *(Path(top) for top in (*SYSTEM, *TOP_LINKS) if system)]
    return [h for h in hidden if any(h == r or r in h.parents for r in roots)]


def _venv_base(config: Path) -> Path | None:
    """The installation a virtualenv was made from (`home = .../bin` in pyvenv.cfg)."""
    try:
        lines = config.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == "home" and value.strip():
            home = Path(os.path.realpath(value.strip()))
            return home.parent if home.name == "bin" else home
    return None
