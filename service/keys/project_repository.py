"""Projects and their API keys."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.pagination import Page, paginate
from service.db.tables import ApiKey, Project
from service.hashing import secret_hash
from service.ids import new_id, now, random_part

KEY_PREFIX = "sk-whet-"


def get_or_create_project(session: Session, name: str) -> Project:
    project = find_project(session, name)
    if project is None:
        project = Project(id=new_id("proj"), name=name, created_at=now())
        session.add(project)
        session.flush()
    return project


def find_project(session: Session, name: str) -> Project | None:
    return session.scalar(select(Project).where(Project.name == name))


def get_project(session: Session, project_id: str) -> Project | None:
    return session.get(Project, project_id)


def lock_project(session: Session, project_id: str) -> None:
    """Hold the project's row until the transaction ends (PostgreSQL; SQLite has one writer),
    so that checks of its quotas and the rows they admit are made one request at a time."""
    session.execute(select(Project.id).where(Project.id == project_id).with_for_update())


def create_api_key(session: Session, project: Project) -> str:
    """Store a new key's hash for `project`; return the key itself (shown once)."""
    key = KEY_PREFIX + random_part(40)
    session.add(
        ApiKey(
            id=new_id("key"),
            project_id=project.id,
            key_hash=secret_hash(key),
            prefix=key[: len(KEY_PREFIX) + 4],
            created_at=now(),
        )
    )
    session.flush()
    return key


def project_for_key(session: Session, key: str) -> Project | None:
    stmt = (
        select(Project)
        .join(ApiKey, ApiKey.project_id == Project.id)
        .where(ApiKey.key_hash == secret_hash(key))
    )
    return session.scalar(stmt)


def create_project(session: Session, name: str) -> Project:
    project = Project(id=new_id("proj"), name=name, created_at=now())
    session.add(project)
    session.flush()
    return project


def list_projects(
    session: Session, *, after: str | None, limit: int, include_archived: bool
) -> Page[Project]:
    """Projects, oldest first."""
    stmt = select(Project)
    if not include_archived:
        stmt = stmt.where(Project.archived_at.is_(None))
    return paginate(
        session,
        stmt,
        created_at=Project.created_at,
        id_=Project.id,
        after=after,
        limit=limit,
        order="asc",
    )


def archive_project(session: Session, project: Project) -> Project:
    if project.archived_at is None:
        project.archived_at = now()
        session.flush()
    return project


def list_keys(
    session: Session, project_id: str | None, *, after: str | None = None, limit: int = 10_000
) -> Page[ApiKey]:
    """The API keys of a project (every project's when `project_id` is None), oldest first."""
    stmt = select(ApiKey)
    if project_id is not None:
        stmt = stmt.where(ApiKey.project_id == project_id)
    return paginate(
        session,
        stmt,
        created_at=ApiKey.created_at,
        id_=ApiKey.id,
        after=after,
        limit=limit,
        order="asc",
    )


def get_key(session: Session, key_id: str) -> ApiKey | None:
    return session.get(ApiKey, key_id)


def delete_key(session: Session, key: ApiKey) -> None:
    session.delete(key)
    session.flush()
