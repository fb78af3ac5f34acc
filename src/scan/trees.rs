//! Package-manager trees, recognised by structure: installed code is not a
//! secret store.
//!
//! A virtualenv (`pyvenv.cfg`), a conda env (`conda-meta/`), `site-packages`,
//! `*.dist-info`, `node_modules`, the cargo registry and vendored crates
//! (`.cargo-checksum.json`), Go's module cache and `vendor/modules.txt`, Ruby
//! gem homes, Maven/Gradle/NuGet/pnpm/Yarn caches hold thousands of files
//! written by a package manager: `credentials.py`, `cacert.pem`, docstrings
//! with example keys, test fixtures. Inside them a file is never masked by
//! its name alone, and its content is checked only with the rules marked
//! `package_trees` in `rules.toml` (formats with a fixed prefix or a
//! checksum, and private keys in key files).
//!
//! The markers are files anyone who can write the tree can create. A marker
//! forged by an agent only lifts *name* masks and the generic rules for the
//! files below it; a file with a credential-like name (`.env`, `.netrc`,
//! `id_rsa`, …, see [`keeps_every_rule`]) keeps every rule.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Directory names that are package trees wherever they are.
const TREE_DIRS: &[&str] = &[
    "site-packages",
    "dist-packages",
    "node_modules",
    "bower_components",
    "__pypackages__",
    "jspm_packages",
    ".pnpm-store",
];

/// `parent/child` directory pairs that are package caches.
const TREE_PAIRS: &[(&str, &str)] = &[
    (".cargo", "registry"),
    (".cargo", "git"),
    ("pkg", "mod"),
    (".m2", "repository"),
    (".gradle", "caches"),
    (".ivy2", "cache"),
    (".nuget", "packages"),
    (".yarn", "cache"),
    (".yarn", "unplugged"),
    ("bundle", "ruby"),
    (".rustup", "toolchains"),
];

/// Files (or directories) whose presence makes their directory a package tree.
const TREE_MARKERS: &[&str] = &[
    "pyvenv.cfg",
    ".cargo-ok",
    "conda-meta",
    ".cargo-checksum.json",
    ".package-lock.json",
];

/// Why `dir` is a package tree by its name alone, if it is.
fn by_name(dir: &Path) -> Option<&'static str> {
    let name = dir.file_name().and_then(OsStr::to_str)?;
    if let Some(t) = TREE_DIRS.iter().find(|t| **t == name) {
        return Some(t);
    }
    if name.ends_with(".dist-info") || name.ends_with(".egg-info") {
        return Some("*.dist-info");
    }
    if name.starts_with("index.crates.io-") {
        return Some("cargo registry");
    }
    let parent = dir.parent()?.file_name().and_then(OsStr::to_str)?;
    TREE_PAIRS
        .iter()
        .find(|(p, c)| *p == parent && *c == name)
        .map(|(p, _)| *p)
}

/// Why `dir` is the root of a package tree by what it holds, if it is.
fn by_marker(dir: &Path) -> Option<&'static str> {
    for m in TREE_MARKERS {
        if std::fs::symlink_metadata(dir.join(m)).is_ok() {
            return Some(m);
        }
    }
    let name = dir.file_name().and_then(OsStr::to_str).unwrap_or("");
    // Go (`vendor/modules.txt`) and Composer (`vendor/autoload.php`).
    if name == "vendor"
        && ["modules.txt", "autoload.php"]
            .iter()
            .any(|f| dir.join(f).is_file())
    {
        return Some("vendor");
    }
    // A Python installation's standard library: `lib/python3.X/os.py`.
    if name.starts_with("python") && dir.join("os.py").is_file() {
        return Some("python stdlib");
    }
    // A Ruby gem home: `gems/` next to `specifications/`.
    if name == "gems"
        && dir
            .parent()
            .is_some_and(|p| p.join("specifications").is_dir())
    {
        return Some("gems");
    }
    None
}

/// Memoised per directory; one per walker thread (or per plan).
#[derive(Debug, Default)]
pub struct PackageTrees {
    memo: HashMap<PathBuf, Option<&'static str>>,
    /// The last directory asked about: the walk hands out a directory's
    /// files together, and a byte compare is cheaper than hashing a path.
    last: Option<(PathBuf, Option<&'static str>)>,
}

impl PackageTrees {
    /// Why the file at `path` lies in a package tree (the marker or
    /// directory name), or None. Costs a few `stat`s per new directory.
    pub fn of_file(&mut self, path: &Path) -> Option<&'static str> {
        let dir = path.parent()?;
        if let Some((d, v)) = &self.last {
            if d.as_os_str() == dir.as_os_str() {
                return *v;
            }
        }
        let v = self.of_dir(dir);
        self.last = Some((dir.to_path_buf(), v));
        v
    }

    fn of_dir(&mut self, dir: &Path) -> Option<&'static str> {
        if let Some(v) = self.memo.get(dir) {
            return *v;
        }
        // Trees the system's package manager owns.
        const SYSTEM: &[&str] = &["/usr/share", "/usr/lib", "/usr/local/lib", "/usr/lib64"];
        let v = SYSTEM
            .iter()
            .find(|s| dir == Path::new(s))
            .map(|_| "system package tree")
            .or_else(|| by_name(dir))
            .or_else(|| by_marker(dir))
            .or_else(|| dir.parent().and_then(|p| self.of_dir(p)));
        self.memo.insert(dir.to_path_buf(), v);
        v
    }
}

/// The file is exactly what its package manager installed: its sha256 is
/// listed in the package's own manifest (a Python `*.dist-info/RECORD`, a
/// vendored crate's `.cargo-checksum.json`). Such a file was published with
/// the package, so a key in it is public (moto's proxy CA, a crate's test
/// key), not the user's. Only asked for files that have findings.
pub fn published_by_package(path: &Path, content: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    published_with_digest(path, &Sha256::digest(content).into())
}

/// [`published_by_package`] for a file whose sha256 is already known (a
/// file too large to hold in memory, hashed as it streams).
pub fn published_with_digest(path: &Path, digest: &[u8; 32]) -> bool {
    for dir in path.ancestors().skip(1) {
        let Ok(rel) = path.strip_prefix(dir) else {
            continue;
        };
        let Some(rel_s) = rel.to_str() else {
            return false;
        };
        let checksums = dir.join(".cargo-checksum.json");
        if checksums.is_file() {
            let listed = std::fs::read(&checksums)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v["files"][rel_s].as_str().map(str::to_owned));
            return listed.is_some_and(|h| h == super::rules::hex(digest));
        }
        let name = dir.file_name().and_then(OsStr::to_str).unwrap_or("");
        if matches!(name, "site-packages" | "dist-packages") {
            let want = format!("{rel_s},sha256={}", b64url_nopad(digest));
            let Ok(entries) = std::fs::read_dir(dir) else {
                return false;
            };
            return entries.flatten().any(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                (n.ends_with(".dist-info"))
                    && std::fs::read_to_string(e.path().join("RECORD"))
                        .is_ok_and(|r| r.lines().any(|l| l.starts_with(&want)))
            });
        }
    }
    false
}

fn b64url_nopad(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 2);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Build caches: a directory tagged with a `CACHEDIR.TAG` (the Cache
/// Directory Tagging spec; cargo writes one in every `target/`), whose
/// contents a build regenerates. Memoised per directory like
/// [`PackageTrees`].
#[derive(Debug, Default)]
pub struct BuildCaches {
    memo: HashMap<PathBuf, Option<PathBuf>>,
    /// The last directory asked about (see [`PackageTrees`]).
    last: Option<(PathBuf, Option<PathBuf>)>,
}

/// The first bytes of a valid `CACHEDIR.TAG`.
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

impl BuildCaches {
    /// The tagged build cache the file lies in, if any.
    pub fn of_file(&mut self, path: &Path) -> Option<PathBuf> {
        let dir = path.parent()?;
        if let Some((d, v)) = &self.last {
            if d.as_os_str() == dir.as_os_str() {
                return v.clone();
            }
        }
        let v = self.of_dir(dir);
        self.last = Some((dir.to_path_buf(), v.clone()));
        v
    }

    fn of_dir(&mut self, dir: &Path) -> Option<PathBuf> {
        if let Some(v) = self.memo.get(dir) {
            return v.clone();
        }
        let tagged = {
            use std::io::Read;
            let mut head = [0u8; CACHEDIR_SIGNATURE.len()];
            std::fs::File::open(dir.join("CACHEDIR.TAG"))
                .and_then(|mut f| f.read_exact(&mut head))
                .is_ok_and(|()| head == CACHEDIR_SIGNATURE)
        };
        let v = if tagged {
            Some(dir.to_path_buf())
        } else {
            dir.parent().and_then(|p| self.of_dir(p))
        };
        self.memo.insert(dir.to_path_buf(), v.clone());
        v
    }
}

/// Object code by its magic number: what a compiler or linker writes (ELF,
/// `ar` archives and rlibs, Mach-O, PE, WebAssembly, LLVM bitcode, rustc
/// metadata and incremental caches, Java classes).
pub fn is_compiler_output(head: &[u8]) -> bool {
    const MAGIC: &[&[u8]] = &[
        b"\x7fELF",
        b"!<arch>\n",
        b"\xfe\xed\xfa\xce",
        b"\xfe\xed\xfa\xcf",
        b"\xce\xfa\xed\xfe",
        b"\xcf\xfa\xed\xfe",
        b"\xca\xfe\xba\xbe",
        b"MZ",
        b"\0asm",
        b"BC\xc0\xde",
        b"rust\0",
        b"RSIC",
    ];
    MAGIC.iter().any(|m| head.starts_with(m))
}

/// Directory names of test fixtures inside a package (not in a workspace).
pub fn in_fixture_dir(path: &Path) -> bool {
    const FIXTURES: &[&str] = &[
        "test",
        "tests",
        "testing",
        "testdata",
        "test_data",
        "fixtures",
        "__fixtures__",
        "__tests__",
        "spec",
        "examples",
        "benches",
    ];
    path.parent().is_some_and(|p| {
        p.components()
            .any(|c| FIXTURES.iter().any(|f| c.as_os_str() == *f))
    })
}

/// Credential file names (`.env`, `.netrc`, `id_rsa`, …) keep every rule even
/// inside a package tree; key and certificate files (`*.pem`, `*.key`) are
/// judged by the key-file rules there.
pub fn keeps_every_rule(name: &str) -> bool {
    super::walk::is_credential_name(name)
        && !is_pem_name(name)
        && ![".p12", ".pfx", ".jks", ".keystore"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// Files whose name says "certificate or key in PEM": masked by name only
/// when they may hold a private key.
fn is_pem_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".pem", ".crt", ".cer", ".cert", ".key", ".ca-bundle"]
        .iter()
        .any(|s| lower.ends_with(s))
}

/// PEM text holding only public material: certificates, public keys, CRLs,
/// CSRs, parameters. No private-key block, no encrypted block, no bare
/// base64 outside a block (a DER or raw key would not parse as PEM).
pub fn is_public_pem(bytes: &[u8]) -> bool {
    const PUBLIC: &[&str] = &[
        "CERTIFICATE",
        "TRUSTED CERTIFICATE",
        "X509 CERTIFICATE",
        "PUBLIC KEY",
        "RSA PUBLIC KEY",
        "X509 CRL",
        "CERTIFICATE REQUEST",
        "NEW CERTIFICATE REQUEST",
        "DH PARAMETERS",
        "EC PARAMETERS",
        "PKCS7",
        "CMS",
    ];
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let mut blocks = 0;
    let mut inside: Option<&str> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            if inside.is_some() || !PUBLIC.contains(&label) {
                return false;
            }
            inside = Some(label);
            blocks += 1;
        } else if let Some(label) = line
            .strip_prefix("-----END ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            if inside != Some(label) {
                return false;
            }
            inside = None;
        } else if line.contains("PRIVATE") || line.contains("ENCRYPTED") {
            return false;
        } else if inside.is_none() && looks_like_base64_line(line) {
            // Key material outside any declared public block.
            return false;
        }
    }
    blocks > 0 && inside.is_none()
}

fn looks_like_base64_line(line: &str) -> bool {
    line.len() >= 40
        && line
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

/// Why a file whose name matches a mask pattern is not masked by that name,
/// if it is not: inside a package tree (its content alone decides, and the
/// secret scan read it), or a certificate/public-key PEM file. `scanned`
/// says whether the secret scan ran over this file's tree: without it a
/// package tree keeps its name masks (fail closed).
pub fn name_mask_exemption(path: &Path, scanned: bool, trees: &mut PackageTrees) -> Option<String> {
    let name = path.file_name().and_then(OsStr::to_str)?;
    if scanned {
        if let Some(why) = trees.of_file(path) {
            return Some(format!(
                "inside a package-manager tree ({why}): its content decides"
            ));
        }
    }
    if is_pem_name(name) {
        let meta = std::fs::symlink_metadata(path).ok()?;
        if meta.is_file() && meta.len() <= 4 * 1024 * 1024 {
            let bytes = std::fs::read(path).ok()?;
            if is_public_pem(&bytes) {
                return Some("holds only certificates or public keys".into());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn touch(p: &Path) {
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).expect("mkdir");
        }
        fs::write(p, "").expect("write");
    }

    #[test]
    fn build_caches_need_a_valid_tag() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = dir.path().join("target");
        std::fs::create_dir_all(t.join("debug/deps")).expect("mkdir");
        let file = t.join("debug/deps/libx.rlib");
        assert_eq!(BuildCaches::default().of_file(&file), None);
        std::fs::write(t.join("CACHEDIR.TAG"), b"not the signature\n").expect("write");
        assert_eq!(BuildCaches::default().of_file(&file), None);
        let mut tag = CACHEDIR_SIGNATURE.to_vec();
        tag.extend_from_slice(b"\n# This file is a cache directory tag.\n");
        std::fs::write(t.join("CACHEDIR.TAG"), tag).expect("write");
        assert_eq!(BuildCaches::default().of_file(&file), Some(t.clone()));
        assert!(is_compiler_output(b"\x7fELF\x02\x01"));
        assert!(is_compiler_output(b"!<arch>\nfoo"));
        assert!(!is_compiler_output(b"SQLite format 3\0"));
        assert!(!is_compiler_output(b"{\"rustc\": 1}"));
    }

    #[test]
    fn trees_are_recognised_by_structure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path();
        touch(&r.join(".venv/pyvenv.cfg"));
        touch(&r.join("env2/lib/x/credentials.py"));
        touch(&r.join("env2/conda-meta/history"));
        touch(&r.join("vendor/serde/.cargo-checksum.json"));
        touch(&r.join("vendor/modules.txt"));
        let mut t = PackageTrees::default();
        for p in [
            ".venv/lib/python3.12/site-packages/litellm/credentials.py",
            ".venv/bin/activate",
            "env2/lib/x/credentials.py",
            "vendor/serde/src/lib.rs",
            "vendor/github.com/x/y/creds.go",
            "web/node_modules/aws-sdk/credentials.js",
            "x/lib/python3.11/dist-packages/certifi/cacert.pem",
            "home/.cargo/registry/src/index.crates.io-1/pem-3/tests/key.pem",
            "go/pkg/mod/github.com/a/b@v1/creds.go",
            "x/foo-1.0.dist-info/RECORD",
        ] {
            assert!(t.of_file(&r.join(p)).is_some(), "{p}");
        }
        for p in [
            "credentials.py",
            ".env",
            "src/vendor/creds.go",
            "lib/credentials.rb",
            "config/settings.py",
        ] {
            assert!(t.of_file(&r.join(p)).is_none(), "{p}");
        }
    }

    #[test]
    fn files_listed_in_their_package_record_are_published() {
        use sha2::{Digest, Sha256};
        let dir = tempfile::tempdir().expect("tempdir");
        let sp = dir.path().join("lib/site-packages");
        let body = b"key material shipped with the package\n";
        let f = sp.join("moto/moto_proxy/ca.key");
        touch(&f);
        fs::write(&f, body).expect("write");
        let h = b64url_nopad(&Sha256::digest(body));
        fs::create_dir_all(sp.join("moto-5.0.dist-info")).expect("mkdir");
        fs::write(
            sp.join("moto-5.0.dist-info/RECORD"),
            format!("moto/__init__.py,,\nmoto/moto_proxy/ca.key,sha256={h},38\n"),
        )
        .expect("write");
        assert!(published_by_package(&f, body));
        // Changed content, or a file the record does not list: not published.
        assert!(!published_by_package(&f, b"another key\n"));
        assert!(!published_by_package(&sp.join("moto/other.key"), body));
        // The encoding matches Python's urlsafe_b64encode without padding.
        assert_eq!(b64url_nopad(b"\xfb\xff"), "-_8");
        // A vendored crate's checksum file.
        let v = dir.path().join("vendor/pem");
        touch(&v.join("tests/key.pem"));
        fs::write(v.join("tests/key.pem"), body).expect("write");
        let hex = crate::scan::rules::hex(&Sha256::digest(body));
        fs::write(
            v.join(".cargo-checksum.json"),
            format!("{{\"files\":{{\"tests/key.pem\":\"{hex}\"}},\"package\":\"x\"}}"),
        )
        .expect("write");
        assert!(published_by_package(&v.join("tests/key.pem"), body));
        assert!(!published_by_package(&v.join("tests/key.pem"), b"x"));
    }

    #[test]
    fn certificate_bundles_are_public_private_keys_are_not() {
        let b64 = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAx";
        let cert = format!(
            "# Issuer: CN=Root\n-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n"
        );
        assert!(is_public_pem(cert.as_bytes()));
        assert!(is_public_pem(format!("{cert}\n{cert}").as_bytes()));
        let key = format!(
            "-----BEGIN {} KEY-----\n{b64}\n-----END {} KEY-----\n",
            "RSA PRIVATE", "RSA PRIVATE"
        );
        assert!(!is_public_pem(format!("{cert}{key}").as_bytes()));
        assert!(!is_public_pem(b""));
        assert!(!is_public_pem(format!("{b64}{b64}\n").as_bytes()));
        assert!(!is_public_pem(b"\x30\x82\x01\x00binary"));
        let enc =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nabc\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(!is_public_pem(enc.as_bytes()));
    }
}
