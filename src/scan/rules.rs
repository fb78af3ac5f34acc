//! Secret rules as data: the embedded `rules.toml` plus the profile's
//! `[[secrets.rules]]`, compiled once into a [`RuleSet`] with a single
//! keyword prefilter over every rule's keywords.

use super::detect::keywords::Keywords;
use super::{RuleSpec, ScanError};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};

/// The built-in rules, embedded so the binary is self-contained.
pub const BUILTIN_RULES: &str = include_str!("rules.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    known_examples: Vec<String>,
    rule: Vec<RuleDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    id: String,
    description: String,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    nocase_keywords: Vec<String>,
    regex: Option<String>,
    file_name: Option<String>,
    entropy: Option<f64>,
    min_classes: Option<u8>,
    validate: Option<Validate>,
    package_trees: Option<InPackages>,
    /// Vendor words: the rule is `<key naming the vendor> = <value>`, built
    /// from `VENDOR_TEMPLATE` with `value` and checked like the generic
    /// assignment rule (key-name, quoting, doc and entropy filters).
    #[serde(default)]
    context: Vec<String>,
    /// The value's shape, for `context` rules.
    value: Option<String>,
    /// A match may run over many lines (a PEM block, a manifest): the regex
    /// searches from the keyword's line to the end of the file, not just the
    /// keyword's line and the next.
    #[serde(default)]
    multiline: bool,
}

/// `<key that names the vendor> = <value>` in code, YAML, JSON, TOML, INI or
/// a shell/env file. `CTX` is the vendor words, `VAL` the value's shape
/// (case-sensitive); the value may be quoted.
///
/// The key is the whole identifier around the vendor word (`[…]*`, leftmost
/// first, so it starts where the identifier starts): unbounded repetitions
/// keep the lazy DFA small, where `{0,30}` around the word made it build
/// thousands of states per file.
const VENDOR_TEMPLATE: &str = r#"(?i)(?P<key>[A-Za-z0-9_.-]*(?:CTX)[A-Za-z0-9_.-]*)["']?[ \t]*(?::=|=>|=|:)[ \t]*(?P<value>"(?-i:VAL)"|'(?-i:VAL)'|(?-i:VAL))(?:[^A-Za-z0-9_.+/=-]|$)"#;

/// The regex of a `context` rule.
fn vendor_regex(context: &[String], value: &str) -> String {
    let ctx: Vec<String> = context.iter().map(|c| regex::escape(c)).collect();
    VENDOR_TEMPLATE
        .replace("CTX", &ctx.join("|"))
        .replace("VAL", value)
}

/// Where a rule runs inside package-manager trees (see `trees.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InPackages {
    /// Every file.
    Any,
    /// Key files only: not source code, documentation or test fixtures.
    KeyFiles,
}

/// Checks that need code rather than a regex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Validate {
    /// GitHub classic and npm tokens end in a base62 CRC32 of their random part.
    Crc32Base62,
    /// Docker `auth` values are base64 of `user:password`.
    BasicAuthB64,
    /// The generic `key = value` rule: key-name and value-shape filters.
    Assignment,
    /// A vendor's `key = value` (`context` rules): the assignment filters,
    /// except that a UUID is a value (several vendors issue UUID keys).
    Vendor,
    /// A URL with a password: not a documentation host, not `user:user`.
    Url,
    /// A password outside `key = value` (command lines, .pgpass, wp-config):
    /// not a format placeholder, not a word that names what it stands for.
    Password,
}

/// One rule. Its regex is compiled the first time a keyword triggers it:
/// every `airlock run` checks the environment and most launches hit the
/// cache, so compiling ~40 regexes up front would dominate launch time.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub description: String,
    regex_src: Option<String>,
    unicode: bool,
    compiled: std::sync::OnceLock<Option<Compiled>>,
    pub file_name: Option<regex::Regex>,
    pub entropy: Option<f64>,
    pub min_classes: u8,
    pub validate: Option<Validate>,
    /// Inside package-manager trees: None = the rule does not run there.
    pub package_trees: Option<InPackages>,
    /// No keyword: the regex runs on every file (user rules without keywords).
    pub always: bool,
    /// Matches may span lines (see `RuleDef::multiline`).
    pub multiline: bool,
}

/// A rule's regex and the indices of its named groups.
///
/// Two engines for one pattern. `re` has a lazy DFA (per thread, up to 16
/// MiB): fast once warm, but every state is built on first use, in every
/// thread, and a rule that runs on a few small windows in a scan pays for
/// its states and never gets them back (a fifth of a cold scan on the bench
/// corpus, over ~190 rules). `small` has none (backtracker or PikeVM):
/// slower per byte, nothing to build. The matcher searches with `small`
/// until a thread has spent enough bytes on a rule (see
/// `detect::DFA_AFTER`); both engines find the same leftmost-first matches.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The lazy-DFA regex, built the first time it is used.
    pub re: DfaRegex,
    /// The same pattern without a lazy DFA.
    pub small: regex::bytes::Regex,
    /// Index of the capture group named `value`, if any.
    pub value_group: Option<usize>,
    /// Index of the capture group named `key`, if any (assignment rules).
    pub key_group: Option<usize>,
}

/// A rule's regex with a lazy DFA, compiled on first use (most rules never
/// need it in a scan). Derefs to the regex.
#[derive(Debug, Clone)]
pub struct DfaRegex {
    src: String,
    unicode: bool,
    /// The pattern without a DFA: what `re` is if it cannot be built (it
    /// always can: the same pattern compiled once already).
    fallback: regex::bytes::Regex,
    cell: std::sync::OnceLock<regex::bytes::Regex>,
}

impl std::ops::Deref for DfaRegex {
    type Target = regex::bytes::Regex;
    fn deref(&self) -> &regex::bytes::Regex {
        self.cell.get_or_init(|| {
            build(&self.src, self.unicode, DFA_SIZE).unwrap_or_else(|_| self.fallback.clone())
        })
    }
}

/// The lazy DFA's cache per thread: the generic rules' bounded repetitions
/// need many states, and a cache that fills is cleared and rebuilt, which
/// costs more than the search.
const DFA_SIZE: usize = 16 << 20;

/// A cache too small for the lazy DFA's few minimum states: the regex is
/// built without one (regex-automata's meta engine drops a lazy DFA that
/// does not fit and uses its other engines).
const NO_DFA: usize = 1;

fn build(src: &str, unicode: bool, dfa_size: usize) -> Result<regex::bytes::Regex, String> {
    regex::bytes::RegexBuilder::new(src)
        // Built-in rules describe ASCII formats: without Unicode case folding
        // and classes their automata are several times smaller. User rules
        // keep the default.
        .unicode(unicode)
        .size_limit(32 << 20)
        .dfa_size_limit(dfa_size)
        .build()
        .map_err(|e| e.to_string())
}

fn compile(src: &str, unicode: bool) -> Result<Compiled, String> {
    let small = build(src, unicode, NO_DFA)?;
    let group = |name: &str| small.capture_names().position(|n| n == Some(name));
    Ok(Compiled {
        value_group: group("value"),
        key_group: group("key"),
        re: DfaRegex {
            src: src.to_string(),
            unicode,
            fallback: small.clone(),
            cell: std::sync::OnceLock::new(),
        },
        small,
    })
}

impl Rule {
    pub fn has_regex(&self) -> bool {
        self.regex_src.is_some()
    }

    /// The compiled regex (compiled on first use; built-in regexes are tested
    /// to compile, user regexes are compiled when the rule set is made).
    pub fn compiled(&self) -> Option<&Compiled> {
        self.compiled
            .get_or_init(|| {
                self.regex_src
                    .as_deref()
                    .and_then(|s| compile(s, self.unicode).ok())
            })
            .as_ref()
    }
}

/// Every rule, the prefilter over their keywords, and a hash that keys the cache.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    /// Every keyword (built in microseconds: the environment check on every
    /// launch pays for it too).
    pub prefilter: Keywords,
    /// Prefilter pattern index → the rules it triggers.
    pub pattern_rules: Vec<Vec<usize>>,
    /// The prefilter for binary content: keywords of the rules that run
    /// there (fixed-prefix formats), so a `.so` does not pay for `password`.
    pub binary_prefilter: Keywords,
    /// Binary prefilter pattern index → the rules it triggers.
    pub binary_pattern_rules: Vec<Vec<usize>>,
    /// Every rule's `file_name`, in one set: a file's name is matched once.
    pub names: regex::RegexSet,
    /// `names` pattern index → the rule.
    pub name_rules: Vec<usize>,
    /// sha256 of documented example credentials that are never reported.
    pub known_examples: HashSet<[u8; 32]>,
    /// Hex sha256 over the rule sources: changes whenever a rule changes.
    pub hash: String,
}

impl RuleSet {
    /// The built-in rules only.
    pub fn builtin() -> Result<RuleSet, ScanError> {
        RuleSet::new(&[])
    }

    /// The built-in rules, compiled once per process (~30 ms) and shared by the
    /// file scan and the environment check: immutable, so sharing is safe.
    pub fn builtin_shared() -> Result<&'static RuleSet, ScanError> {
        static RULES: std::sync::OnceLock<Result<RuleSet, String>> = std::sync::OnceLock::new();
        RULES
            .get_or_init(|| RuleSet::builtin().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|msg| ScanError::Rule {
                id: "rules.toml".into(),
                msg: msg.clone(),
            })
    }

    /// The built-in rules plus `extra`: shared when there are no extras.
    pub fn with_extra(extra: &[RuleSpec]) -> Result<std::borrow::Cow<'static, RuleSet>, ScanError> {
        if extra.is_empty() {
            RuleSet::builtin_shared().map(std::borrow::Cow::Borrowed)
        } else {
            RuleSet::new(extra).map(std::borrow::Cow::Owned)
        }
    }

    /// The hash `new(extra)` would carry, without parsing or compiling
    /// anything: a relaunch whose files all hit the cache needs no rules.
    pub fn hash_of(extra: &[RuleSpec]) -> String {
        let mut hasher = Sha256::new();
        hasher.update(BUILTIN_RULES.as_bytes());
        hasher.update(matcher_identity());
        for spec in extra {
            hasher.update(serde_json::to_vec(spec).unwrap_or_default());
        }
        hex(&hasher.finalize())
    }

    /// The built-in rules followed by the user's.
    pub fn new(extra: &[RuleSpec]) -> Result<RuleSet, ScanError> {
        let file: RuleFile = toml::from_str(BUILTIN_RULES).map_err(|e| ScanError::Rule {
            id: "rules.toml".into(),
            msg: e.to_string(),
        })?;
        let mut hasher = Sha256::new();
        hasher.update(BUILTIN_RULES.as_bytes());
        hasher.update(matcher_identity());
        let n_builtin = file.rule.len();
        let mut defs = file.rule;
        for spec in extra {
            // serde_json of a plain struct of strings and numbers cannot fail.
            hasher.update(serde_json::to_vec(spec).unwrap_or_default());
            defs.push(RuleDef {
                id: spec.id.clone(),
                description: spec.description.clone(),
                keywords: spec.keywords.clone(),
                nocase_keywords: Vec::new(),
                regex: Some(spec.regex.clone()),
                file_name: None,
                entropy: spec.entropy,
                min_classes: None,
                validate: None,
                // A user's rule is the user's policy: it runs everywhere.
                package_trees: Some(InPackages::Any),
                context: Vec::new(),
                value: None,
                // A user's regex is not audited for line breaks.
                multiline: true,
            });
        }
        let known_examples = file
            .known_examples
            .iter()
            .filter_map(|h| decode_hex32(h))
            .collect();

        let mut rules = Vec::with_capacity(defs.len());
        // Keyword (folded, see `prefilter_key`) → rules; sorted, so the
        // prefilter is the same on every run.
        let mut keywords: BTreeMap<Vec<u8>, Vec<usize>> = BTreeMap::new();
        let mut bin_keywords: BTreeMap<Vec<u8>, Vec<usize>> = BTreeMap::new();
        let mut name_srcs = Vec::new();
        let mut name_rules = Vec::new();
        for (i, mut d) in defs.into_iter().enumerate() {
            let rule_err = |msg: String| ScanError::Rule {
                id: d.id.clone(),
                msg,
            };
            if !d.context.is_empty() {
                let Some(value) = d.value.as_deref() else {
                    return Err(rule_err("`context` needs `value`".into()));
                };
                d.regex = Some(vendor_regex(&d.context, value));
                d.nocase_keywords.extend(d.context.iter().cloned());
                d.validate.get_or_insert(Validate::Vendor);
            }
            if d.regex.is_none() && d.file_name.is_none() {
                return Err(rule_err("needs `regex` or `file_name`".into()));
            }
            let unicode = i >= n_builtin;
            let compiled = std::sync::OnceLock::new();
            if unicode {
                // A user's regex is compiled now, so a mistake is named at load.
                if let Some(src) = d.regex.as_deref() {
                    let c = compile(src, true).map_err(&rule_err)?;
                    let _ = compiled.set(Some(c));
                }
            }
            let file_name = d
                .file_name
                .as_deref()
                .map(regex::Regex::new)
                .transpose()
                .map_err(|e| rule_err(e.to_string()))?;
            if let Some(src) = &d.file_name {
                name_srcs.push(src.clone());
                name_rules.push(i);
            }
            let mut n_keywords = 0;
            let add = |map: &mut BTreeMap<Vec<u8>, Vec<usize>>, k: &str| {
                let rules = map.entry(prefilter_key(k)).or_default();
                if rules.last() != Some(&i) {
                    rules.push(i);
                }
            };
            for k in d.keywords.iter().filter(|k| !k.is_empty()) {
                add(&mut keywords, k);
                n_keywords += 1;
                if d.package_trees.is_some() || unicode {
                    add(&mut bin_keywords, k);
                }
            }
            for k in d.nocase_keywords.iter().filter(|k| !k.is_empty()) {
                add(&mut keywords, k);
                n_keywords += 1;
            }
            rules.push(Rule {
                always: n_keywords == 0 && d.regex.is_some() && file_name.is_none(),
                id: d.id,
                description: d.description,
                regex_src: d.regex,
                unicode,
                compiled,
                file_name,
                entropy: d.entropy,
                min_classes: d.min_classes.unwrap_or(0),
                validate: d.validate,
                package_trees: d.package_trees,
                multiline: d.multiline,
            });
        }
        let mut seen = HashSet::new();
        for r in &rules {
            if !seen.insert(r.id.as_str()) {
                return Err(ScanError::Rule {
                    id: r.id.clone(),
                    msg: "duplicate rule id".into(),
                });
            }
        }
        let (patterns, pattern_rules): (Vec<_>, Vec<_>) = keywords.into_iter().unzip();
        let (bin_patterns, binary_pattern_rules): (Vec<_>, Vec<_>) =
            bin_keywords.into_iter().unzip();
        let prefilter = Keywords::new(&patterns);
        let binary_prefilter = Keywords::new(&bin_patterns);
        let names = regex::RegexSet::new(&name_srcs).map_err(|e| ScanError::Rule {
            id: "file_name".into(),
            msg: e.to_string(),
        })?;
        let hash = hex(&hasher.finalize());
        Ok(RuleSet {
            rules,
            prefilter,
            pattern_rules,
            binary_prefilter,
            binary_pattern_rules,
            names,
            name_rules,
            known_examples,
            hash,
        })
    }

    /// Rule by id.
    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }
}

/// The filters in `detect.rs` decide findings as much as the rules do, so the
/// cache key covers the code too: the version, and the executable's size and
/// mtime (a rebuilt binary starts from an empty cache).
fn matcher_identity() -> Vec<u8> {
    use std::os::unix::fs::MetadataExt;
    let mut id = env!("CARGO_PKG_VERSION").as_bytes().to_vec();
    if let Ok(m) = std::env::current_exe().and_then(std::fs::metadata) {
        id.extend_from_slice(&m.size().to_le_bytes());
        id.extend_from_slice(&m.mtime().to_le_bytes());
        id.extend_from_slice(&m.mtime_nsec().to_le_bytes());
    }
    id
}

/// Keywords longer than this are cut: the prefilter only has to say which
/// rules might match (the regex decides).
const MAX_KEYWORD: usize = 10;

/// A keyword as the prefilter holds it: ASCII lower case (the prefilter is
/// ASCII case-insensitive, so `password` also triggers on `PASSWORD` and
/// `Password`) and at most `MAX_KEYWORD` bytes. Over-triggering costs a regex
/// run, never a finding.
fn prefilter_key(k: &str) -> Vec<u8> {
    let mut b = k.as_bytes().to_ascii_lowercase();
    b.truncate(MAX_KEYWORD);
    b
}

pub use crate::units::hex;

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks(2).enumerate() {
        let d = |c: u8| (c as char).to_digit(16);
        out[i] = u8::try_from(d(pair[0])? * 16 + d(pair[1])?).ok()?;
    }
    Some(out)
}

/// The rule set, built the first time a file misses the cache.
pub struct LazyRules<'a> {
    extra: &'a [RuleSpec],
    cell: std::sync::OnceLock<Result<std::borrow::Cow<'static, RuleSet>, String>>,
    pub hash: String,
}

impl<'a> LazyRules<'a> {
    pub fn new(extra: &'a [RuleSpec]) -> Result<LazyRules<'a>, ScanError> {
        // User rules are compiled now, so a broken one is named before the walk.
        let cell = std::sync::OnceLock::new();
        if !extra.is_empty() {
            let _ = cell.set(Ok(std::borrow::Cow::Owned(RuleSet::new(extra)?)));
        }
        Ok(LazyRules {
            extra,
            cell,
            hash: RuleSet::hash_of(extra),
        })
    }

    pub fn get(&self) -> Result<&RuleSet, ScanError> {
        self.cell
            .get_or_init(|| RuleSet::with_extra(self.extra).map_err(|e| e.to_string()))
            .as_ref()
            .map(|c| c.as_ref())
            .map_err(|msg| ScanError::Rule {
                id: "rules.toml".into(),
                msg: msg.clone(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_compile_and_have_descriptions() {
        let rs = RuleSet::builtin().expect("built-in rules compile");
        assert!(rs.rules.len() >= 30);
        for r in &rs.rules {
            assert!(!r.description.is_empty(), "{}", r.id);
            assert!(
                r.file_name.is_some()
                    || r.always
                    || rs
                        .pattern_rules
                        .iter()
                        .flatten()
                        .any(|&i| i == idx(&rs, &r.id)),
                "{} has no keyword",
                r.id
            );
        }
        assert_eq!(rs.known_examples.len(), 4);
    }

    fn idx(rs: &RuleSet, id: &str) -> usize {
        rs.rules
            .iter()
            .position(|r| r.id == id)
            .unwrap_or(usize::MAX)
    }

    #[test]
    fn user_rules_are_appended_and_change_the_hash() {
        let base = RuleSet::builtin().expect("compile");
        let spec = RuleSpec {
            id: "acme-token".into(),
            description: "ACME internal token".into(),
            regex: r"\b(acme_[a-z0-9]{20})\b".into(),
            keywords: vec!["acme_".into()],
            entropy: Some(3.0),
        };
        let rs = RuleSet::new(std::slice::from_ref(&spec)).expect("compile");
        assert!(rs.get("acme-token").is_some());
        assert_ne!(base.hash, rs.hash);
    }

    #[test]
    fn every_builtin_regex_compiles() {
        let rs = RuleSet::builtin().expect("rules");
        for r in &rs.rules {
            if r.has_regex() {
                assert!(
                    r.compiled().is_some(),
                    "built-in rule {} does not compile",
                    r.id
                );
            }
        }
    }

    #[test]
    fn bad_user_regex_names_the_rule() {
        let spec = RuleSpec {
            id: "broken".into(),
            description: "d".into(),
            regex: "(unclosed".into(),
            keywords: vec![],
            entropy: None,
        };
        let err = RuleSet::new(&[spec]).expect_err("must fail");
        assert!(err.to_string().contains("broken"));
    }

    #[test]
    fn prefilter_keywords_are_folded_and_cut() {
        assert_eq!(prefilter_key("Password"), b"password");
        assert_eq!(prefilter_key("pypi-AgEIcHlwaS5vcmc"), b"pypi-ageic");
        let rs = RuleSet::builtin().expect("rules");
        let hits = |hay: &[u8]| {
            let mut out: HashSet<usize> = HashSet::new();
            rs.prefilter
                .for_each(hay, |_, p| out.extend(&rs.pattern_rules[p]));
            out
        };
        let generic = idx(&rs, "generic-secret-assignment");
        for spelling in ["PASSWORD", "Password", "password", "pAsSwOrD"] {
            assert!(hits(spelling.as_bytes()).contains(&generic), "{spelling}");
        }
    }
}
