"""API tokens and the audit log: who may act on a project, and what everyone did."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from featurestore.auth import Identity, NewToken, Role, check_name, mint_token, parse_token, secret_matches
from featurestore.errors import AuthenticationError, InvalidRequestError, NotFoundError
from featurestore.registry.locks import lock_project
from featurestore.registry.records import AuditRecord, TokenRecord
from featurestore.registry.schema import api_tokens_t, audit_t, models_t, now

LAST_USED_RESOLUTION = timedelta(minutes=1)
"""``last_used_at`` is written at most this often per token: not on every request."""


class Access:
    """The registry's API tokens and audit log."""

    _engine: Engine

    # ------------------------------------------------------------------ tokens

    def create_token(
        self,
        project: str,
        name: str,
        role: Role | str,
        *,
        actor: str,
        expires_at: datetime | None = None,
        models: Sequence[str] = (),
    ) -> tuple[TokenRecord, str]:
        """Create a token; returns its record and its secret, which is never stored or shown again.
        A ``service`` token names the models whose feature services it may read online."""
        try:
            role = Role(role)
        except ValueError as err:
            raise InvalidRequestError(
                f"unknown role {role!r}: choose one of {', '.join(r.value for r in Role)}"
            ) from err
        check_name(name, "token name")
        models = tuple(dict.fromkeys(models))
        if role is Role.SERVICE and not models:
            raise InvalidRequestError(
                f"a service token reads only the feature services of its models: name at least one with "
                f"--model (registered models of project '{project}': {', '.join(self._model_names(project)) or 'none'})"
            )
        if role is not Role.SERVICE and models:
            raise InvalidRequestError(f"--model is for service tokens; a {role.value} token is not limited to models")
        known = set(self._model_names(project))
        unknown = [m for m in models if m not in known]
        if unknown:
            raise NotFoundError("model", unknown[0], project=project, candidates=known)
        at = now()
        if expires_at is not None and expires_at <= at:
            raise InvalidRequestError(f"the token would expire at {expires_at.isoformat()}, which is not in the future")
        minted: NewToken = mint_token()
        with self._engine.begin() as conn:
            lock_project(conn, project)  # two creations of one name at once: the second sees the first
            taken = conn.execute(
                sa.select(api_tokens_t.c.id).where(
                    api_tokens_t.c.project == project,
                    api_tokens_t.c.name == name,
                    api_tokens_t.c.revoked_at.is_(None),
                )
            ).first()
            if taken:
                raise InvalidRequestError(
                    f"project '{project}' already has an active token named '{name}': revoke it first "
                    f"('featurestore tokens revoke {name}') or choose another name"
                )
            conn.execute(
                api_tokens_t.insert().values(
                    id=minted.token_id,
                    project=project,
                    name=name,
                    role=role.value,
                    models=json.dumps(list(models)),
                    secret_hash=minted.secret_hash,
                    created_at=at,
                    created_by=actor,
                    expires_at=expires_at,
                )
            )
            _audit(
                conn,
                project,
                actor,
                "token.create",
                f"token:{name}",
                {"id": minted.token_id, "role": role.value, "models": list(models), "expires_at": _iso(expires_at)},
            )
        return self.get_token(project, minted.token_id), minted.secret

    def tokens(self, project: str) -> list[TokenRecord]:
        """Every token of the project, newest first (revoked and expired ones included)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(api_tokens_t)
                .where(api_tokens_t.c.project == project)
                .order_by(api_tokens_t.c.created_at.desc())
            ).all()
        return [_token(r._mapping) for r in rows]

    def get_token(self, project: str, id_or_name: str) -> TokenRecord:
        """A token by id, or by the name of an active token."""
        records = self.tokens(project)
        for record in records:
            if record.id == id_or_name:
                return record
        for record in records:
            if record.name == id_or_name and record.revoked_at is None:
                return record
        raise NotFoundError("token", id_or_name, project=project, candidates=[r.name for r in records])

    def revoke_token(self, project: str, id_or_name: str, *, actor: str) -> TokenRecord:
        record = self.get_token(project, id_or_name)
        if record.revoked_at is not None:
            return record
        with self._engine.begin() as conn:
            conn.execute(
                api_tokens_t.update().where(api_tokens_t.c.id == record.id).values(revoked_at=now(), revoked_by=actor)
            )
            _audit(conn, project, actor, "token.revoke", f"token:{record.name}", {"id": record.id})
        return self.get_token(project, record.id)

    def authenticate_token(self, token: str) -> Identity:
        """The identity of an API token, or :class:`AuthenticationError` saying why not (unknown,
        revoked, expired). Records when it was last used."""
        parsed = parse_token(token)
        if parsed is None:
            raise AuthenticationError(
                "the token is not a featurestore API token (fst_...): create one with 'featurestore tokens create'"
            )
        token_id, secret = parsed
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(api_tokens_t).where(api_tokens_t.c.id == token_id)).first()
        if row is None or not secret_matches(secret, row._mapping["secret_hash"]):
            raise AuthenticationError(
                f"token {token_id} is unknown: it was never created here, or mistyped; "
                "ask an admin for a token of this project (featurestore tokens create)"
            )
        record = _token(row._mapping)
        at = now()
        if record.revoked_at is not None:
            raise AuthenticationError(
                f"token '{record.name}' ({record.id}) was revoked at {record.revoked_at.isoformat()}: ask an admin for a new one"
            )
        if record.expires_at is not None and record.expires_at <= at:
            raise AuthenticationError(
                f"token '{record.name}' ({record.id}) expired at {record.expires_at.isoformat()}: ask an admin for a new one"
            )
        if record.last_used_at is None or at - record.last_used_at >= LAST_USED_RESOLUTION:
            with self._engine.begin() as conn:
                conn.execute(api_tokens_t.update().where(api_tokens_t.c.id == record.id).values(last_used_at=at))
        return Identity(
            name=record.name,
            role=Role(record.role),
            project=record.project,
            source="token",
            token_id=record.id,
            models=record.models,
            expires_at=record.expires_at.timestamp() if record.expires_at else None,
        )

    def _model_names(self, project: str) -> list[str]:
        with self._engine.connect() as conn:
            return list(
                conn.execute(sa.select(models_t.c.name).where(models_t.c.project == project).order_by(models_t.c.name))
                .scalars()
                .all()
            )

    # ------------------------------------------------------------------ audit

    def record_audit(
        self, project: str, actor: str, action: str, target: str, detail: Mapping[str, Any] | None = None
    ) -> None:
        """Record a state change: ``action`` (``apply``, ``run``, ``repair``, ``model.register``,
        ``token.create``, ...) by ``actor`` on ``target``."""
        with self._engine.begin() as conn:
            _audit(conn, project, actor, action, target, detail or {})

    def audit_log(
        self, project: str, *, limit: int = 100, action: str | None = None, actor: str | None = None
    ) -> list[AuditRecord]:
        """The newest state changes of the project, newest first."""
        query = sa.select(audit_t).where(audit_t.c.project == project)
        if action:
            query = query.where(audit_t.c.action == action)
        if actor:
            query = query.where(audit_t.c.actor == actor)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(audit_t.c.id.desc()).limit(limit)).all()
        return [
            AuditRecord(
                id=r.id,
                project=r.project,
                at=r.at,
                actor=r.actor,
                action=r.action,
                target=r.target,
                detail=json.loads(r.detail),
            )
            for r in rows
        ]


def _audit(conn: sa.Connection, project: str, actor: str, action: str, target: str, detail: Mapping[str, Any]) -> None:
    conn.execute(
        audit_t.insert().values(
            project=project,
            at=now(),
            actor=actor[:200],
            action=action,
            target=target[:300],
            detail=json.dumps(dict(detail), sort_keys=True, default=str),
        )
    )


def _token(row: sa.RowMapping) -> TokenRecord:
    return TokenRecord(
        id=row["id"],
        project=row["project"],
        name=row["name"],
        role=row["role"],
        models=tuple(json.loads(row["models"])),
        created_at=row["created_at"],
        created_by=row["created_by"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        revoked_by=row["revoked_by"],
        last_used_at=row["last_used_at"],
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
