//! Cluster layer: the cluster port's mutual TLS material. Pure (key generation and rustls
//! configuration); no I/O.
//!
//! [`ClusterTls`] is the cluster CA: an ECDSA P-256 self-signed certificate and its key,
//! generated once when the cluster is formed. It serialises to bytes ([`ClusterTls::to_bytes`])
//! so the server can keep it behind the barrier and hand it to joiners wrapped by the seal
//! (Vault's `core/raft/tls` keyring). Every node holds the CA and issues its own node
//! certificate from it at start ([`ClusterTls::issue_node`]): a fresh P-256 key, signed by the
//! CA, whose SANs are the node name and the host of its `cluster_addr`.
//!
//! [`NodeTls`] builds the two rustls configurations of the cluster port, both TLS 1.3 only and
//! ALPN `h2`: the server *requires* a client certificate chaining to the cluster CA, and the
//! client verifies the server against the same CA and presents its node certificate. A peer
//! without a certificate of this cluster's CA completes no handshake.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::ClusterAddr;

/// The ALPN protocol of the cluster port: HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";
/// How long a generated cluster CA is valid. Rotation (Vault's phased keyring rotation) is a
/// later step; ten years keeps a cluster working until then.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long a node certificate is valid. Nodes issue a fresh one at every start.
const NODE_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Backdating of `notBefore`, for peers whose clocks are a little behind.
const CLOCK_SKEW: Duration = Duration::from_secs(3600);
/// The version of the [`ClusterTls::to_bytes`] layout.
const FORMAT_VERSION: u32 = 1;

/// An error building or loading cluster TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "cannot generate the cluster {what}: {reason}; this is a bug or a crypto library failure, report it"
    )]
    Generate { what: &'static str, reason: String },
    #[error(
        "the stored cluster TLS material is unusable: {reason}; restore it from a backup of the barrier or re-form the cluster"
    )]
    Load { reason: String },
    #[error(
        "cannot issue a cluster certificate for node {name:?}: {reason}; use a DNS name or IP address as the node name and cluster_addr host"
    )]
    Issue { name: String, reason: String },
    #[error(
        "cannot build the cluster port's TLS configuration: {reason}; the cluster TLS material is inconsistent, re-issue the node certificate"
    )]
    Config { reason: String },
}

/// The cluster CA: certificate and private key. `Debug` shows only the certificate's size.
pub struct ClusterTls {
    ca_cert_pem: String,
    ca_key_pem: Zeroizing<String>,
}

impl fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterTls")
            .field("ca_cert_pem_bytes", &self.ca_cert_pem.len())
            .field("ca_key", &"<redacted>")
            .finish()
    }
}

/// The serialised form of [`ClusterTls`] (JSON; the key never leaves a zeroized buffer).
#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    ca_cert_pem: String,
    ca_key_pem: String,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// `notBefore` and `notAfter` for a certificate issued now and valid for `validity`.
fn validity(validity: Duration) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let now = time::OffsetDateTime::now_utc();
    (now - CLOCK_SKEW, now + validity)
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Sealkeep");
    dn.push(DnType::CommonName, "Sealkeep cluster CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (params.not_before, params.not_after) = validity(CA_VALIDITY);
    params
}

impl ClusterTls {
    /// Generates a new cluster CA (ECDSA P-256, self-signed). Called once, when `sys/init` forms
    /// the cluster.
    pub fn generate() -> Result<Self, TlsError> {
        let gen_err = |reason: rcgen::Error| TlsError::Generate {
            what: "CA",
            reason: reason.to_string(),
        };
        let key = Zeroizing::new(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(gen_err)?);
        let cert = ca_params().self_signed(&*key).map_err(gen_err)?;
        Ok(Self {
            ca_cert_pem: cert.pem(),
            ca_key_pem: Zeroizing::new(key.serialize_pem()),
        })
    }

    /// The CA certificate (PEM), public.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// Serialises the CA (certificate and key) for storage behind the barrier. The buffer holds
    /// key material and is zeroized on drop.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, TlsError> {
        let stored = Stored {
            version: FORMAT_VERSION,
            ca_cert_pem: self.ca_cert_pem.clone(),
            ca_key_pem: String::from(self.ca_key_pem.as_str()),
        };
        // Sized up front, so the buffer holding the key is never reallocated (and copied).
        let mut buf = Vec::with_capacity(stored.ca_cert_pem.len() + stored.ca_key_pem.len() + 256);
        let bytes = serde_json::to_writer(&mut buf, &stored)
            .map(|()| buf)
            .map_err(|e| TlsError::Generate {
                what: "CA encoding",
                reason: e.to_string(),
            });
        let Stored { ca_key_pem, .. } = stored;
        drop(Zeroizing::new(ca_key_pem));
        bytes.map(Zeroizing::new)
    }

    /// Loads a CA written by [`ClusterTls::to_bytes`], checking that the key matches the
    /// certificate and that the certificate can issue node certificates.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TlsError> {
        let load = |reason: String| TlsError::Load { reason };
        let stored: Stored = serde_json::from_slice(bytes)
            .map_err(|e| load(format!("not a cluster TLS record: {e}")))?;
        let Stored {
            version,
            ca_cert_pem,
            ca_key_pem,
        } = stored;
        let tls = Self {
            ca_cert_pem,
            ca_key_pem: Zeroizing::new(ca_key_pem),
        };
        if version != FORMAT_VERSION {
            return Err(load(format!(
                "format version {version}, this build reads {FORMAT_VERSION}"
            )));
        }
        let ca_der = CertificateDer::from_pem_slice(tls.ca_cert_pem.as_bytes())
            .map_err(|e| load(format!("the CA certificate is not PEM: {e}")))?;
        let key_der = PrivateKeyDer::from_pem_slice(tls.ca_key_pem.as_bytes())
            .map_err(|e| load(format!("the CA key is not PEM: {e}")))?;
        CertifiedKey::from_der(vec![ca_der], key_der, &provider())
            .map_err(|e| load(format!("the CA key does not match its certificate: {e}")))?;
        let key = tls.ca_key()?;
        tls.issuer(&key)?;
        Ok(tls)
    }

    fn ca_key(&self) -> Result<Zeroizing<KeyPair>, TlsError> {
        KeyPair::from_pem(&self.ca_key_pem)
            .map(Zeroizing::new)
            .map_err(|e| TlsError::Load {
                reason: format!("the CA key cannot be read: {e}"),
            })
    }

    fn issuer<'k>(&self, key: &'k KeyPair) -> Result<Issuer<'static, &'k KeyPair>, TlsError> {
        Issuer::from_ca_cert_pem(&self.ca_cert_pem, key).map_err(|e| TlsError::Load {
            reason: format!("the CA certificate cannot be read: {e}"),
        })
    }

    /// Issues a certificate for this node, signed by the cluster CA, with a fresh key. Its SANs
    /// are `name` and the host of `cluster_addr` (a DNS name or an IP address); it is valid for
    /// both server and client authentication on the cluster port.
    pub fn issue_node(&self, name: &str, cluster_addr: &str) -> Result<NodeTls, TlsError> {
        let issue = |reason: String| TlsError::Issue {
            name: name.to_owned(),
            reason,
        };
        let addr = ClusterAddr::parse(cluster_addr).map_err(|e| issue(e.to_string()))?;
        let mut sans = vec![san(name).map_err(&issue)?];
        let host_san = san(addr.host()).map_err(&issue)?;
        if !sans.contains(&host_san) {
            sans.push(host_san);
        }
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Sealkeep");
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        (params.not_before, params.not_after) = validity(NODE_VALIDITY);
        let key = Zeroizing::new(
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| issue(e.to_string()))?,
        );
        let ca_key = self.ca_key()?;
        let cert = params
            .signed_by(&*key, &self.issuer(&ca_key)?)
            .map_err(|e| issue(e.to_string()))?;
        let ca_der = CertificateDer::from_pem_slice(self.ca_cert_pem.as_bytes()).map_err(|e| {
            TlsError::Load {
                reason: format!("the CA certificate is not PEM: {e}"),
            }
        })?;
        Ok(NodeTls {
            name: name.to_owned(),
            ca_der,
            cert_der: cert.der().clone(),
            key_der: Zeroizing::new(key.serialize_der()),
        })
    }
}

/// A SAN for `value`: an IP address SAN when it parses as one, else a DNS name.
fn san(value: &str) -> Result<SanType, String> {
    if let Ok(ip) = value.parse::<std::net::IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    // rcgen accepts any IA5 string; peers verify DNS syntax, so check it here.
    rustls::pki_types::DnsName::try_from(value)
        .map_err(|e| format!("{value:?} is not a valid DNS name: {e}"))?;
    let dns = value
        .try_into()
        .map_err(|e| format!("{value:?} is not a valid DNS name: {e}"))?;
    Ok(SanType::DnsName(dns))
}

/// One node's cluster identity: its certificate and key, and the cluster CA to verify peers.
/// `Debug` never prints the key; the key is zeroized on drop.
pub struct NodeTls {
    name: String,
    ca_der: CertificateDer<'static>,
    cert_der: CertificateDer<'static>,
    key_der: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeTls")
            .field("name", &self.name)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl NodeTls {
    /// The node name the certificate was issued for.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node certificate (DER).
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca_der.clone())
            .map_err(|e| TlsError::Config {
                reason: format!("the cluster CA is not a valid trust anchor: {e}"),
            })?;
        Ok(Arc::new(roots))
    }

    /// A fresh copy of the key for rustls (rustls keeps its own parsed copy).
    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.to_vec()))
    }

    /// The cluster port's server configuration: TLS 1.3, ALPN `h2`, and a client certificate
    /// chaining to the cluster CA required on every connection.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let cfg_err = |reason: String| TlsError::Config { reason };
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots()?, provider())
            .build()
            .map_err(|e| cfg_err(format!("client verifier: {e}")))?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| cfg_err(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.cert_der.clone()], self.key())
            .map_err(|e| cfg_err(format!("node certificate and key: {e}")))?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Arc::new(config))
    }

    /// A client configuration that presents this node's certificate but trusts the CA of
    /// `server`: a client of a foreign cluster that knows the server's CA.
    #[cfg(test)]
    pub(crate) fn client_config_trusting(&self, server: &NodeTls) -> Arc<ClientConfig> {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(server.roots().expect("roots"))
            .with_client_auth_cert(vec![self.cert_der.clone()], self.key())
            .expect("client cert");
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Arc::new(config)
    }

    /// A client configuration that trusts this node's CA and presents no certificate.
    #[cfg(test)]
    pub(crate) fn client_config_without_cert(&self) -> Arc<ClientConfig> {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(self.roots().expect("roots"))
            .with_no_client_auth();
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Arc::new(config)
    }

    /// The cluster port's client configuration: TLS 1.3, ALPN `h2`, the server verified against
    /// the cluster CA, and this node's certificate presented.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let cfg_err = |reason: String| TlsError::Config { reason };
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| cfg_err(e.to_string()))?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(vec![self.cert_der.clone()], self.key())
            .map_err(|e| cfg_err(format!("node certificate and key: {e}")))?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Arc::new(config))
    }
}
