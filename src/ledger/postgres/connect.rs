//! Connecting to PostgreSQL: TLS with rustls (the stack reqwest already
//! brings, with its aws-lc-rs provider), verified by default; and the
//! session settings every connection of the ledger gets.

use super::super::target::{certificates, private_key};
use super::super::{LedgerError, PostgresTarget, SslMode};
use super::pg_err;
use ::postgres::Client;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WantsClientCert, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ConfigBuilder, DigitallySignedStruct, RootCertStore,
    SignatureScheme,
};
use rustls_platform_verifier::BuilderVerifierExt;
use std::path::Path;
use std::sync::Arc;

/// How long a statement waits for a row another session has locked before
/// failing (SQLite's busy timeout, the same 5 s): our transactions are
/// short, so this is only reached when something is stuck.
const LOCK_TIMEOUT: &str = "5s";

/// A new connection with the ledger's session settings; `read_only`
/// sessions refuse every write (the `ledger` commands that only read).
///
/// Blocking: the client runs its own small runtime, so this must not be
/// called from an async task (the ledger runs on tokio's blocking pool).
pub(super) fn session(
    target: &PostgresTarget,
    path: &Path,
    read_only: bool,
) -> Result<Client, LedgerError> {
    let mut client = if target.unix_socket || target.sslmode == SslMode::Disable {
        target.config.connect(::postgres::NoTls)
    } else {
        let tls = tls_config(target).map_err(|reason| LedgerError::Io {
            path: path.to_path_buf(),
            reason,
        })?;
        target
            .config
            .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
    }
    .map_err(pg_err(path))?;
    let mut settings = format!("SET lock_timeout = '{LOCK_TIMEOUT}';");
    if read_only {
        settings.push_str("SET default_transaction_read_only = on;");
    }
    client.batch_execute(&settings).map_err(pg_err(path))?;
    Ok(client)
}

/// The rustls client config for `target`'s `sslmode`, roots and client
/// certificate.
fn tls_config(target: &PostgresTarget) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let roots = match &target.root_cert {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates("sslrootcert", pem).map_err(|e| e.message)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("sslrootcert: not a usable CA certificate ({e})"))?;
            }
            Some(Arc::new(roots))
        }
        None => None,
    };
    let builder: ConfigBuilder<ClientConfig, WantsClientCert> = match (target.sslmode, roots) {
        (SslMode::VerifyFull, Some(roots)) => builder.with_root_certificates(roots),
        // The system's trusted roots, as reqwest verifies the HTTPS hosts.
        (SslMode::VerifyFull, None) => builder
            .with_platform_verifier()
            .map_err(|e| format!("TLS setup: cannot load the system's trusted roots: {e}"))?,
        (SslMode::VerifyCa, Some(roots)) => {
            let chain = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| format!("sslrootcert: {e}"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(chain)))
        }
        // `PostgresTarget::new` refuses verify-ca without roots, and
        // disable never gets here; refuse rather than trust anything.
        (SslMode::VerifyCa | SslMode::Disable, _) => {
            return Err("TLS setup: no way to verify the server".to_owned());
        }
    };
    match &target.client_cert {
        Some((cert, key)) => {
            let chain = certificates("sslcert", cert).map_err(|e| e.message)?;
            let key = private_key(key).map_err(|e| e.message)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("sslcert/sslkey: {e}"))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

/// `sslmode = "verify-ca"`: the certificate must chain to `sslrootcert`
/// and be valid now, but may name another host (libpq's meaning).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            // webpki checks the name only after the chain and the dates.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
