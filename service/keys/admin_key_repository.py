"""Admin API keys (`sk-admin-...`): organization-level, tied to no project."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.tables import AdminApiKey
from service.hashing import secret_hash
from service.ids import new_id, now, random_part

ADMIN_KEY_PREFIX = "sk-admin-"


def create_admin_key(session: Session) -> str:
    """Store a new admin key's hash; return the key itself (shown once)."""
    key = ADMIN_KEY_PREFIX + random_part(40)
    session.add(
        AdminApiKey(
            id=new_id("key"),
            key_hash=secret_hash(key),
            prefix=key[: len(ADMIN_KEY_PREFIX) + 4],
            created_at=now(),
        )
    )
    session.flush()
    return key


def admin_key_for(session: Session, key: str) -> AdminApiKey | None:
    return session.scalar(select(AdminApiKey).where(AdminApiKey.key_hash == secret_hash(key)))


def list_admin_keys(session: Session) -> list[AdminApiKey]:
    return list(session.scalars(select(AdminApiKey).order_by(AdminApiKey.created_at)))


def get_admin_key(session: Session, key_id: str) -> AdminApiKey | None:
    return session.get(AdminApiKey, key_id)


def delete_admin_key(session: Session, key: AdminApiKey) -> None:
    session.delete(key)
    session.flush()
