"""Apple App Attest: attestation objects and assertions, verified offline.

Apple's "Validating apps that connect to your server" and its attestation object
validation guide, step by step, with ``cbor2`` and ``cryptography`` (no network: Apple has
no "verify for me" endpoint). Every check that fails raises :class:`Refused` with its own
machine code, so a client (and a test) can tell exactly which one it was.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, Literal

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

NONCE_OID = x509.ObjectIdentifier("1.2.840.113635.100.8.2")
AAGUID = {
    "development": b"appattestdevelop",
    "production": b"appattest" + b"\x00" * 7,
}
Environment = Literal["development", "production"]
FORMAT = "apple-appattest"


class Refused(Exception):
    """A check failed: ``code`` is the machine-readable reason, the message a sentence."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@cache
def apple_root_pem() -> str:
    """Apple's App Attestation Root CA (SHA-256 fingerprint 1cb9823b...c932), as shipped."""
    return (
        resources.files(__package__ or "plugins.attestation")
        .joinpath("apple_app_attestation_root_ca.pem")
        .read_text()
    )


def load_root(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def app_id_hash(app_id: str) -> bytes:
    return hashlib.sha256(app_id.encode()).digest()


@dataclass(frozen=True)
class AuthData:
    rp_id_hash: bytes
    flags: int
    counter: int
    aaguid: bytes = b""
    credential_id: bytes = b""
    credential_key: bytes = b""  # the COSE key's CBOR bytes


def parse_auth_data(data: bytes, *, attested: bool) -> AuthData:
    """WebAuthn authenticator data: rpIdHash[32] flags[1] signCount[4] (+ attested data)."""
    if len(data) < 37:
        raise Refused("authenticator_data_malformed", "The authenticator data is too short.")
    rp_id_hash, flags, counter = data[:32], data[32], int.from_bytes(data[33:37], "big")
    if not attested:
        return AuthData(rp_id_hash, flags, counter)
    if len(data) < 55:
        raise Refused(
            "authenticator_data_malformed", "The authenticator data holds no attested credential."
        )
    aaguid = data[37:53]
    length = int.from_bytes(data[53:55], "big")
    credential_id = data[55 : 55 + length]
    if len(credential_id) != length:
        raise Refused("authenticator_data_malformed", "The credential id is cut short.")
    return AuthData(rp_id_hash, flags, counter, aaguid, credential_id, data[55 + length :])


@dataclass(frozen=True)
class VerifiedAttestation:
    """What to store for a device: its key, the app it attested, Apple's receipt."""

    public_key_der: bytes
    app_id: str
    environment: Environment
    receipt: bytes


def _decode_cbor(data: bytes, what: str) -> Any:
    try:
        return cbor2.loads(data)
    except Exception as error:  # cbor2 raises several kinds for bad input
        raise Refused(f"{what}_malformed", f"The {what} is not valid CBOR.") from error


def _check_chain(certificates: list[bytes], root: x509.Certificate, now: datetime) -> None:
    """``x5c`` = [credCert, intermediate, ...]: each issued by the next, the last by ``root``,
    every one valid now, every issuer a CA."""
    try:
        chain = [x509.load_der_x509_certificate(der) for der in certificates]
    except Exception as error:
        raise Refused("attestation_chain_invalid", "A certificate in x5c is not DER.") from error
    if len(chain) < 2:
        raise Refused(
            "attestation_chain_invalid",
            "x5c must hold the credential certificate and Apple's intermediate.",
        )
    for index, certificate in enumerate(chain):
        issuer = chain[index + 1] if index + 1 < len(chain) else root
        try:
            certificate.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature) as error:
            raise Refused(
                "attestation_chain_invalid",
                f"Certificate {index} of x5c is not issued by "
                f"{'the next one' if issuer is not root else 'the App Attest root'}.",
            ) from error
        if index > 0 and not _is_ca(certificate):
            raise Refused("attestation_chain_invalid", f"Certificate {index} of x5c is not a CA.")
    for index, certificate in enumerate([*chain, root]):
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise Refused(
                "attestation_chain_invalid", f"Certificate {index} of the chain is not valid now."
            )


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _nonce_of(certificate: x509.Certificate) -> bytes:
    """The OCTET STRING of extension 1.2.840.113635.100.8.2:
    ``SEQUENCE { [1] EXPLICIT OCTET STRING }``, read strictly."""
    try:
        raw = certificate.extensions.get_extension_for_oid(NONCE_OID).value
    except x509.ExtensionNotFound as error:
        raise Refused(
            "attestation_nonce_mismatch", "The credential certificate has no nonce extension."
        ) from error
    value = raw.value if isinstance(raw, x509.UnrecognizedExtension) else b""
    # 30 L1 A1 L2 04 L3 <nonce>, short DER lengths (a SHA-256 nonce is 32 bytes)
    if (
        len(value) >= 6
        and value[0] == 0x30
        and value[1] == len(value) - 2
        and value[2] == 0xA1
        and value[3] == len(value) - 4
        and value[4] == 0x04
        and value[5] == len(value) - 6
    ):
        return value[6:]
    raise Refused("attestation_nonce_mismatch", "The nonce extension is malformed.")


def _uncompressed_point(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def verify_attestation(
    attestation: bytes,
    *,
    challenge: bytes,
    key_id: bytes,
    app_ids: list[str],
    environment: Environment,
    root: x509.Certificate,
    now: datetime,
) -> VerifiedAttestation:
    """Apple's nine steps for an attestation object made for ``challenge``.

    ``key_id`` is the raw SHA-256 the app's ``generateKey()`` identified the key by;
    ``app_ids`` are the ``<TEAMID>.<bundleId>`` this deployment accepts.
    """
    decoded = _decode_cbor(attestation, "attestation")
    if not isinstance(decoded, dict) or not {"fmt", "attStmt", "authData"} <= set(decoded):
        raise Refused(
            "attestation_malformed", "The attestation object lacks fmt, attStmt or authData."
        )
    if decoded["fmt"] != FORMAT:
        raise Refused("attestation_format", f"The attestation format is not {FORMAT}.")
    statement, auth_data = decoded["attStmt"], decoded["authData"]
    if (
        not isinstance(statement, dict)
        or not isinstance(statement.get("x5c"), list)
        or not all(isinstance(c, bytes) for c in statement["x5c"])
        or not isinstance(auth_data, bytes)
    ):
        raise Refused("attestation_malformed", "attStmt.x5c or authData has the wrong type.")
    receipt = statement.get("receipt", b"")
    # 1. the chain, to Apple's App Attestation root
    _check_chain(statement["x5c"], root, now)
    credential = x509.load_der_x509_certificate(statement["x5c"][0])
    # 2-3. nonce = SHA256(authData || SHA256(challenge)), in the credential certificate
    nonce = hashlib.sha256(auth_data + hashlib.sha256(challenge).digest()).digest()
    if _nonce_of(credential) != nonce:
        raise Refused(
            "attestation_nonce_mismatch",
            "The certificate's nonce is not SHA256(authData || SHA256(challenge)): the "
            "attestation was not made for this challenge.",
        )
    # 4. key id = SHA256 of the credential's public key (uncompressed point)
    public_key = credential.public_key()
    if (
        not isinstance(public_key, ec.EllipticCurvePublicKey)
        or public_key.curve.name != "secp256r1"
    ):
        raise Refused("attestation_key_id_mismatch", "The credential key is not a P-256 key.")
    if hashlib.sha256(_uncompressed_point(public_key)).digest() != key_id:
        raise Refused(
            "attestation_key_id_mismatch", "The key id is not the SHA-256 of the attested key."
        )
    parsed = parse_auth_data(auth_data, attested=True)
    # 5. rpIdHash = SHA256(<TEAMID>.<bundleId>)
    app_id = next((a for a in app_ids if app_id_hash(a) == parsed.rp_id_hash), None)
    if app_id is None:
        raise Refused(
            "attestation_rp_id_mismatch", "The attestation is for an app this API does not serve."
        )
    # 6. a fresh key has counted nothing
    if parsed.counter != 0:
        raise Refused("attestation_counter_not_zero", "A new key's counter must be 0.")
    # 7. aaguid: the App Attest environment
    if parsed.aaguid != AAGUID[environment]:
        raise Refused(
            "attestation_environment_mismatch",
            f"The attestation is not from the App Attest {environment} environment.",
        )
    # 8. credentialId = key id
    if parsed.credential_id != key_id:
        raise Refused(
            "attestation_credential_id_mismatch", "The credential id in authData is not the key id."
        )
    _check_cose_key(parsed.credential_key, public_key)
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return VerifiedAttestation(
        der, app_id, environment, receipt if isinstance(receipt, bytes) else b""
    )


def _check_cose_key(data: bytes, public_key: ec.EllipticCurvePublicKey) -> None:
    """The COSE key in authData is the certificate's key (EC2, P-256: -2 is x, -3 is y)."""
    cose = _decode_cbor(data, "attestation") if data else None
    numbers = public_key.public_numbers()
    if not isinstance(cose, dict) or (
        cose.get(-2) != numbers.x.to_bytes(32, "big")
        or cose.get(-3) != numbers.y.to_bytes(32, "big")
    ):
        raise Refused(
            "attestation_credential_key_mismatch",
            "The credential key in authData is not the certificate's key.",
        )


@dataclass(frozen=True)
class VerifiedAssertion:
    counter: int


def verify_assertion(
    assertion: bytes,
    *,
    client_data_hash: bytes,
    public_key_der: bytes,
    app_id: str,
) -> VerifiedAssertion:
    """An assertion ``{signature, authenticatorData}`` over ``client_data_hash``.

    The signature is ECDSA P-256/SHA-256 over ``nonce = SHA256(authenticatorData ||
    clientDataHash)``; the rpIdHash must be the device's app. Whether the counter
    increased is the caller's to check, atomically with storing it.
    """
    decoded = _decode_cbor(assertion, "assertion")
    if (
        not isinstance(decoded, dict)
        or not isinstance(decoded.get("signature"), bytes)
        or not isinstance(decoded.get("authenticatorData"), bytes)
    ):
        raise Refused("assertion_malformed", "The assertion lacks signature or authenticatorData.")
    auth_data = decoded["authenticatorData"]
    try:
        parsed = parse_auth_data(auth_data, attested=False)
    except Refused as error:
        raise Refused("assertion_malformed", error.detail) from error
    nonce = hashlib.sha256(auth_data + client_data_hash).digest()
    public_key = serialization.load_der_public_key(public_key_der)
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    try:
        public_key.verify(decoded["signature"], nonce, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as error:
        raise Refused(
            "assertion_signature_invalid",
            "The assertion's signature does not verify with the device key for this request.",
        ) from error
    if parsed.rp_id_hash != app_id_hash(app_id):
        raise Refused("assertion_rp_id_mismatch", "The assertion is for another app.")
    return VerifiedAssertion(parsed.counter)
