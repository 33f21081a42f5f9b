"""OpenID Connect bearer tokens: JWTs of an issuer whose JWKS the test serves itself, with keys it
generates. Valid, expired, wrong audience, wrong issuer, wrongly signed, without a role."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from datamart.app import create_app
from featurestore.config import AuthConfig, OidcConfig
from featurestore.store import FeatureStore
from tests.api.conftest import TestClient, build_project

ISSUER = "https://login.bank.test/realms/data"
AUDIENCE = "featurestore-datamart"
KID = "key-1"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def issuer() -> Iterator[tuple[str, rsa.RSAPrivateKey]]:
    """A JWKS endpoint on 127.0.0.1 publishing one RSA key, as an identity provider does; also
    its discovery document, so that the server may find the JWKS from the issuer URL alone."""
    key = _key()
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwks = json.dumps({"keys": [{**jwk, "kid": KID, "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = jwks if self.path == "/jwks.json" else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", key
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def client(issuer: tuple[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    jwks_url, _ = issuer
    root: Path = build_project(tmp_path_factory.mktemp("oidc"))
    config = AuthConfig(
        enabled=True,
        oidc=OidcConfig(
            issuer=ISSUER,
            audience=AUDIENCE,
            jwks_url=jwks_url,
            roles_claim="groups",
            role_map={"/data-science": "scientist", "/ml-serving": "service"},
        ),
    )
    with FeatureStore(root) as store, TestClient(create_app(store, auth=config)) as c:
        yield c


def _token(key: Any, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice@bank.test",
        "groups": ["/data-science", "/everyone"],
        "iat": now,
        "exp": now + 300,
        **overrides,
    }
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm="RS256", headers={"kid": KID})


def _get(client: TestClient, token: str) -> Any:
    return client.get("/v1/feature-views", headers={"Authorization": f"Bearer {token}"})


def test_a_valid_token_acts_with_its_mapped_role_and_name(client: TestClient, issuer: Any) -> None:
    _, key = issuer
    token = _token(key)
    assert _get(client, token).status_code == 200
    spine = {
        "spine": {"customer_id": [1], "ts": ["2024-03-02T12:00:00Z"]},
        "features": ["churn"],
        "timestamp_column": "ts",
    }
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/v1/training-set", json=spine, headers=headers).status_code == 200
    # a scientist: no online lookups, no tokens
    online = client.post(
        "/v1/online-features", json={"features": ["churn"], "entities": {"customer_id": [1]}}, headers=headers
    )
    assert online.status_code == 403
    assert "OIDC identity 'alice@bank.test' (role scientist)" in online.json()["message"]
    assert client.get("/v1/tokens", headers=headers).status_code == 403


@pytest.mark.parametrize(
    ("claims", "words"),
    [
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
        ({"aud": "another-api"}, "not meant for this server"),
        ({"iss": "https://evil.test/"}, "not issued by"),
        ({"exp": None}, "invalid"),
    ],
    ids=["expired", "wrong-audience", "wrong-issuer", "no-expiry"],
)
def test_bad_tokens_are_401_saying_why(client: TestClient, issuer: Any, claims: dict[str, Any], words: str) -> None:
    _, key = issuer
    response = _get(client, _token(key, **claims))
    assert response.status_code == 401, response.text
    assert words in response.json()["message"]


def test_a_token_signed_by_another_key_is_refused(client: TestClient) -> None:
    forged = _token(_key())  # same kid, same claims, not the issuer's key
    response = _get(client, forged)
    assert response.status_code == 401
    assert "invalid" in response.json()["message"].lower()


def test_a_token_without_a_featurestore_role_is_403(client: TestClient, issuer: Any) -> None:
    _, key = issuer
    response = _get(client, _token(key, groups=["/everyone"]))
    assert response.status_code == 403
    assert "no featurestore role in claim 'groups'" in response.json()["message"]


def test_an_unsigned_token_is_refused(client: TestClient) -> None:
    now = int(time.time())
    unsigned = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "groups": ["/data-science"], "exp": now + 300},
        None,
        algorithm="none",
        headers={"kid": KID},
    )
    assert _get(client, unsigned).status_code == 401
