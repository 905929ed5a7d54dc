"""A test App Attestation CA: a root and an intermediate in the roles of Apple's.

Apple's chain cannot sign test keys, so tests trust a root of their own (the family's
``apple_root_ca`` setting) and issue credential certificates carrying the nonce extension
exactly as Apple lays them out.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from plugins.attestation import appattest


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    public_key: Any,
    issuer: str,
    issuer_key: Any,
    *,
    ca: bool,
    extensions: tuple[x509.ExtensionType, ...] = (),
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    hash_algorithm = hashes.SHA384() if ca else hashes.SHA256()
    return builder.sign(issuer_key, hash_algorithm)


class FakeAppleCA:
    """A root and an intermediate in the roles of Apple's App Attestation CAs."""

    def __init__(self, name: str = "Test App Attestation Root CA") -> None:
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.root = _certificate(name, self.root_key.public_key(), name, self.root_key, ca=True)
        self.intermediate_key = ec.generate_private_key(ec.SECP384R1())
        self.intermediate = _certificate(
            "Test App Attestation CA 1",
            self.intermediate_key.public_key(),
            name,
            self.root_key,
            ca=True,
        )

    @property
    def root_pem(self) -> str:
        return self.root.public_bytes(serialization.Encoding.PEM).decode()

    def credential(self, public_key: Any, nonce: bytes) -> x509.Certificate:
        """A credential certificate for ``public_key`` with the App Attest nonce extension."""
        value = bytes([0x30, len(nonce) + 4, 0xA1, len(nonce) + 2, 0x04, len(nonce)]) + nonce
        extension = x509.UnrecognizedExtension(appattest.NONCE_OID, value)
        return _certificate(
            "app attest credential",
            public_key,
            "Test App Attestation CA 1",
            self.intermediate_key,
            ca=False,
            extensions=(extension,),
        )


TEAM_ID = "TEAMID1234"
BUNDLE = "com.example.coach"
APP_ID = f"{TEAM_ID}.{BUNDLE}"
PACKAGE = "com.example.coach"
PROBE_TOKEN_KEY = "probe-token-key-for-tests-0123456789abcdef"


def public_pem(private: Any) -> str:
    """The SubjectPublicKeyInfo PEM of a private key, as ``probe_keys`` takes it."""
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def attestation_settings(ca: FakeAppleCA, play: Any, probe: Any, **extra: Any) -> dict[str, Any]:
    """``[plugins.attestation.settings]`` for tests: ``ca`` as the App Attest root (Xcode's
    development environment), the fake Play Integrity ``play`` (None: Android stays
    unconfigured) and ``probe`` as the ``monitor`` probe's key."""
    settings: dict[str, Any] = {
        "apple_team_id": TEAM_ID,
        "apple_bundle_ids": [BUNDLE],
        "apple_environment": "development",
        "apple_root_ca": ca.root_pem,
        "probe_token_key": PROBE_TOKEN_KEY,
        "probe_keys": {"monitor": public_pem(probe), "unused": ""},
    }
    if play is not None:
        settings |= {
            "play_package_name": PACKAGE,
            "play_integrity_url": play.url,
            "play_integrity_bearer": play.bearer,
        }
    return settings | extra
