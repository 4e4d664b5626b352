"""API keys with roles.

Keys come from the environment (`RETAIN_API_KEYS="key1:crm,key2:ops+admin"`) or a secrets
file (YAML `keys: [{key: ..., roles: [crm], name: crm-gateway}]`; the name, optional, is
what audit records and rate limits use). Only SHA-256 digests are kept in memory and
compared in constant time. A placeholder key ("changeme", "dev", ...) or a key
shorter than 16 characters stops the server at start unless it runs in dev mode.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import yaml

Role = Literal["crm", "marketing", "ops", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
KEYS_ENV = "RETAIN_API_KEYS"
PLACEHOLDERS = {"changeme", "change-me", "dev", "test", "secret", "password", "apikey", "key"}
MIN_KEY_LENGTH = 16


class KeyConfigError(ValueError):
    """The API keys cannot be used as configured."""


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True)
class Caller:
    """Who presented a known key: its name (never the key) and roles."""

    name: str
    roles: frozenset[str]


@dataclass(frozen=True)
class ApiKeys:
    by_digest: Mapping[bytes, frozenset[str]]
    names: Mapping[bytes, str] = field(default_factory=dict)

    def caller(self, presented: str | None) -> Caller | None:
        """The caller a presented key stands for, or None when it is not a known key."""
        if not presented:
            return None
        digest = _digest(presented)
        for known, roles in self.by_digest.items():
            if hmac.compare_digest(known, digest):
                return Caller(self.names.get(known) or key_name(known), roles)
        return None

    def roles(self, presented: str | None) -> frozenset[str] | None:
        """The roles of a presented key, or None when it is not a known key."""
        found = self.caller(presented)
        return None if found is None else found.roles


def key_name(digest: bytes) -> str:
    """A key's default name: a prefix of its digest, which names it in audit records and
    rate limits without revealing it."""
    return f"key-{digest.hex()[:10]}"


def parse_keys(
    entries: list[tuple[str, list[str]]], dev_mode: bool, names: list[str | None] | None = None
) -> ApiKeys:
    """Check every key and role; refuse weak keys outside dev mode. `names`: per entry the
    name audit records and rate limits use (default: a prefix of the key's digest)."""
    if not entries:
        raise KeyConfigError(f"no API keys: set {KEYS_ENV}='key:role,...' or serving.api_keys_file")
    keys: dict[bytes, frozenset[str]] = {}
    for index, (key, roles) in enumerate(entries, start=1):
        unknown = sorted(set(roles) - set(ROLES))
        if unknown or not roles:
            raise KeyConfigError(
                f"API key #{index}: roles {unknown or roles} are not among {', '.join(ROLES)}"
            )
        weak = key.lower() in PLACEHOLDERS or len(key) < MIN_KEY_LENGTH
        if weak and not dev_mode:
            raise KeyConfigError(
                f"API key #{index} is a placeholder or shorter than {MIN_KEY_LENGTH} characters: "
                "refusing to start (use serving.dev_mode only on a development machine)"
            )
        keys[_digest(key)] = frozenset(roles)
    given = {
        _digest(key): name
        for (key, _), name in zip(entries, names or [None] * len(entries), strict=True)
        if name
    }
    return ApiKeys(keys, given)


def load_keys(keys_file: Path | None, dev_mode: bool) -> ApiKeys:
    """Keys from the secrets file and the environment together."""
    entries: list[tuple[str, list[str]]] = []
    names: list[str | None] = []
    if keys_file is not None:
        try:
            document = yaml.safe_load(Path(keys_file).read_text(encoding="utf-8")) or {}
        except (UnicodeDecodeError, yaml.YAMLError) as error:
            reason = str(error).splitlines()[0]
            raise KeyConfigError(f"{keys_file}: not a readable YAML keys file ({reason})") from None
        if not isinstance(document, dict):
            found = type(document).__name__
            raise KeyConfigError(f"{keys_file}: expected a mapping with a 'keys' list, not {found}")
        listed = document.get("keys") or []
        if not isinstance(listed, list):
            raise KeyConfigError(f"{keys_file}: 'keys' must be a list of entries")
        for position, item in enumerate(listed, start=1):
            if not isinstance(item, dict) or "key" not in item:
                raise KeyConfigError(f"{keys_file}: keys entry {position} has no 'key'")
            entries.append((str(item["key"]), [str(r) for r in item.get("roles", [])]))
            names.append(str(item["name"]) if item.get("name") else None)
    for item in filter(None, os.environ.get(KEYS_ENV, "").split(",")):
        key, _, roles = item.strip().partition(":")
        entries.append((key, [r for r in roles.split("+") if r]))
        names.append(None)
    return parse_keys(entries, dev_mode, names)


ROLE_NAMES: tuple[str, ...] = get_args(Role)


def write_keys_file(
    path: Path, roles: tuple[str, ...] = ("crm", "marketing", "ops", "admin")
) -> dict[str, str]:
    """A secrets file with one new random key per role (readable by its owner only);
    returns role -> key. An existing file is never overwritten."""
    if path.exists():
        raise FileExistsError(f"{path} exists: keys are never overwritten")
    keys = {role: f"{role}-{secrets.token_hex(16)}" for role in roles}
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"keys": [{"key": key, "roles": [role], "name": role} for role, key in keys.items()]}
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        yaml.safe_dump(document, out)
    return keys
