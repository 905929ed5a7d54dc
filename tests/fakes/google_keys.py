"""Google's token-signing certificates endpoint, faked on a real socket, and a token minter.

Google serves ``https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com``
as a JSON object ``{kid: PEM x509 certificate}`` with ``Cache-Control: public, max-age=N``
(shared/reference/external-services.md section 1.1). :class:`FakeGoogleKeys` serves the
certificates of its :class:`Signer` keys the same way at ``url``, counts the requests it
answers (``requests``), can be slowed (``delay``), made to fail (``fail``: a status to answer
instead) and rotated (``signers``). :class:`Signer` holds a test RSA key with a self-signed
certificate and mints RS256 ID tokens shaped like Firebase's.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from quart import Quart, Response

from tests.fakes.server import FakeServer

CERTS_PATH = "/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Signer:
    """A test RSA key, its self-signed x509 certificate, and a key id."""

    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    certificate_pem: str = ""

    def __post_init__(self) -> None:
        name = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.system.gserviceaccount.com")]
        )
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .sign(self.key, hashes.SHA256())
        )
        self.certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()

    def sign(self, header: dict[str, Any], claims: dict[str, Any]) -> str:
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    def mint(
        self,
        uid: str,
        project_id: str = "demo-imperfect",
        *,
        header: dict[str, Any] | None = None,
        **changes: Any,
    ) -> str:
        """An RS256 Firebase ID token for ``uid``; ``changes`` set claims (None drops one)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": f"https://securetoken.google.com/{project_id}",
            "aud": project_id,
            "sub": uid,
            "user_id": uid,
            "auth_time": now - 5,
            "iat": now - 5,
            "exp": now + 3600,
            "email": f"{uid}@example.com",
            "email_verified": True,
            "firebase": {
                "identities": {"email": [f"{uid}@example.com"]},
                "sign_in_provider": "password",
            },
        }
        claims.update(changes)
        claims = {name: value for name, value in claims.items() if value is not None}
        return self.sign(header or {"alg": "RS256", "kid": self.kid, "typ": "JWT"}, claims)


@dataclass
class FakeGoogleKeys:
    """``with FakeGoogleKeys() as keys:`` serves ``keys.signers``' certificates at ``keys.url``."""

    signers: list[Signer] = field(default_factory=lambda: [Signer()])
    max_age: int | None = 21600  # Google's usual is some hours; None sends no Cache-Control
    delay: float = 0.0  # seconds before each answer
    fail: int | None = None  # answer this status (with an error body) instead
    requests: int = 0  # requests answered (or failed) so far
    url: str = ""

    def __post_init__(self) -> None:
        self._server = FakeServer(_build_app(self))

    @property
    def signer(self) -> Signer:
        return self.signers[0]

    def start(self) -> FakeGoogleKeys:
        self._server.start()
        self.url = self._server.url + CERTS_PATH
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeGoogleKeys:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _build_app(fake: FakeGoogleKeys) -> Quart:
    app = Quart("fake_google_keys")

    @app.get(CERTS_PATH)
    async def certificates() -> Response:
        fake.requests += 1
        if fake.delay:
            await asyncio.sleep(fake.delay)
        if fake.fail is not None:
            body = {"error": {"code": fake.fail, "message": "Backend Error"}}
            return Response(json.dumps(body), status=fake.fail, content_type="application/json")
        document = {signer.kid: signer.certificate_pem for signer in fake.signers}
        headers = {}
        if fake.max_age is not None:
            headers["Cache-Control"] = (
                f"public, max-age={fake.max_age}, must-revalidate, no-transform"
            )
        return Response(
            json.dumps(document),
            content_type="application/json; charset=UTF-8",
            headers=headers,
        )

    return app
