//! Redaction of values: one place decides what looks like a credential in
//! an argument, an environment value or a message, so every printed or
//! recorded text is redacted the same way. Built on the scanner's rules.

/// The command line as recorded: `--env-set K=V` values and any argument that
/// looks like a credential are replaced by `<redacted>` (names stay).
pub fn redact_argv(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut next_is_env_set = false;
    for a in args {
        let redacted = if next_is_env_set {
            next_is_env_set = false;
            a.split_once('=').map(|(k, _)| format!("{k}=<redacted>"))
        } else if let Some(kv) = a.strip_prefix("--env-set=") {
            kv.split_once('=')
                .map(|(k, _)| format!("--env-set={k}=<redacted>"))
        } else {
            next_is_env_set = a == "--env-set";
            crate::scan::secret_in_value(&a).map(|rule| format!("<redacted: {rule}>"))
        };
        out.push(redacted.unwrap_or(a));
    }
    out
}

/// A credential anywhere in an environment value: the whole value, each part
/// of it split on whitespace and `=:,;"'` (`LC_AUTH="Bearer <token>"`,
/// `EDITOR="code --token <token>"`), and the decoded form of a part that looks
/// base64- or percent-encoded. Returns the rule id, never the value.
pub fn secret_in_env_value(value: &str) -> Option<String> {
    use base64::Engine;
    const MAX_DEPTH: u8 = 2;
    fn check(v: &str, depth: u8) -> Option<String> {
        if let Some(r) = crate::scan::secret_in_value(v) {
            return Some(r.to_string());
        }
        let parts: Vec<&str> = v
            .split(|c: char| c.is_whitespace() || "=:,;\"'".contains(c))
            .filter(|p| p.len() >= 8)
            .collect();
        for part in &parts {
            if *part != v {
                if let Some(r) = crate::scan::secret_in_value(part) {
                    return Some(r.to_string());
                }
            }
        }
        if depth >= MAX_DEPTH {
            return None;
        }
        // Decoded forms: only of parts that could be an encoding (long enough,
        // of the right alphabet), and only when the result is text.
        let mut candidates: Vec<&str> = parts;
        candidates.push(v);
        for part in candidates {
            let part = part.trim();
            if part.len() >= 16
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/-_=".contains(&b))
            {
                let engines = [
                    base64::engine::general_purpose::STANDARD,
                    base64::engine::general_purpose::URL_SAFE,
                    base64::engine::general_purpose::STANDARD_NO_PAD,
                    base64::engine::general_purpose::URL_SAFE_NO_PAD,
                ];
                for e in engines {
                    if let Ok(bytes) = e.decode(part) {
                        if let Ok(text) = String::from_utf8(bytes) {
                            if let Some(r) = check(&text, depth + 1) {
                                return Some(format!("{r} (base64-encoded)"));
                            }
                        }
                        break;
                    }
                }
            }
            if part.contains('%') {
                let decoded = percent_encoding::percent_decode_str(part).decode_utf8_lossy();
                if decoded != part {
                    if let Some(r) = check(&decoded, depth + 1) {
                        return Some(format!("{r} (percent-encoded)"));
                    }
                }
            }
        }
        None
    }
    check(value, 0)
}

#[cfg(test)]
mod dressed_value_tests {
    use super::secret_in_env_value;
    use base64::Engine;

    /// A GitHub-PAT-shaped value assembled at run time (not a real token).
    fn token() -> String {
        format!("{}_{}", "ghp", "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8")
    }

    #[test]
    fn dressed_up_credentials_are_found() {
        let t = token();
        assert!(secret_in_env_value(&t).is_some(), "bare");
        for v in [
            format!("Bearer {t}"),
            format!("code --token {t}"),
            format!("x=1;token={t}"),
            format!("user:{t}"),
            base64::engine::general_purpose::STANDARD.encode(&t),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("Bearer {t}")),
            t.replace('_', "%5F"),
        ] {
            assert!(secret_in_env_value(&v).is_some(), "missed a dressed value");
        }
    }

    #[test]
    fn ordinary_values_pass() {
        for v in [
            "/usr/local/bin:/usr/bin:/bin",
            "en_US.UTF-8",
            "xterm-256color",
            "vim -u NONE",
            "code --wait",
            "--max-old-space-size=4096",
            "dGhpcyBpcyBqdXN0IHNvbWUgdGV4dA==",
            "/home/user/My%20Documents",
            "Mozilla/5.0 (X11; Linux x86_64)",
        ] {
            assert!(secret_in_env_value(v).is_none(), "{v}");
        }
    }
}

#[cfg(test)]
mod argv_tests {
    use super::*;

    #[test]
    fn env_set_values_and_token_arguments_are_redacted() {
        let tok = format!("ghp_{}", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8");
        let argv = redact_argv(
            [
                "airlock",
                "run",
                "--env-set",
                "API=hunter2",
                "--env-set=K=v",
                "--",
                "curl",
                tok.as_str(),
                "-v",
            ]
            .map(String::from),
        );
        assert_eq!(argv[3], "API=<redacted>");
        assert_eq!(argv[4], "--env-set=K=<redacted>");
        assert!(argv[7].starts_with("<redacted"), "{argv:?}");
        assert_eq!(argv[8], "-v");
        assert!(!argv
            .iter()
            .any(|a| a.contains("hunter2") || a.contains("ghp_")));
    }
}
