//! The MySQL port's TLS certificate, loaded at start and reloaded on SIGHUP.
//!
//! The paths come from the node's `[[mysqld]]` section (`SslCert`, `SslKey`, `SslCa`). Each new
//! connection takes the config current when it was accepted; a reload affects connections
//! accepted after it, and connections already encrypted keep their session. A reload that fails
//! (a missing file, a key that does not match) is logged and the node keeps the certificate it
//! had, so a half-copied set of files cannot take the port's TLS away.

use std::sync::{Arc, RwLock};

use anyhow::Context;
use cairn_control::config::SqldSection;
use rustls::ServerConfig;

/// Where the certificate files are, and the config built from them.
#[derive(Clone)]
pub struct TlsReloader {
    cert: String,
    key: String,
    ca: Option<String>,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl TlsReloader {
    /// Loads the node's certificate; `Ok(None)` when the node has no `SslCert`.
    pub fn from_section(section: &SqldSection) -> anyhow::Result<Option<TlsReloader>> {
        let (Some(cert), Some(key)) = (&section.ssl_cert, &section.ssl_key) else {
            return Ok(None);
        };
        let config = cairn_wire::tls::server_config(cert, key, section.ssl_ca.as_deref())
            .with_context(|| format!("TLS for the MySQL port of node {}", section.node_id))?;
        Ok(Some(TlsReloader {
            cert: cert.clone(),
            key: key.clone(),
            ca: section.ssl_ca.clone(),
            current: Arc::new(RwLock::new(config)),
        }))
    }

    /// The config for a connection accepted now.
    pub fn current(&self) -> Arc<ServerConfig> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc; the Arc inside
        // is whole either way.
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the files again; on success new connections use them.
    pub fn reload(&self) -> anyhow::Result<()> {
        let config = cairn_wire::tls::server_config(&self.cert, &self.key, self.ca.as_deref())?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = config;
        Ok(())
    }

    /// Reloads on every SIGHUP until the process ends.
    pub fn reload_on_sighup(self) -> anyhow::Result<()> {
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot listen for SIGHUP")?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match self.reload() {
                    Ok(()) => tracing::info!(cert = %self.cert, "SIGHUP: MySQL port certificate reloaded"),
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "SIGHUP: certificate reload failed; keeping the previous one"),
                }
            }
        });
        Ok(())
    }
}
