//! Paths in output. A file name is whatever bytes the command chose: one that
//! is not UTF-8 must not make a JSON output (or the audit record) fail, and
//! one with a newline must not split a text line. Escaped, never dropped:
//! invalid bytes become `\xNN`, control characters `\n`, `\t`, `\u{…}`, and a
//! backslash `\\` (so the escaped form reads back unambiguously).

use serde::Serializer;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The path as one printable line.
pub fn escaped(p: &Path) -> String {
    let bytes = p.as_os_str().as_bytes();
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// `#[serde(serialize_with = "crate::pathfmt::ser")]` for a `PathBuf`.
pub fn ser<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    match p.to_str() {
        // Valid UTF-8 goes as it is: JSON escapes control characters itself.
        Some(v) => s.serialize_str(v),
        None => s.serialize_str(&escaped(p)),
    }
}

/// For `Vec<PathBuf>`.
pub fn ser_vec<S: Serializer>(v: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for p in v {
        seq.serialize_element(&Wrap(p))?;
    }
    seq.end()
}

/// For `Option<PathBuf>`.
pub fn ser_opt<S: Serializer>(v: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(p) => ser(p, s),
        None => s.serialize_none(),
    }
}

/// A path that serializes through [`ser`].
pub struct Wrap<'a>(pub &'a Path);

impl serde::Serialize for Wrap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ser(self.0, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn invalid_bytes_and_newlines_are_escaped_not_dropped() {
        let p = Path::new(OsStr::from_bytes(b"/w/k\xff.pem"));
        assert_eq!(escaped(p), "/w/k\\xff.pem");
        assert_eq!(escaped(Path::new("/w/a\nb")), "/w/a\\nb");
        let j = serde_json::to_string(&Wrap(p)).unwrap();
        assert_eq!(j, "\"/w/k\\\\xff.pem\"");
    }
}
