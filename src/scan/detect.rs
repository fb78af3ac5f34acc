//! The matcher: prefilter, regex, then the filters that keep false positives
//! out (placeholders, documented examples, entropy, checksums, blobs).
//!
//! Nothing here allocates per file: a thread owns one [`Scratch`] and reuses
//! it; only an accepted finding allocates (its redacted prefix).

pub mod keywords;

use super::rules::{Compiled, InPackages, Rule, RuleSet, Validate};
use regex::bytes::CaptureLocations;
use sha2::{Digest, Sha256};
use std::ops::Range;

/// What the matcher needs to know about the file besides its bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileContext<'a> {
    /// The file name (last path component).
    pub name: &'a str,
    /// Inside a package-manager tree (a virtualenv, `node_modules`, the cargo
    /// registry, …): only the rules marked `package_trees` run.
    pub package_tree: bool,
    /// In a package's test or fixture directory.
    pub fixture: bool,
    /// Binary content (NUL bytes): only the fixed-prefix formats are looked
    /// for, byte by byte.
    pub binary: bool,
}

impl<'a> FileContext<'a> {
    /// A file in a workspace, known by its name.
    pub fn named(name: &'a str) -> FileContext<'a> {
        FileContext {
            name,
            ..FileContext::default()
        }
    }

    /// Does `rule` run on this file?
    fn runs(&self, rule: &Rule) -> bool {
        if self.package_tree {
            return match rule.package_trees {
                None => false,
                Some(InPackages::Any) => true,
                Some(InPackages::KeyFiles) => {
                    !(self.fixture || self.binary || self.is_code() || self.is_doc())
                }
            };
        }
        // In a binary (a SQLite database, a .pyc, a core dump) the formats
        // that carry their own prefix or checksum are still unambiguous.
        !self.binary || rule.package_trees.is_some()
    }

    /// Prose documentation (README, docs): its `key = value` lines are
    /// examples. Token formats are still looked for there.
    fn is_prose(&self) -> bool {
        self.name.rsplit_once('.').is_some_and(|(_, ext)| {
            matches!(
                ext.to_ascii_lowercase().as_str(),
                "md" | "rst" | "adoc" | "tex"
            )
        })
    }

    /// `.env.example`, `config.sample.yml`, botocore's `examples-1.json`:
    /// files that say they hold examples (the default mask patterns exempt
    /// `.env.example` for the same reason).
    fn is_example(&self) -> bool {
        contains_nocase(self.name, "example") || contains_nocase(self.name, "sample")
    }

    /// Documentation and notebooks: examples, not configuration.
    fn is_doc(&self) -> bool {
        const DOC: &[&str] = &[
            "md", "rst", "txt", "html", "htm", "ipynb", "adoc", "tex", "pyi", "pyx", "pxd", "in",
        ];
        self.name
            .rsplit_once('.')
            .is_some_and(|(_, ext)| DOC.iter().any(|c| ext.eq_ignore_ascii_case(c)))
    }

    /// Source code: an unquoted `token = x` there is a variable, not a literal.
    fn is_code(&self) -> bool {
        const CODE: &[&str] = &[
            "py", "js", "mjs", "cjs", "ts", "tsx", "jsx", "go", "rs", "java", "kt", "kts", "rb",
            "php", "cs", "swift", "c", "cc", "cpp", "h", "hpp", "scala", "dart", "lua", "ex",
            "exs", "vue", "svelte", "m", "groovy", "r", "jl", "pl",
        ];
        self.name
            .rsplit_once('.')
            .is_some_and(|(_, ext)| CODE.iter().any(|c| ext.eq_ignore_ascii_case(c)))
    }

    /// `.env`, `.env.local`, `prod.env`: `KEY=value` lines whose values are
    /// literals, never expressions.
    fn is_env_file(&self) -> bool {
        self.name.starts_with(".env") || self.name.ends_with(".env")
    }

    /// Minified bundles and source maps: one huge line of identifiers and
    /// strings where `token:"..."` means nothing. Only the generic rule skips them.
    fn is_minified(&self) -> bool {
        let n = self.name;
        n.ends_with(".min.js") || n.ends_with(".min.css") || n.ends_with(".map")
    }
}

/// `needle` (ASCII lower case) in `hay`, ASCII case-insensitively, without
/// allocating.
fn contains_nocase(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// A finding inside one file: rule index, 1-based line (0 = the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub rule: usize,
    pub line: usize,
    pub redacted: String,
}

/// Per-thread buffers reused across files.
#[derive(Debug)]
pub struct Scratch {
    triggered: Vec<bool>,
    /// Per rule: where its keywords start in this file, ascending.
    at: Vec<Vec<usize>>,
    /// Rules triggered in this file (to reset `triggered` and `at`).
    touched: Vec<usize>,
    /// The byte ranges one rule's regex searches.
    windows: Vec<Range<usize>>,
    locs: Vec<Option<CaptureLocations>>,
    spans: Vec<Range<usize>>,
    /// Per rule: its `file_name` matches this file's name.
    named: Vec<bool>,
    /// Rules whose `named` is set (to reset it).
    named_touched: Vec<usize>,
    /// Per rule: bytes this thread searched without the lazy DFA (see
    /// `DFA_AFTER`).
    spent: Vec<usize>,
}

impl Scratch {
    pub fn new(rules: &RuleSet) -> Scratch {
        Scratch {
            triggered: vec![false; rules.rules.len()],
            at: vec![Vec::new(); rules.rules.len()],
            touched: Vec::new(),
            windows: Vec::new(),
            locs: vec![None; rules.rules.len()],
            spans: Vec::new(),
            named: vec![false; rules.rules.len()],
            named_touched: Vec::new(),
            spent: vec![0; rules.rules.len()],
        }
    }
}

/// Where a rule's regex looks: the line of each keyword and the line after
/// (a `key:` whose value wraps), merged; for a multi-line rule from the first
/// keyword's line to the end. A regex over the whole file costs far more than
/// the keyword scan on code that says `token` once in a while.
fn windows(hay: &[u8], at: &[usize], multiline: bool, out: &mut Vec<Range<usize>>) {
    out.clear();
    let line_start = |p: usize| {
        hay[..p]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1)
    };
    let line_end = |p: usize| {
        hay[p.min(hay.len())..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(hay.len(), |i| p + i + 1)
    };
    if multiline {
        if let Some(&first) = at.first() {
            out.push(line_start(first)..hay.len());
        }
        return;
    }
    for &p in at {
        if out.last().is_some_and(|w| p < w.end) {
            // Same window: extend to the line after this keyword's line.
            let end = line_end(line_end(p));
            if let Some(w) = out.last_mut() {
                w.end = w.end.max(end);
            }
            continue;
        }
        out.push(line_start(p)..line_end(line_end(p)));
    }
}

/// Bytes a thread searches with a rule's DFA-less engine before it builds
/// the rule's lazy DFA (`Compiled`). Most rules run on a few lines in a scan,
/// where the states a lazy DFA builds on first use cost more than the whole
/// search without it; a rule that keeps running (the generic assignment
/// rule, URLs with passwords) pays for the DFA within a few hundred KiB
/// (32 KiB to 1 MiB measured within noise of each other on the bench corpus).
const DFA_AFTER: usize = 128 << 10;

/// A window longer than this (a minified line, a multi-line rule's rest of
/// the file) is searched with the lazy DFA at once: the engines without one
/// are several times slower per byte.
const DFA_WINDOW: usize = 16 << 10;

/// Lines longer than this are treated as generated (minified, inlined data)
/// by the generic assignment rule.
const MAX_GENERIC_LINE: usize = 1000;

/// Findings reported per file. The launcher masks a file whole, so more say
/// nothing new, and a fixture with thousands of keys must not cost O(n²).
pub const MAX_HITS_PER_FILE: usize = 100;

impl RuleSet {
    /// Findings that come from the file name alone (keystores). Run before the
    /// binary sniff: a `.p12` file is binary.
    pub fn name_hits(&self, name: &str, out: &mut Vec<Hit>) {
        // One pass over the name for every rule's `file_name` (most names
        // match none).
        if !self.names.is_match(name) {
            return;
        }
        // `prod.example.env`, `test.sample.p12`: examples, by their own name.
        if ["example", "sample", "template"]
            .iter()
            .any(|w| contains_nocase(name, w))
        {
            return;
        }
        for m in self.names.matches(name).iter() {
            let i = self.name_rules[m];
            if !self.rules[i].has_regex() {
                out.push(Hit {
                    rule: i,
                    line: 0,
                    redacted: String::new(),
                });
            }
        }
    }

    /// Scan one file's content, appending findings to `out`.
    pub fn scan(&self, ctx: &FileContext, hay: &[u8], s: &mut Scratch, out: &mut Vec<Hit>) {
        // One pass of the keyword prefilter decides which regexes run at
        // all, and where.
        for r in s.touched.drain(..) {
            s.triggered[r] = false;
            s.at[r].clear();
        }
        let (prefilter, pattern_rules) = if ctx.binary {
            (&self.binary_prefilter, &self.binary_pattern_rules)
        } else {
            (&self.prefilter, &self.pattern_rules)
        };
        prefilter.for_each(hay, |start, p| {
            for &r in &pattern_rules[p] {
                if !s.triggered[r] {
                    s.triggered[r] = true;
                    s.touched.push(r);
                }
                if s.at[r].last().map_or(true, |&p| p < start) {
                    s.at[r].push(start);
                }
            }
        });
        let any = !s.touched.is_empty();
        // Rules tied to a file name (`.pgpass`, a bare `token` file) run on
        // such files whatever keywords they hold. The name is matched once,
        // against every rule's `file_name` together.
        for r in s.named_touched.drain(..) {
            s.named[r] = false;
        }
        if self.names.is_match(ctx.name) {
            for m in self.names.matches(ctx.name).iter() {
                let r = self.name_rules[m];
                s.named[r] = true;
                s.named_touched.push(r);
            }
        }
        let by_name = |named: &[bool], i: usize| named[i] && self.rules[i].has_regex();
        if !any
            && !self.rules.iter().any(|r| r.always)
            && !s.named_touched.iter().any(|&i| by_name(&s.named, i))
        {
            return;
        }
        s.spans.clear();
        let first = out.len();
        // Every match of an assignment rule is refused in a minified bundle,
        // in prose and in an example file (see `accept`): not searched at
        // all. In code, an unquoted value is an expression (`assignment_ok`):
        // a match with no quote is refused before its groups are resolved.
        let skip_assignments = ctx.is_minified() || ctx.is_prose() || ctx.is_example();
        let code = ctx.is_code();
        for (i, rule) in self.rules.iter().enumerate() {
            if !(s.triggered[i] || rule.always || by_name(&s.named, i)) || !ctx.runs(rule) {
                continue;
            }
            let assignment = is_assignment(rule);
            if (rule.file_name.is_some() && !s.named[i]) || (assignment && skip_assignments) {
                continue;
            }
            let Some(c) = rule.compiled() else {
                continue;
            };
            let locs = s.locs[i].get_or_insert_with(|| c.small.capture_locations());
            // Triggered by its name or always on: the whole file.
            if s.triggered[i] {
                windows(hay, &s.at[i], rule.multiline, &mut s.windows);
            } else {
                s.windows.clear();
                s.windows.push(0..hay.len());
            }
            let mut at = 0;
            let mut lines = LineCounter::default();
            let mut w = 0;
            while w < s.windows.len() && out.len() - first < MAX_HITS_PER_FILE {
                let window = s.windows[w].clone();
                at = at.max(window.start);
                if at > window.end {
                    w += 1;
                    continue;
                }
                // Find the match first (with the lazy DFA once this thread
                // has searched enough with this rule, see `DFA_AFTER`), then
                // resolve groups on the match alone: asking for captures
                // over the whole file makes the regex engine backtrack (and
                // clear its visited set) across everything after `at`, once
                // per candidate. The
                // window ends after a newline (or at the end of the file),
                // so the rules' boundaries see what they would in the file.
                let span = window.end - at;
                let found = if s.spent[i] >= DFA_AFTER || span > DFA_WINDOW {
                    c.re.find_at(&hay[..window.end], at)
                } else {
                    s.spent[i] += span;
                    c.small.find_at(&hay[..window.end], at)
                };
                let Some(whole) = found else {
                    w += 1;
                    continue;
                };
                if assignment && code && !whole.as_bytes().iter().any(|&b| b == b'"' || b == b'\'')
                {
                    // Refused whatever its groups. Its value ends where the
                    // match does (the generic rule), or one boundary byte
                    // before (vendor rules), and no match can start at that
                    // byte: resuming here finds what resuming there would.
                    at = if whole.end() > at {
                        whole.end()
                    } else {
                        at + 1
                    };
                    continue;
                }
                let grouped = locs.len() > 1
                    && c.small
                        .captures_read_at(locs, &hay[..whole.end()], whole.start())
                        .is_some();
                let secret = if grouped {
                    secret_span(c, locs).unwrap_or(whole.range())
                } else {
                    whole.range()
                };
                // Resume at the end of the secret, not the match: rules consume
                // a boundary character that may start the next candidate.
                at = if secret.end > at { secret.end } else { at + 1 };
                if s.spans.iter().any(|sp| overlaps(sp, &secret)) {
                    continue;
                }
                let key = c
                    .key_group
                    .filter(|_| grouped)
                    .and_then(|g| locs.get(g))
                    .map(|(a, b)| a..b);
                if self.accept(rule, ctx, hay, &whole.range(), secret.clone(), key) {
                    out.push(Hit {
                        rule: i,
                        line: lines.line_of(hay, secret.start),
                        redacted: redact(strip_quotes(&hay[secret.clone()])),
                    });
                    s.spans.push(secret);
                }
            }
        }
    }

    fn accept(
        &self,
        rule: &Rule,
        ctx: &FileContext,
        hay: &[u8],
        whole: &Range<usize>,
        secret: Range<usize>,
        key: Option<Range<usize>>,
    ) -> bool {
        let mut value = &hay[secret.clone()];
        if rule.validate == Some(Validate::Url) && !url_ok(&hay[whole.clone()], value) {
            return false;
        }
        if is_assignment(rule) {
            let after = hay.get(secret.end).copied();
            let before_key = key
                .as_ref()
                .and_then(|k| k.start.checked_sub(1))
                .map(|i| hay[i]);
            // `?token=abc&...`: a URL query parameter (badges, examples);
            // credential URLs have their own rules.
            if matches!(before_key, Some(b'?' | b'&')) {
                return false;
            }
            // README and docs examples (docstrings are checked last: costly).
            if ctx.is_prose() || ctx.is_example() {
                return false;
            }
            let key = key.map_or(&b""[..], |k| &hay[k]);
            let vendor = rule.validate == Some(Validate::Vendor);
            if !assignment_ok(ctx, key, value, after, vendor)
                || line_len(hay, &secret) > MAX_GENERIC_LINE
            {
                return false;
            }
            value = strip_quotes(value);
        }
        if value.is_empty() || is_placeholder(value) || embedded_in_blob(hay, &secret) {
            return false;
        }
        if let Some(min) = rule.entropy {
            if shannon_entropy(value) < min {
                return false;
            }
        }
        if char_classes(value) < rule.min_classes {
            return false;
        }
        match rule.validate {
            Some(Validate::Password) if !password_ok(value) => return false,
            Some(Validate::Crc32Base62) if !crc32_base62_ok(value) => return false,
            Some(Validate::BasicAuthB64) if !is_basic_auth_b64(value) => return false,
            _ => {}
        }
        let digest: [u8; 32] = Sha256::digest(value).into();
        if self.known_examples.contains(&digest) {
            return false;
        }
        // Docstrings and doctests in code: an example, not configuration.
        // Last, because it looks back over the file.
        !(is_assignment(rule) && ctx.is_code() && in_doc_example(ctx, hay, secret.start))
    }
}

/// The generic rule and the vendor `key = value` rules share one filter.
fn is_assignment(rule: &Rule) -> bool {
    matches!(rule.validate, Some(Validate::Assignment | Validate::Vendor))
}

fn secret_span(c: &Compiled, locs: &CaptureLocations) -> Option<Range<usize>> {
    if let Some((a, b)) = c.value_group.and_then(|g| locs.get(g)) {
        return Some(a..b);
    }
    (1..locs.len())
        .filter(|g| Some(*g) != c.key_group)
        .find_map(|g| locs.get(g))
        .map(|(a, b)| a..b)
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// 1-based line numbers for increasing offsets, counting each byte once.
#[derive(Default)]
struct LineCounter {
    offset: usize,
    newlines: usize,
}

impl LineCounter {
    fn line_of(&mut self, hay: &[u8], at: usize) -> usize {
        if at < self.offset {
            *self = LineCounter::default();
        }
        self.newlines += hay[self.offset..at].iter().filter(|&&b| b == b'\n').count();
        self.offset = at;
        self.newlines + 1
    }
}

fn line_len(hay: &[u8], span: &Range<usize>) -> usize {
    let start = hay[..span.start]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let end = hay[span.end..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(hay.len(), |p| span.end + p);
    end - start
}

/// At most the first 4 characters (fewer for short values, so a short password
/// is never shown whole), then `…`.
pub fn redact(value: &[u8]) -> String {
    let n = (value.len() / 4).min(4);
    let mut s: String = String::from_utf8_lossy(&value[..value.len().min(16)])
        .chars()
        .take(n)
        .collect();
    s.push('…');
    s
}

fn strip_quotes(v: &[u8]) -> &[u8] {
    match v {
        [q @ (b'"' | b'\''), inner @ .., last] if last == q => inner,
        _ => v,
    }
}

/// Shannon entropy in bits per byte.
pub fn shannon_entropy(v: &[u8]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in v {
        counts[usize::from(b)] += 1;
    }
    let n = v.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// How many of {lowercase, uppercase, digit} occur.
fn char_classes(v: &[u8]) -> u8 {
    let lower = v.iter().any(u8::is_ascii_lowercase);
    let upper = v.iter().any(u8::is_ascii_uppercase);
    let digit = v.iter().any(u8::is_ascii_digit);
    u8::from(lower) + u8::from(upper) + u8::from(digit)
}

/// Placeholders, templates and references to a secret kept elsewhere.
pub fn is_placeholder(v: &[u8]) -> bool {
    const CONTAINS: &[&str] = &[
        "example",
        "xxxx",
        "your",
        "placeholder",
        "changeme",
        "change_me",
        "change-me",
        "dummy",
        "redacted",
        "replace",
        "insert",
        "sample",
        "****",
        "....",
        "${",
        "{{",
        "}}",
        "$(",
        "%(",
        "<",
        ">",
        "process.env",
        "environ",
        "getenv",
    ];
    const EXACT: &[&str] = &[
        "password",
        "passwd",
        "pass",
        "secret",
        "pwd",
        "admin",
        "root",
        "test",
        "user",
        "none",
        "null",
        "nil",
        "true",
        "false",
        "token",
        "mysecret",
        "mypassword",
        "password123",
        "hunter2",
    ];
    let Ok(s) = std::str::from_utf8(v) else {
        return false;
    };
    let lower = s.to_ascii_lowercase();
    // `$VAR`, `%s`, `%(name)s`; but `%2B…` is a percent-encoded value.
    let percent_encoded = v
        .get(1..3)
        .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
    if s.starts_with('$') || (s.starts_with('%') && !percent_encoded) {
        return true;
    }
    if CONTAINS.iter().any(|p| lower.contains(p)) || EXACT.contains(&lower.as_str()) {
        return true;
    }
    // A run of one character: 0000000000, aaaaaaaa.
    let mut run = 1;
    for w in v.windows(2) {
        run = if w[0] == w[1] { run + 1 } else { 1 };
        if run >= 8 {
            return true;
        }
    }
    false
}

/// A match that is a slice of a much longer base64 run (an inlined image,
/// font, wasm blob) is chance, not a credential.
fn embedded_in_blob(hay: &[u8], span: &Range<usize>) -> bool {
    const LIMIT: usize = 48;
    let b64 = |b: &&u8| b.is_ascii_alphanumeric() || matches!(**b, b'+' | b'/' | b'=');
    let left = hay[..span.start]
        .iter()
        .rev()
        .take(LIMIT + 1)
        .take_while(b64)
        .count();
    let right = hay[span.end..]
        .iter()
        .take(LIMIT + 1)
        .take_while(b64)
        .count();
    left > LIMIT || right > LIMIT
}

/// The generic `key = value` rule: the key must name a credential (not its
/// hash, id, URL or length) and the value must look like a literal secret.
fn assignment_ok(
    ctx: &FileContext,
    key: &[u8],
    raw: &[u8],
    after: Option<u8>,
    vendor: bool,
) -> bool {
    const KEY_NOT_SECRET: &[&str] = &[
        "hash",
        "sha",
        "checksum",
        "digest",
        "integrity",
        "fingerprint",
        "public",
        "pubkey",
        "tokenizer",
        "csrf",
        "xsrf",
        // Pagination and idempotency tokens (AWS `NextToken`, botocore
        // paginators' `output_token`): opaque cursors, not credentials.
        "nexttoken",
        "next_token",
        "continuationtoken",
        "continuation_token",
        "pagetoken",
        "page_token",
        "pagination",
        "output_token",
        "input_token",
        "synctoken",
        "sync_token",
        "clienttoken",
        "idempoten",
        "cursor",
        "marker",
        "etag",
        "md5",
        // Header names: `Access-Control-Allow-Credentials`, `withCredentials`.
        "allow-credentials",
        "allow_credentials",
        "allowcredentials",
        "withcredentials",
        "lastused",
        "last_used",
    ];
    const KEY_SUFFIX_NOT_SECRET: &[&str] = &[
        "name",
        "type",
        "url",
        "uri",
        "path",
        "file",
        "dir",
        "endpoint",
        "env",
        "var",
        "field",
        "header",
        "prefix",
        "suffix",
        "len",
        "length",
        "count",
        "size",
        "ttl",
        "expiry",
        "expires",
        "expiration",
        "id",
        "ids",
        "limit",
        "max",
        "min",
        "mode",
        "format",
        "kind",
        "label",
        "template",
        "policy",
        "provider",
        "method",
        "version",
        "timeout",
        "ref",
        "source",
        "location",
        "store",
        "algorithm",
        "encoding",
        "scope",
        "scopes",
        "param",
        "key_id",
        "keyid",
        "usage",
        "rotation",
        "hint",
        "regex",
        "pattern",
        "tokens",
        "encryption",
        "authentication",
        "validator",
        "handler",
        "class",
        "date",
        "time",
        "timestamp",
        "_at",
    ];
    let key = String::from_utf8_lossy(key).to_ascii_lowercase();
    let key = key.trim_matches(|c: char| c == '"' || c == '\'' || c == '-' || c == '_');
    if KEY_NOT_SECRET.iter().any(|k| key.contains(k))
        || KEY_SUFFIX_NOT_SECRET.iter().any(|k| key.ends_with(k))
    {
        return false;
    }
    let quoted = matches!(raw.first(), Some(b'"' | b'\''));
    let value = strip_quotes(raw);
    if !quoted {
        // `token = get_token()` and `token: self.token` in code are expressions.
        if ctx.is_code() {
            return false;
        }
        if !matches!(
            after,
            None | Some(b' ' | b'\t' | b'\r' | b'\n' | b',' | b';' | b'#' | b'}' | b']')
        ) {
            return false;
        }
        // In an env file a bare value is a literal, and a vendor's value
        // shape (`M….….…`) is not `some.attribute`.
        if looks_like_identifier(value) && !(vendor || ctx.is_env_file()) {
            return false;
        }
    }
    let Ok(v) = std::str::from_utf8(value) else {
        return false;
    };
    // `_authToken=MYTOKEN1`, `password: "db-password-1"`: the value names
    // what it stands for.
    let lower = v.to_ascii_lowercase();
    if ["token", "passw", "secret", "apikey", "api_key"]
        .iter()
        .any(|w| lower.contains(w))
    {
        return false;
    }
    // `"eyJ2IjoiMSIs..."`: a truncated example; `eyJ…` without dots is
    // base64 of a JSON object (an AWS pagination token), not a credential;
    // a timestamp; a hex digest on a line that says it is one.
    if v.contains("...")
        || v.contains('\u{2026}')
        || (v.starts_with("eyJ") && !v.contains('.'))
        || is_timestamp(v)
        || is_header_name(v)
        || is_constant_name(v)
    {
        return false;
    }
    // `"challengePassword"`, `"_RSAPrivateKey"`, `scmVersion=`: a name or a
    // type annotation, not a secret.
    let alpha_name = looks_like_name(v.trim_end_matches('='));
    // (A vendor's base64 secret may start with `/`: its shape was matched.)
    if (v.starts_with('/') && !vendor)
        || v.starts_with(['~', '.', '@', '!', '*', '&', '{', '[', '(', ':'])
        || alpha_name
        || v.contains("::")
        || v.contains("://")
        || v.contains(['(', ')', '[', ']'])
        || (is_uuid(v) && !vendor)
        || is_integrity(v)
    {
        return false;
    }
    // A UUID's 32 hex digits need not reach the entropy floor by chance.
    looks_random(value) || (vendor && is_uuid(v))
}

/// A password found by its position (`-p…`, `.pgpass`'s fifth field,
/// `define('DB_PASSWORD', …)`): not `{pw}` or `%s`, not a word that names
/// what it stands for (`SECRET`, `mypassword`).
fn password_ok(v: &[u8]) -> bool {
    let v = v.strip_suffix(b",").unwrap_or(v);
    let Ok(s) = std::str::from_utf8(v) else {
        return false;
    };
    let lower = s.to_ascii_lowercase();
    let template = (s.starts_with('{') && s.contains('}')) || s.starts_with('%');
    let names_itself = ["secret", "passw", "token", "pwd"]
        .iter()
        .any(|w| lower.contains(w));
    v.len() >= 4 && !template && !names_itself
}

/// `2016-09-08T21:47:36Z`, `2024-01-01`.
fn is_timestamp(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
}

/// `Access-Control-Allow-Credentials`, `X-Api-Key`: HTTP header names
/// (every dash-separated word capitalised). Diceware passphrases are lower case.
fn is_header_name(v: &str) -> bool {
    v.contains('-')
        && v.split('-').all(|w| {
            let b = w.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_uppercase()
                && b.iter().all(u8::is_ascii_alphabetic)
                && (b[1..].iter().all(u8::is_ascii_lowercase)
                    || b.iter().all(u8::is_ascii_uppercase))
        })
}

/// `OPENAI_KEY_V2`, `AWS_SECRET_2`: an UPPER_SNAKE constant or variable name
/// with digits (names without digits are caught by `looks_like_name`).
fn is_constant_name(v: &str) -> bool {
    let b = v.as_bytes();
    b.first().is_some_and(u8::is_ascii_uppercase)
        && v.contains('_')
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
        && v.split('_')
            .all(|w| w.len() >= 2 || w.bytes().all(|c| c.is_ascii_digit()))
}

/// Inside documentation of code: a Python docstring (an odd number of
/// triple quotes before it), a doctest line, a Rust doc comment, a JSDoc
/// line. Plain `#`/`//` comments are not documentation: a commented-out
/// credential is still a credential.
fn in_doc_example(ctx: &FileContext, hay: &[u8], at: usize) -> bool {
    let line_start = hay[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let line = &hay[line_start..at];
    let trimmed = match line.iter().position(|b| !b.is_ascii_whitespace()) {
        Some(i) => &line[i..],
        None => &[][..],
    };
    if [&b">>> "[..], b"... ", b"///", b"//!", b"#>", b"* "]
        .iter()
        .any(|p| trimmed.starts_with(p))
    {
        return true;
    }
    let py = ctx
        .name
        .rsplit_once('.')
        .is_some_and(|(_, e)| matches!(e, "py" | "pyi" | "pyx"));
    if py {
        let before = &hay[..line_start];
        let count = |q: &[u8]| before.windows(3).filter(|w| *w == q).count();
        return count(b"\"\"\"") % 2 == 1 || count(b"'''") % 2 == 1;
    }
    false
}

/// `some.attribute`, `SOME_CONSTANT`, `camelCase`: names, not secrets.
fn looks_like_identifier(v: &[u8]) -> bool {
    let ident = |s: &[u8]| {
        !s.is_empty()
            && (s[0].is_ascii_alphabetic() || s[0] == b'_')
            && s.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
    };
    let no_digits = !v.iter().any(u8::is_ascii_digit);
    (v.contains(&b'.') && v.split(|b| *b == b'.').all(ident)) || (no_digits && ident(v))
}

/// Letters and `_` only, made of words: `snake_case`, `camelCase`,
/// `PascalCase`, `UPPER_CASE`, where every camel-case word is a short acronym
/// or has 3+ letters and a vowel (`RSA`, `Private`, `Key`). Random letters
/// (`bNekIDPqIQQs…`) break into short or vowel-less pieces.
fn looks_like_name(v: &str) -> bool {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_') {
        return false;
    }
    v.split('_').filter(|s| !s.is_empty()).all(|seg| {
        if seg.bytes().all(|b| b.is_ascii_uppercase()) {
            return true;
        }
        // Split before each uppercase letter that follows a lowercase one,
        // and before the last capital of an acronym run ("RSAPrivate").
        let b = seg.as_bytes();
        let mut words = Vec::with_capacity(4);
        let mut start = 0;
        for i in 1..b.len() {
            let boundary = (b[i].is_ascii_uppercase() && b[i - 1].is_ascii_lowercase())
                || (b[i].is_ascii_uppercase()
                    && b[i - 1].is_ascii_uppercase()
                    && b.get(i + 1).is_some_and(u8::is_ascii_lowercase));
            if boundary {
                words.push(&b[start..i]);
                start = i;
            }
        }
        words.push(&b[start..]);
        let vowel = |w: &[u8]| w.iter().any(|c| b"aeiouAEIOU".contains(c));
        let acronym = |w: &[u8]| w.len() <= 5 && w.iter().all(u8::is_ascii_uppercase);
        // Words of 4+ letters on average: random case flips far more often.
        words.len() * 4 <= b.len()
            && words
                .iter()
                .enumerate()
                .all(|(i, w)| acronym(w) || (w.len() >= 3 && vowel(w)) || (i == 0 && w.len() < 5))
    })
}

/// Per-charset entropy floor (bits/char). Short values cannot reach the
/// charset's ceiling, so the floor scales with log2(len).
fn looks_random(v: &[u8]) -> bool {
    let is_hex = v.iter().all(u8::is_ascii_hexdigit);
    let (floor, min_len): (f64, usize) = if is_hex { (3.0, 16) } else { (3.5, 8) };
    if v.len() < min_len {
        return false;
    }
    if !is_hex && char_classes(v) < 2 {
        return false;
    }
    let scaled = 0.85 * (v.len() as f64).log2();
    shannon_entropy(v) >= floor.min(scaled)
}

/// `scheme://user:password@host`: not a documentation host (RFC 2606 / 6761
/// reserved names), and not `user:user`.
fn url_ok(url: &[u8], password: &[u8]) -> bool {
    let url = String::from_utf8_lossy(url).to_ascii_lowercase();
    let Some((userinfo, host)) = url
        .split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
    else {
        return false;
    };
    let host = host.split([':', '/']).next().unwrap_or("");
    let reserved = ["example.com", "example.org", "example.net"]
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
        || [".example", ".test", ".invalid"]
            .iter()
            .any(|t| host.ends_with(t));
    let user = userinfo.split(':').next().unwrap_or("");
    let pw = String::from_utf8_lossy(password).to_ascii_lowercase();
    // `a%20secret`, `mypassword`: the value names what it stands for (docs);
    // `123,foo:bar`: a multi-host URL's port list, not a password.
    let names_itself = ["secret", "passw", "token", "%20"]
        .iter()
        .any(|w| pw.contains(w));
    let port_list = pw
        .split_once(',')
        .is_some_and(|(p, _)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    // `user:…@`, `username:…@`: the user is a placeholder, so is the rest.
    let example_user = matches!(user, "user" | "username" | "usr" | "name");
    !reserved && !names_itself && !port_list && !example_user && user != pw
}

pub fn is_uuid(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Subresource-integrity / lockfile digests: `sha512-<base64>`.
fn is_integrity(v: &str) -> bool {
    ["sha1-", "sha256-", "sha384-", "sha512-"]
        .iter()
        .any(|p| v.starts_with(p))
}

// ---- checksums and decoders ----

/// UTF-16 text (a BOM, or ASCII interleaved with NULs in the first 4 KiB)
/// decoded into `out` as UTF-8. False (and `out` untouched) for anything else.
pub fn utf16_to_utf8(bytes: &[u8], out: &mut Vec<u8>) -> bool {
    match utf16_kind(bytes) {
        Some((little, bom)) => {
            decode_utf16(&bytes[bom..], little, out);
            true
        }
        None => false,
    }
}

/// Is this UTF-16, and which byte order: `(little_endian, BOM length)`.
pub fn utf16_kind(bytes: &[u8]) -> Option<(bool, usize)> {
    match bytes {
        [0xFF, 0xFE, ..] => Some((true, 2)),
        [0xFE, 0xFF, ..] => Some((false, 2)),
        _ => {
            let head = &bytes[..bytes.len().min(4096) & !1];
            // No NUL at all (most files): not UTF-16, at memchr speed.
            if head.len() < 8 || !head.contains(&0) {
                return None;
            }
            let pairs = head.len() / 2;
            let zero_at = |k: usize| head.iter().skip(k).step_by(2).filter(|b| **b == 0).count();
            let (even, odd) = (zero_at(0), zero_at(1));
            if odd * 10 >= pairs * 9 && even * 10 <= pairs {
                Some((true, 0))
            } else if even * 10 >= pairs * 9 && odd * 10 <= pairs {
                Some((false, 0))
            } else {
                None
            }
        }
    }
}

/// UTF-16 code units (`body`, even offset) to UTF-8 in `out`.
pub fn decode_utf16(body: &[u8], little: bool, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(body.len() / 2);
    let units = body.chunks_exact(2).map(|c| {
        if little {
            u16::from_le_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], c[1]])
        }
    });
    let mut tmp = [0u8; 4];
    for ch in char::decode_utf16(units) {
        let ch = ch.unwrap_or(char::REPLACEMENT_CHARACTER);
        out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
    }
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// CRC-32 (IEEE 802.3), bitwise: only run on candidates, so no table.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// `n` in base62, left-padded with `0` to 6 digits.
pub fn base62_6(mut n: u32) -> [u8; 6] {
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// GitHub's (and npm's) token format: a 4-byte prefix (`ghp_`, `npm_`), 30
/// random base62 characters, then base62(crc32(random)) in 6 characters.
fn crc32_base62_ok(token: &[u8]) -> bool {
    let Some(body) = token.get(4..) else {
        return false;
    };
    if body.len() != 36 {
        return false;
    }
    let (random, check) = body.split_at(30);
    base62_6(crc32(random)) == check
}

/// Docker's `auth` is base64(`user:password`).
fn is_basic_auth_b64(v: &[u8]) -> bool {
    let Some(decoded) = base64_decode(v) else {
        return false;
    };
    decoded.len() >= 3
        && decoded.contains(&b':')
        && decoded.iter().all(|b| (0x20..0x7f).contains(b))
        && !decoded.ends_with(b":")
}

fn base64_decode(v: &[u8]) -> Option<Vec<u8>> {
    let v = v.strip_suffix(b"==").or(v.strip_suffix(b"=")).unwrap_or(v);
    let mut out = Vec::with_capacity(v.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in v {
        let d = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(d);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests;
