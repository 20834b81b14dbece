"""The webhook's CA and serving certificate, made by the charm so cert-manager is not needed."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650


@dataclass(frozen=True)
class WebhookTLS:
    ca_cert: str
    ca_key: str
    cert: str
    key: str
    # The CA this one replaced: still trusted by the webhook until the manager serves a
    # certificate from the new one.
    previous_ca_cert: str = ""

    def as_secret(self) -> dict[str, str]:
        content = {"ca-cert": self.ca_cert, "ca-key": self.ca_key, "cert": self.cert, "key": self.key}
        if self.previous_ca_cert:
            content["previous-ca-cert"] = self.previous_ca_cert
        return content

    @classmethod
    def from_secret(cls, content: dict[str, str]) -> WebhookTLS:
        return cls(
            content["ca-cert"],
            content["ca-key"],
            content["cert"],
            content["key"],
            content.get("previous-ca-cert", ""),
        )

    def ca_bundle(self) -> str:
        """What the webhook trusts: the current CA, and the previous one across a rotation."""
        return self.ca_cert + self.previous_ca_cert

    def not_after(self) -> datetime.datetime:
        return x509.load_pem_x509_certificate(self.cert.encode()).not_valid_after_utc

    def dns_names(self) -> list[str]:
        cert = x509.load_pem_x509_certificate(self.cert.encode())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return san.get_values_for_type(x509.DNSName)

    def needs_renewal(self, dns_names: list[str], renew_days: int, now: datetime.datetime) -> str | None:
        """Why this must be reissued (near expiry, other names), or None."""
        left = self.not_after() - now
        if left <= datetime.timedelta(days=renew_days):
            return f"serving certificate expires in {left.days} day(s)"
        if sorted(self.dns_names()) != sorted(dns_names):
            return "the webhook Service name changed"
        ca = x509.load_pem_x509_certificate(self.ca_cert.encode())
        if ca.not_valid_after_utc - now <= datetime.timedelta(days=renew_days):
            return "the CA expires soon"
        return None


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def issue(
    common_name: str,
    dns_names: list[str],
    days: int,
    now: datetime.datetime,
    ca: WebhookTLS | None = None,
) -> WebhookTLS:
    """A serving certificate for dns_names, signed by ca's CA (a new CA when None or expiring)."""
    previous = ""
    kept = None
    if ca is not None:
        loaded = x509.load_pem_x509_certificate(ca.ca_cert.encode())
        if loaded.not_valid_after_utc - now <= datetime.timedelta(days=days):
            previous = ca.ca_cert
        else:
            previous = ca.previous_ca_cert
            kept = (loaded, serialization.load_pem_private_key(ca.ca_key.encode(), password=None))
    if kept is not None:
        ca_cert, ca_key = kept
    else:
        ca_key = _key()
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} webhook CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = _key()
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return WebhookTLS(
        ca_cert=ca_cert.public_bytes(serialization.Encoding.PEM).decode(),
        ca_key=_pem_key(ca_key),
        cert=cert.public_bytes(serialization.Encoding.PEM).decode(),
        key=_pem_key(key),
        previous_ca_cert=previous,
    )
