//! `airlock secrets ack FINGERPRINT…` and `airlock secrets list`: the
//! acknowledgements that let a run start despite a (rotated) credential in
//! the git history. Only fingerprints are written, never a value.

use super::SecretsCmd;
use crate::history::ack;

pub fn main(cmd: SecretsCmd) -> u8 {
    match cmd {
        SecretsCmd::Ack { fingerprints } => match ack::append(&fingerprints) {
            Ok((path, n)) => {
                eprintln!(
                    "airlock: acknowledged {n} new fingerprint(s) in {} ({} given)",
                    path.display(),
                    fingerprints.len()
                );
                0
            }
            Err(msg) => {
                eprintln!("airlock secrets ack: {msg}");
                crate::error::exit::USAGE
            }
        },
        SecretsCmd::List => {
            let Some(path) = ack::path() else {
                eprintln!(
                    "airlock secrets list: no config directory (set HOME or XDG_CONFIG_HOME)"
                );
                return crate::error::exit::USAGE;
            };
            println!("# {}", path.display());
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let mut fps: Vec<String> = ack::parse(&text).into_iter().collect();
            fps.sort();
            for f in fps {
                println!("{f}");
            }
            0
        }
    }
}
