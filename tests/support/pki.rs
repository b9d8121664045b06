//! Certificates made at test time with rcgen (no key is committed): a CA, a server
//! certificate it signed and a client certificate it signed, as PEM files.

use std::path::{Path, PathBuf};

/// A CA, a server certificate for localhost/127.0.0.1 it signed, and a client
/// certificate it signed, all as PEM files in `dir` with names prefixed by `tag`.
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

pub fn make_pki(dir: &Path, tag: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name = dn(&format!("redmux test CA {tag}"));
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("params");
    params.distinguished_name = dn("localhost");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("cert");
    let client_key = KeyPair::generate().expect("client key");
    let mut client_params = CertificateParams::new(vec!["client".to_string()]).expect("params");
    client_params.distinguished_name = dn("redmux test client");
    let client = client_params
        .signed_by(&client_key, &ca, &ca_key)
        .expect("client cert");
    let write = |name: &str, pem: String| {
        let p = dir.join(format!("{tag}-{name}"));
        std::fs::write(&p, pem).expect("write pem");
        p
    };
    Pki {
        ca: write("ca.pem", ca.pem()),
        cert: write("cert.pem", cert.pem()),
        key: write("key.pem", key.serialize_pem()),
        client_cert: write("client.pem", client.pem()),
        client_key: write("client-key.pem", client_key.serialize_pem()),
    }
}

/// A distinguished name with only a common name (OpenSSL wants the CA's to differ from
/// the leaf's).
fn dn(cn: &str) -> rcgen::DistinguishedName {
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, cn);
    dn
}
