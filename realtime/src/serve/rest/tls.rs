//! The REST service's TLS: a certificate given with `--tls-cert`/`--tls-key`, or a self-signed
//! one generated on first start and kept in the state directory (`tls/cert.pem`, `tls/key.pem`)
//! with every IP address and host name the service answers to in its subjectAltName (urllib3,
//! under spinnman's client, checks IP SANs). It is made again only when those names change, so
//! clients that were told to trust it keep trusting it.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What can go wrong setting up TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM file without what it should hold.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The certificate could not be made.
    #[error("cannot make a certificate: {0}")]
    Generate(String),
    /// rustls refused the certificate and key.
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(String),
}

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// Files given by the operator.
    Given {
        /// PEM certificate chain.
        cert: PathBuf,
        /// PEM private key.
        key: PathBuf,
    },
    /// Self-signed, kept in the state directory, for these names.
    SelfSigned(Vec<String>),
}

/// The TLS configuration and the certificate file clients should trust.
#[derive(Debug, Clone)]
pub struct Tls {
    /// For the acceptor.
    pub config: Arc<rustls::ServerConfig>,
    /// The certificate (for `REQUESTS_CA_BUNDLE` and friends).
    pub cert_path: PathBuf,
    /// Whether it was made just now.
    pub generated: bool,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Loads or makes the certificate and builds the TLS configuration.
pub fn setup(state: &Path, source: &CertSource) -> Result<Tls, TlsError> {
    let (cert_path, key_path, generated) = match source {
        CertSource::Given { cert, key } => (cert.clone(), key.clone(), false),
        CertSource::SelfSigned(names) => {
            let dir = state.join("tls");
            let (cert, key, names_file) = (dir.join("cert.pem"), dir.join("key.pem"), dir.join("names"));
            let want = names.join("\n") + "\n";
            let have = std::fs::read_to_string(&names_file).ok();
            let generated = have.as_deref() != Some(want.as_str()) || !cert.is_file() || !key.is_file();
            if generated {
                std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                let mut params =
                    rcgen::CertificateParams::new(names.clone()).map_err(|e| TlsError::Generate(e.to_string()))?;
                params
                    .distinguished_name
                    .push(rcgen::DnType::CommonName, "spinnbed sim serve (self-signed)");
                let key_pair = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
                let c = params
                    .self_signed(&key_pair)
                    .map_err(|e| TlsError::Generate(e.to_string()))?;
                write_private(&key, key_pair.serialize_pem().as_bytes())?;
                write_private(&cert, c.pem().as_bytes())?;
                write_private(&names_file, want.as_bytes())?;
            }
            (cert, key, generated)
        }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| TlsError::Pem {
            path: cert_path.clone(),
            message: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: cert_path.clone(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: cert_path,
            message: "no certificate in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| TlsError::Pem {
        path: key_path.clone(),
        message: format!("no private key: {e}"),
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        config: Arc::new(config),
        cert_path,
        generated,
    })
}

/// Writes a file readable by its owner only, atomically.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_is_made_once_per_set_of_names() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let a = setup(dir.path(), &CertSource::SelfSigned(names.clone())).unwrap();
        assert!(a.generated);
        let pem = std::fs::read(&a.cert_path).unwrap();
        let b = setup(dir.path(), &CertSource::SelfSigned(names.clone())).unwrap();
        assert!(!b.generated);
        assert_eq!(std::fs::read(&b.cert_path).unwrap(), pem);
        let c = setup(dir.path(), &CertSource::SelfSigned(vec!["127.0.0.2".into()])).unwrap();
        assert!(c.generated);
        assert_ne!(std::fs::read(&c.cert_path).unwrap(), pem);
        // Given files are used as they are.
        let d = setup(
            dir.path(),
            &CertSource::Given {
                cert: c.cert_path.clone(),
                key: dir.path().join("tls/key.pem"),
            },
        )
        .unwrap();
        assert!(!d.generated);
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let e = setup(
            dir.path(),
            &CertSource::Given {
                cert: junk.clone(),
                key: junk.clone(),
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("junk.pem"), "{e}");
        let e = setup(
            dir.path(),
            &CertSource::Given {
                cert: dir.path().join("missing.pem"),
                key: junk,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("missing.pem"), "{e}");
    }
}
