//! Test certificates, made with rcgen: a CA, leaf certificates it signs
//! and self-signed ones, written as PEM files into a temp dir.

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

use crate::harness::TestDir;

/// A leaf certificate and its key, as files.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub fingerprint: String,
}

/// A certificate authority whose files live in `dir`.
pub struct Ca {
    pub dir: TestDir,
    pub cert: PathBuf,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

fn hex_sha256(der: &[u8]) -> String {
    logrelay::tls::fingerprint(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn leaf_params(names: &[&str], cn: &str) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("names");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let dir = TestDir::new();
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let cert = dir.write(&format!("{name}.pem"), &issuer.pem());
        Ca { dir, cert, issuer }
    }

    /// A certificate for `names` (DNS names or IP addresses), signed by
    /// this CA; files `FILE.pem` and `FILE.key`.
    pub fn leaf(&self, file: &str, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let cn = names.first().copied().unwrap_or(file);
        let cert = leaf_params(names, cn)
            .signed_by(&key, &self.issuer)
            .expect("sign leaf");
        Leaf {
            cert: self.dir.write(&format!("{file}.pem"), &cert.pem()),
            key: self.dir.write(&format!("{file}.key"), &key.serialize_pem()),
            fingerprint: hex_sha256(cert.der()),
        }
    }
}

/// A self-signed certificate for `names`, in `dir`.
pub fn self_signed(dir: &TestDir, file: &str, names: &[&str]) -> Leaf {
    let key = KeyPair::generate().expect("key");
    let cn = names.first().copied().unwrap_or(file);
    let cert = leaf_params(names, cn).self_signed(&key).expect("self-sign");
    Leaf {
        cert: dir.write(&format!("{file}.pem"), &cert.pem()),
        key: dir.write(&format!("{file}.key"), &key.serialize_pem()),
        fingerprint: hex_sha256(cert.der()),
    }
}
