"""A throw-away certificate authority, for tests of TLS with real handshakes.

A team's internal server usually has a certificate from the team's own CA,
which no system trust store holds; ``ThrowawayCA`` is such a CA, made fresh in a
test's directory (the ``cryptography`` package, a dev dependency): its
certificate is the PEM file a user would give as ``[store] ca_file``, and
``server_context(names)`` is what a TLS-terminating proxy in front of a server
presents, a certificate it signed for those host names (DNS names or IP
addresses).  The keys are EC P-256: fast to make, nothing is slow to set up.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)



def _server_builder(names: list[str], issuer: x509.Name,
                    key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    """A day-long certificate for ``names`` (its first the common name), not yet
    signed: the CA-issued and the self-signed server certificates differ only after it."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]),
                           critical=False))


def _write_pair(stem: Path, cert: x509.Certificate,
                key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    """Write ``stem``.pem and a private ``stem``.key; returns both paths."""
    cert_file, key_file = stem.with_suffix(".pem"), stem.with_suffix(".key")
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(_pem_key(key))
    key_file.chmod(0o600)
    return cert_file, key_file

class ThrowawayCA:
    """A self-signed CA in ``directory``: ``ca_file`` is its certificate (PEM)."""

    def __init__(self, directory: Path, name: str = "ragex test team CA") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder()
                     .subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(minutes=5))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(
                         digital_signature=True, key_cert_sign=True, crl_sign=True,
                         content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, encipher_only=False,
                         decipher_only=False), critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                         self.key.public_key()), critical=False)
                     .sign(self.key, hashes.SHA256()))
        self.ca_file = directory / "team-ca.pem"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, names: list[str]) -> tuple[Path, Path]:
        """A server certificate for ``names`` signed by this CA: (cert file, key file)."""
        key = _key()
        cert = (_server_builder(names, self.cert.subject, key)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.key.public_key()), critical=False)
                .sign(self.key, hashes.SHA256()))
        return _write_pair(self.directory / ("server-" + "-".join(names).replace(":", "_")),
                           cert, key)

    def self_signed(self, names: list[str]) -> tuple[Path, ssl.SSLContext]:
        """A server certificate for ``names`` signed by its own key (no CA at all,
        as a small team's server often has): (its PEM file, a server context)."""
        key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        cert = _server_builder(names, subject, key).sign(key, hashes.SHA256())
        cert_file, key_file = _write_pair(
            self.directory / ("self-signed-" + "-".join(names).replace(":", "_")), cert, key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_file, key_file)
        return cert_file, ctx

    def server_context(self, names: list[str]) -> ssl.SSLContext:
        """A server-side TLS context presenting a certificate for ``names``."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.issue(names))
        return ctx
