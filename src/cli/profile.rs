//! `airlock profile list|show|validate|schema`.

use super::ProfileCmd;
use crate::profile::{builtin, load, load_named};

pub fn main(cmd: ProfileCmd) -> u8 {
    match cmd {
        ProfileCmd::List => {
            for (name, text) in builtin::BUILTINS {
                let desc = load::parse(name, text)
                    .ok()
                    .and_then(|p| p.description)
                    .unwrap_or_default();
                println!("{name:<14} builtin  {desc}");
            }
            if let Some(dir) = load::user_profile_dir() {
                if let Ok(rd) = std::fs::read_dir(&dir) {
                    let mut names: Vec<_> = rd
                        .flatten()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                        .collect();
                    names.sort();
                    for p in names {
                        let stem = p
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        println!("{stem:<14} user     {}", p.display());
                    }
                }
            }
            0
        }
        ProfileCmd::Show { name, raw } => {
            if raw {
                if let Some(t) = builtin::get(&name) {
                    print!("{t}");
                    return 0;
                }
            }
            match load_named(&name) {
                Ok(p) => {
                    println!("# profile {} ({})", p.name, p.sources.join(" <- "));
                    println!("# sha256 {}", p.hash);
                    match toml::to_string_pretty(&p.profile) {
                        Ok(s) => {
                            print!("{s}");
                            0
                        }
                        Err(e) => {
                            eprintln!("airlock: profile show: {e}");
                            crate::error::exit::SETUP
                        }
                    }
                }
                Err(e) => {
                    eprintln!("airlock: {}", crate::error::redact_message(&e.to_string()));
                    crate::error::exit::SETUP
                }
            }
        }
        ProfileCmd::Validate { file } => match load_named(&file.to_string_lossy())
            .map_err(crate::error::Error::from)
            .and_then(|p| {
                let net = p
                    .profile
                    .network
                    .mode
                    .unwrap_or(crate::profile::types::NetMode::None);
                crate::plan::validate_network(&p, net).map(|_| p)
            }) {
            Ok(p) => {
                println!(
                    "{}: ok (profile {}, extends chain: {})",
                    file.display(),
                    p.name,
                    p.sources.join(" <- ")
                );
                0
            }
            Err(e) => {
                eprintln!("airlock: {}", crate::error::redact_message(&e.to_string()));
                1
            }
        },
        ProfileCmd::Schema => {
            let schema = schemars::schema_for!(crate::profile::Profile);
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            0
        }
    }
}
