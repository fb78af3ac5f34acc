//! Built-in profiles, embedded at build time from `profiles/*.toml`.

pub const BUILTINS: &[(&str, &str)] = &[
    ("default", include_str!("../../profiles/default.toml")),
    ("strict", include_str!("../../profiles/strict.toml")),
    ("ci", include_str!("../../profiles/ci.toml")),
    (
        "devcontainer",
        include_str!("../../profiles/devcontainer.toml"),
    ),
    (
        "claude-code",
        include_str!("../../profiles/claude-code.toml"),
    ),
    ("codex", include_str!("../../profiles/codex.toml")),
    ("gemini-cli", include_str!("../../profiles/gemini-cli.toml")),
    ("aider", include_str!("../../profiles/aider.toml")),
    ("opencode", include_str!("../../profiles/opencode.toml")),
];

pub fn get(name: &str) -> Option<&'static str> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

pub fn names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(n, _)| *n).collect()
}
