"""Administration endpoints: API tokens and the audit log (role ``admin``)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request

from datamart.payloads import AuditEntry, NewTokenInfo, TokenInfo, TokenRequest
from datamart.routes import ERROR_RESPONSES, Administrator, StoreDep
from featurestore.auth import Authenticator
from featurestore.registry.records import TokenRecord
from featurestore.registry.schema import now

router = APIRouter(responses=ERROR_RESPONSES, tags=["admin"])


def _info(record: TokenRecord) -> TokenInfo:
    fields = {f.name: getattr(record, f.name) for f in dataclasses.fields(record) if f.name in TokenInfo.model_fields}
    return TokenInfo.model_validate({**fields, "models": list(record.models), "status": record.status()})


@router.get("/tokens", summary="Every API token of the project (never their secrets)")
def list_tokens(store: StoreDep, _who: Administrator) -> list[TokenInfo]:
    return [_info(r) for r in store.registry.tokens(store.project)]


@router.post("/tokens", status_code=201, summary="Create an API token; its secret is in this response only")
def create_token(body: TokenRequest, store: StoreDep, who: Administrator) -> NewTokenInfo:
    expires_at = now() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    record, secret = store.registry.create_token(
        store.project, body.name, body.role, actor=who.name, expires_at=expires_at, models=body.models
    )
    return NewTokenInfo(**_info(record).model_dump(), token=secret)


@router.delete("/tokens/{token}", summary="Revoke a token, by id or by the name of an active token")
def revoke_token(token: str, request: Request, store: StoreDep, who: Administrator) -> TokenInfo:
    record = store.registry.revoke_token(store.project, token, actor=who.name)
    auth: Authenticator = request.app.state.auths[store.project]
    auth.forget(record.id)  # at once in this process; other servers within auth.cache_seconds
    return _info(record)


@router.get("/audit", summary="State changes (apply, runs, repairs, models, tokens): who, when, what")
def audit_log(
    store: StoreDep,
    _who: Administrator,
    limit: Annotated[int, Query(ge=1, le=1000, description="How many, newest first.")] = 100,
    action: Annotated[str | None, Query(max_length=60, description="Only this action, e.g. 'run'.")] = None,
    actor: Annotated[str | None, Query(max_length=200, description="Only this actor's changes.")] = None,
) -> list[AuditEntry]:
    return [
        AuditEntry.model_validate(dataclasses.asdict(r))
        for r in store.registry.audit_log(store.project, limit=limit, action=action, actor=actor)
    ]
