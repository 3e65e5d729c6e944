//! Connecting to PostgreSQL: TLS with rustls (the stack reqwest already
//! brings, with its aws-lc-rs provider), always verified; and the
//! session settings every connection of the ledger gets.

use super::super::target::{certificates, private_key};
use super::super::{LedgerError, PostgresTarget, SslMode};
use super::pg_err;
use ::postgres::Client;
use rustls::client::WantsClientCert;
use rustls::{ClientConfig, ConfigBuilder, RootCertStore};
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

/// The rustls client config for `target`'s roots and client certificate.
fn tls_config(target: &PostgresTarget) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
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
    // Chain and name are always checked (webpki): to `sslrootcert`, else to
    // the system's trusted roots, as reqwest verifies the HTTPS hosts.
    let builder: ConfigBuilder<ClientConfig, WantsClientCert> = match roots {
        Some(roots) => builder.with_root_certificates(roots),
        None => builder
            .with_platform_verifier()
            .map_err(|e| format!("TLS setup: cannot load the system's trusted roots: {e}"))?,
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
