"""API keys: only their sha256 digests are kept; a presented key is checked in constant time.

Entries (env variable, comma-separated, or a secret file, one per line, '#' comments) are either
`sha256:<64 hex>` (recommended: the plaintext never reaches the server) or a raw key, hashed on load.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path

from ..errors import ConfigError

PREFIX = "sha256:"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# 'SHA256:', 'sha-256:', 'sha256 =' ...: meant as a digest, but would be hashed as a raw key and never match
_NEAR_PREFIX = re.compile(r"^\s*sha[-_ ]?256\s*[:=]", re.IGNORECASE)


def hash_key(key: str) -> str:
    """The `sha256:<hex>` form of a key, as it goes into MARAUDER_API_KEYS or the secret file."""
    return PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


def _digest(entry: str, where: str) -> bytes:
    entry = entry.lstrip("\ufeff")  # a byte-order mark left by an editor is not part of the key
    if not entry.startswith(PREFIX) and _NEAR_PREFIX.match(entry):
        raise ConfigError(f"'{entry[:12]}...' looks like a digest, but the prefix must be exactly 'sha256:' "
                          "(lower case); as written it would be taken as a raw key and never match", file=where)
    if entry.startswith(PREFIX):
        hexdigest = entry[len(PREFIX):].lower()
        if not _HEX64.match(hexdigest):
            raise ConfigError(f"'{entry[:20]}...' is not sha256:<64 hex digits>", file=where)
        return bytes.fromhex(hexdigest)
    if len(entry) < 16:
        raise ConfigError("an API key must be at least 16 characters (or given as sha256:<hex>)", file=where)
    return hashlib.sha256(entry.encode("utf-8")).digest()


class KeyStore:
    """Digests of the accepted keys. `check(key)` compares against every digest, without early exit."""

    def __init__(self, digests: list[bytes]):
        self._digests = list(dict.fromkeys(digests))

    def __len__(self) -> int:
        return len(self._digests)

    def check(self, presented: str | None) -> bool:
        if not presented or not self._digests:
            return False
        candidate = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found = False
        for digest in self._digests:
            found |= hmac.compare_digest(candidate, digest)
        return found


def load_keys(env_name: str, keys_file: str | Path | None, environ=None) -> KeyStore:
    environ = os.environ if environ is None else environ
    digests = []
    raw_env = environ.get(env_name, "")
    for entry in raw_env.split(","):
        if entry.strip():
            digests.append(_digest(entry.strip(), f"${env_name}"))
    if keys_file:
        path = Path(keys_file)
        if not path.is_file():
            raise ConfigError("API key file not found (serve.api_keys_file)", file=str(path))
        try:
            text = path.read_text(encoding="utf-8-sig")  # -sig: a leading byte-order mark is dropped
        except UnicodeDecodeError as exc:
            raise ConfigError(f"API key file is not UTF-8 text ({exc.reason} at byte {exc.start})",
                              file=str(path)) from None
        for lineno, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if line:
                digests.append(_digest(line, f"{path}:{lineno}"))
    return KeyStore(digests)
