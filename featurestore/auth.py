"""Who may do what: roles, their permissions, API tokens and OpenID Connect bearer tokens.

Deny by default. Every route of the datamart API and the registry UI names the one
:class:`Permission` it needs; an identity holds the permissions of its :class:`Role`, within
one project. The embedded default (``auth`` off, serving on 127.0.0.1 only) treats every
caller as a local admin; a server bound to any other address refuses to start without auth.

API tokens look like ``fst_<id>_<secret>``: the id is public (it names the token in lists and
the audit log), the secret is shown once at creation and stored only as its SHA-256 hash, which
is enough for 256 random bits (a slow password hash guards guessable secrets, not random ones).
OIDC bearer tokens are JWTs checked with PyJWT against the issuer's JWKS (signature, issuer,
audience, expiry), their roles read from a configured claim.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any, Literal, Protocol

from featurestore.config import AuthConfig, OidcConfig
from featurestore.errors import AuthenticationError, ConfigError, InvalidRequestError, PermissionDeniedError


class Role(StrEnum):
    """What kind of user an identity is. See :data:`ROLE_PERMISSIONS`."""

    ADMIN = "admin"
    ENGINEER = "engineer"
    SCIENTIST = "scientist"
    ANALYST = "analyst"
    SERVICE = "service"


class Permission(StrEnum):
    """One kind of operation. Each route needs exactly one."""

    CATALOG = "catalog:read"
    """Search, feature views, services, entities, sources, models, lineage, usage."""
    STATISTICS = "statistics:read"
    """Run quality reports, run statistics, consistency check results."""
    REFERENCE_DATA = "reference-data:read"
    TRAINING_SETS = "training-sets:read"
    ONLINE_FEATURES = "online-features:read"
    """Online lookups; for the ``service`` role only of its models' feature services."""
    OPERATE = "views:operate"
    """Start runs, consistency checks and repairs."""
    APPLY = "definitions:apply"
    REGISTER_MODELS = "models:register"
    ADMINISTER = "admin"
    """Tokens and the audit log."""
    PUSH = "features:push"
    """Push rows into a feature view (``POST /v1/push/{view}``): offline, then online."""
    PREDICT = "models:predict"
    """Predictions of the model server (``POST /v1/models/{model}/predict``); for the ``service``
    role only with its own models."""
    METRICS = "metrics:read"
    """The Prometheus metrics (``/v1/metrics``): request counts and latencies, runs, freshness,
    consistency; figures about the project, no feature values."""
    REQUEST_FEATURES = "requests:file"
    """File a feature request and support (vote for) others' (:mod:`featurestore.feature_requests`)."""
    MANAGE_REQUESTS = "requests:manage"
    """Accept or decline feature requests, link them to the view and features that fulfil them."""


ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.ENGINEER: frozenset(
        {
            Permission.CATALOG,
            Permission.STATISTICS,
            Permission.REFERENCE_DATA,
            Permission.OPERATE,
            Permission.APPLY,
            Permission.REGISTER_MODELS,
            Permission.METRICS,
            Permission.PUSH,
            Permission.REQUEST_FEATURES,
            Permission.MANAGE_REQUESTS,
        }
    ),
    Role.SCIENTIST: frozenset(
        {
            Permission.CATALOG,
            Permission.STATISTICS,
            Permission.REFERENCE_DATA,
            Permission.TRAINING_SETS,
            Permission.REQUEST_FEATURES,
        }
    ),
    Role.ANALYST: frozenset({Permission.CATALOG, Permission.REFERENCE_DATA, Permission.REQUEST_FEATURES}),
    Role.SERVICE: frozenset({Permission.ONLINE_FEATURES, Permission.PUSH, Permission.PREDICT}),
}
"""Deny by default: a permission not listed here is refused. Engineers operate the pipeline and
read the catalog and reference data, but neither pull training sets nor call the online hot
path; only services and admins read online features. Services and engineers push rows (the
event a service has just seen), which go through the same validation and publish as runs.
Scientists and analysts (and engineers) file and support feature requests; engineers decide them."""


def roles_with(permission: Permission) -> list[Role]:
    return [role for role, perms in ROLE_PERMISSIONS.items() if permission in perms]


# ---------------------------------------------------------------------------- identities


@dataclass(frozen=True)
class Identity:
    """Who sent a request: the name recorded in usage statistics and the audit log, the role
    and project it acts in, and for a ``service``, the models whose feature services it reads."""

    name: str
    role: Role
    project: str
    source: Literal["token", "oidc", "local"]
    token_id: str | None = None
    models: tuple[str, ...] = ()
    expires_at: float | None = field(default=None, compare=False)

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def require(self, permission: Permission, project: str) -> None:
        """Raise :class:`PermissionDeniedError` unless this identity may do ``permission`` in ``project``."""
        if self.project != project:
            raise PermissionDeniedError(
                f"{self.describe()} belongs to project '{self.project}' and cannot access project '{project}'; "
                f"use a token of project '{project}'"
            )
        if not self.can(permission):
            allowed = ", ".join(r.value for r in roles_with(permission))
            raise PermissionDeniedError(
                f"{self.describe()} may not {_VERBS[permission]} (permission '{permission.value}'): "
                f"the roles that may are {allowed}"
            )

    def describe(self) -> str:
        kind = {"token": "token", "oidc": "OIDC identity", "local": "local user"}[self.source]
        return f"{kind} '{self.name}' (role {self.role.value})"


_VERBS: Mapping[Permission, str] = {
    Permission.CATALOG: "read the catalog",
    Permission.STATISTICS: "read run statistics and checks",
    Permission.REFERENCE_DATA: "read reference data",
    Permission.TRAINING_SETS: "build training sets",
    Permission.ONLINE_FEATURES: "read online features",
    Permission.OPERATE: "run, check or repair feature views",
    Permission.APPLY: "apply definitions",
    Permission.REGISTER_MODELS: "register models",
    Permission.ADMINISTER: "manage tokens or read the audit log",
    Permission.METRICS: "read the metrics",
    Permission.PUSH: "push rows into feature views",
    Permission.PREDICT: "predict with models",
    Permission.REQUEST_FEATURES: "file or support feature requests",
    Permission.MANAGE_REQUESTS: "accept, decline or link feature requests",
}


def local_actor() -> str:
    """The name of whoever runs this process, for the audit log of CLI and SDK changes:
    ``user@host`` (the registry's database credentials are what authorises them)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def local_identity(project: str, name: str = "local") -> Identity:
    """The identity of every caller when auth is off (embedded default, loopback only)."""
    return Identity(name=name, role=Role.ADMIN, project=project, source="local")


# ---------------------------------------------------------------------------- API tokens

TOKEN_PREFIX = "fst_"
_TOKEN_RE = re.compile(r"^fst_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,99}$")


@dataclass(frozen=True)
class NewToken:
    """A token as created: ``secret`` is the whole token, shown once and never stored."""

    token_id: str
    secret: str
    secret_hash: str


def mint_token() -> NewToken:
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return NewToken(token_id=token_id, secret=f"{TOKEN_PREFIX}{token_id}_{secret}", secret_hash=hash_secret(secret))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    """``(token id, secret)`` of an API token, or None if ``token`` is not one."""
    match = _TOKEN_RE.match(token)
    return (match.group(1), match.group(2)) if match else None


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def csrf_token(session: str) -> str:
    """The anti-forgery value the UI puts in its forms: derived from the session cookie, so a
    page of another site, which cannot read the cookie, cannot compute it."""
    return hmac.new(b"featurestore-csrf", session.encode(), hashlib.sha256).hexdigest()[:32]


def check_name(name: str, what: str) -> str:
    if not NAME_RE.match(name):
        raise InvalidRequestError(
            f"{what} {name!r} is not a valid name: use 1 to 100 letters, digits and _ . @ : - "
            "starting with a letter or digit"
        )
    return name


# ---------------------------------------------------------------------------- OIDC


class OidcVerifier:
    """Checks bearer JWTs against the issuer's JWKS with PyJWT (keys cached and refreshed by
    :class:`jwt.PyJWKClient` when a token names an unknown key id)."""

    def __init__(self, config: OidcConfig, project: str) -> None:
        try:
            import jwt
        except ImportError as err:  # pragma: no cover - depends on the install
            raise ConfigError("auth.oidc needs PyJWT: pip install 'featurestore[oidc]'", key="auth.oidc") from err
        self._jwt = jwt
        self.config = config
        self.project = project
        self._client: Any = None
        self._lock = threading.Lock()

    def _jwks_client(self) -> Any:
        with self._lock:
            if self._client is None:
                url = self.config.jwks_url or self._discover()
                self._client = self._jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=10)
            return self._client

    def _discover(self) -> str:
        import json
        import urllib.request

        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # the configured issuer
                document = json.load(response)
            return str(document["jwks_uri"])
        except (OSError, ValueError, KeyError) as err:
            raise AuthenticationError(f"cannot read the OIDC issuer's discovery document at {url}: {err}") from err

    def identity(self, token: str) -> Identity:
        jwt = self._jwt
        try:
            key = self._jwks_client().get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=list(self.config.algorithms),
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as err:
            raise AuthenticationError(
                "the bearer token has expired: get a new one from your identity provider"
            ) from err
        except jwt.InvalidAudienceError as err:
            raise AuthenticationError(
                f"the bearer token is not meant for this server (audience must be '{self.config.audience}')"
            ) from err
        except jwt.InvalidIssuerError as err:
            raise AuthenticationError(f"the bearer token was not issued by '{self.config.issuer}'") from err
        except jwt.PyJWKClientError as err:
            raise AuthenticationError(f"the bearer token's signing key is unknown to the issuer's JWKS: {err}") from err
        except jwt.InvalidTokenError as err:
            raise AuthenticationError(f"the bearer token is invalid: {err}") from err
        return self._identity(claims)

    def _identity(self, claims: Mapping[str, Any]) -> Identity:
        config = self.config
        name = str(claims.get(config.name_claim) or "")
        if not name:
            raise AuthenticationError(f"the bearer token has no '{config.name_claim}' claim to name the caller")
        if config.project_claim and claims.get(config.project_claim) != self.project:
            raise PermissionDeniedError(
                f"OIDC identity '{name}' is not granted project '{self.project}' "
                f"(claim '{config.project_claim}' is {claims.get(config.project_claim)!r})"
            )
        role = _strongest(_claim_values(claims.get(config.roles_claim)), config.role_map)
        if role is None:
            raise PermissionDeniedError(
                f"OIDC identity '{name}' has no featurestore role in claim '{config.roles_claim}': "
                f"map one of its values to {', '.join(r.value for r in Role)} in auth.oidc.role_map"
            )
        models = tuple(_claim_values(claims.get(config.models_claim)))
        return Identity(
            name=name,
            role=role,
            project=self.project,
            source="oidc",
            models=models,
            expires_at=float(claims["exp"]),
        )


_ROLE_ORDER = (Role.ADMIN, Role.ENGINEER, Role.SCIENTIST, Role.ANALYST, Role.SERVICE)


def _claim_values(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    return [str(value)]


def _strongest(values: Iterable[str], role_map: Mapping[str, str]) -> Role | None:
    """The most capable role among a claim's values (an identity holds one role)."""
    roles: set[Role] = set()
    for value in values:
        if value in role_map:
            roles.add(Role(role_map[value]))
        elif value in Role._value2member_map_:
            roles.add(Role(value))
    return next((r for r in _ROLE_ORDER if r in roles), None)


class TokenCache:
    """Checked identities by token, trusted for ``seconds``: the online hot path does not read
    the registry on every request."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries: dict[str, tuple[float, Identity]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Identity | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        checked_at, identity = entry
        now = time.monotonic()
        if now - checked_at > self.seconds or (identity.expires_at is not None and identity.expires_at < time.time()):
            with self._lock:
                self._entries.pop(key, None)
            return None
        return identity

    def put(self, key: str, identity: Identity) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), identity)

    def forget(self, token_id: str) -> None:
        with self._lock:
            for key in [k for k, (_, i) in self._entries.items() if i.token_id == token_id]:
                del self._entries[key]


# ---------------------------------------------------------------------------- requests


class TokenAuthority(Protocol):
    """What the authenticator needs of the registry (:class:`featurestore.registry.Registry`)."""

    def authenticate_token(self, token: str) -> Identity: ...


SESSION_COOKIE = "featurestore_session"
"""The registry UI's sign-in cookie (HttpOnly, SameSite=Strict): holds the API token."""


class Authenticator:
    """Turns a request's credentials into an :class:`Identity`, for the datamart API and the UI.

    Auth off: everyone is the local admin, named by ``X-Consumer`` when given (only a server on
    127.0.0.1 may run so). Auth on: an ``Authorization: Bearer`` API token (``fst_...``) or, with
    ``oidc`` configured, a JWT of the issuer, or the UI's session cookie; anything else is a 401.
    Checked identities are cached for ``cache_seconds``."""

    def __init__(self, config: AuthConfig, registry: TokenAuthority, project: str) -> None:
        self.config = config
        self.enabled = config.enabled
        self.project = project
        self._registry = registry
        self._cache = TokenCache(config.cache_seconds)
        self._oidc = OidcVerifier(config.oidc, project) if config.enabled and config.oidc else None

    def credentials(self, authorization: str | None, session: str | None = None) -> str | None:
        """The token a request carries: its bearer token, else its session cookie."""
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise AuthenticationError(
                    "the Authorization header must be 'Bearer <token>' (a featurestore API token or an OIDC token)"
                )
            return value.strip()
        return session or None

    def cached(self, token: str | None) -> Identity | None:
        """The identity of ``token`` if checked recently: no I/O (the event loop may call it)."""
        if not self.enabled or token is None:
            return None
        return self._cache.get(_cache_key(token))

    def identify(self, token: str | None, consumer: str | None = None) -> Identity:
        """The identity a request acts as (may read the registry or the issuer's keys: blocking)."""
        if not self.enabled:
            return local_identity(self.project, consumer or "anonymous")
        if token is None:
            raise AuthenticationError(
                "this server requires a token: send 'Authorization: Bearer <token>' "
                "(an admin creates one with 'featurestore tokens create --name NAME --role ROLE')"
            )
        key = _cache_key(token)
        identity = self._cache.get(key)
        if identity is not None:
            return identity
        if parse_token(token) is not None or self._oidc is None:
            identity = self._registry.authenticate_token(token)
        else:
            identity = self._oidc.identity(token)
        self._cache.put(key, identity)
        return identity

    def forget(self, token_id: str) -> None:
        """Stop trusting a token at once (after revoking it through this process)."""
        self._cache.forget(token_id)


def _cache_key(token: str) -> str:
    # The cache holds digests, not the tokens themselves.
    return hashlib.sha256(token.encode()).hexdigest()


def check_bind_address(host: str, config: AuthConfig) -> None:
    """Refuse to serve beyond this machine without auth: the embedded default answers anyone as
    an admin, which is safe on the loopback interface only."""
    if config.enabled or _is_loopback(host):
        return
    raise ConfigError(
        f"refusing to serve on {host} without authentication: anyone reaching it would act as an admin. "
        "Turn auth on with 'auth: {enabled: true}' in featurestore.yaml, create a first admin token with "
        "'featurestore tokens create --name admin --role admin', and send it as 'Authorization: Bearer <token>'; "
        "or serve on 127.0.0.1 (behind a TLS reverse proxy that authenticates, see the README's Security section)",
        key="auth.enabled",
    )


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str, what: str = "duration") -> timedelta:
    """``90d``, ``12h``, ``30m``, ``45s`` or ``2w`` as a timedelta."""
    match = _DURATION_RE.match(text)
    if not match or float(match.group(1)) <= 0:
        raise InvalidRequestError(
            f"{what} {text!r} is not a duration: write a positive number and a unit, e.g. 90d, 12h, 30m"
        )
    try:
        return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    except OverflowError as err:
        raise InvalidRequestError(f"{what} {text!r} is too long: at most a few thousand years") from err


REQUIRE_AUTH_ENV = "FEATURESTORE_REQUIRE_AUTH"
"""Set by ``featurestore serve --require-auth`` for the app it starts (see :func:`required`)."""


def required(config: AuthConfig, flag: str | None) -> AuthConfig:
    """``config`` with auth on when ``flag`` (``$FEATURESTORE_REQUIRE_AUTH``, set by ``featurestore
    serve --require-auth``) says so: the command line may tighten the file, never loosen it."""
    if flag and flag not in ("0", "false") and not config.enabled:
        return config.model_copy(update={"enabled": True})
    return config
