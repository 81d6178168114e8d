"""The generated dev key, kept in a file so that it survives restarts.

With no key configured, ``skillwire serve`` makes one up. Were it new at every start, the
``$KEY`` a reader exported would stop working at the first restart; so it is made once and
kept, readable by its owner only (0600), in ``$XDG_STATE_HOME/skillwire/dev_key``
(``~/.local/state/skillwire/dev_key``) unless ``dev_key_file`` names another file.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

__all__ = ["default_dev_key_file", "load_or_create_dev_key", "new_dev_key"]

log = logging.getLogger("skillwire")


def new_dev_key() -> str:
    return "sk_dev_" + secrets.token_urlsafe(24)


def default_dev_key_file() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "skillwire" / "dev_key"


def load_or_create_dev_key(path: Path) -> str:
    """The key kept in ``path``; a new one, written there (0600), when the file is missing.

    Raises ``OSError`` when the file can be neither read nor created.
    """
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = new_dev_key()
    try:
        # O_EXCL: of two servers starting at once, one writes and the other reads its key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(key + "\n")
    return key


def _read(path: Path) -> str:
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise OSError(f"{path} is empty; delete it to get a new dev key")
    if path.stat().st_mode & 0o077:
        log.warning("%s can be read by other users; make it 0600 (chmod 600)", path)
    return key
