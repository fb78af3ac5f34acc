//! One positive and near-miss negatives per rule. Every credential is
//! generated here from pieces, so this file holds nothing key-shaped that a
//! scanner (ours or anyone's) would flag.

use super::*;

/// Deterministic generator: the same fixture on every run.
struct Gen(u64);

const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const B32: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const ALNUM: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const HEX: &str = "0123456789abcdef";
const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl Gen {
    fn new(seed: u64) -> Gen {
        Gen(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn s(&mut self, alphabet: &str, n: usize) -> String {
        let a = alphabet.as_bytes();
        (0..n)
            .map(|_| a[(self.next() % a.len() as u64) as usize] as char)
            .collect()
    }
}

fn rules() -> &'static RuleSet {
    static RULES: std::sync::OnceLock<RuleSet> = std::sync::OnceLock::new();
    RULES.get_or_init(|| RuleSet::builtin().expect("built-in rules compile"))
}

/// Rule ids found in `content` of a file called `name`.
fn found_in(name: &str, content: &str) -> Vec<String> {
    let rs = rules();
    let mut s = Scratch::new(rs);
    let mut hits = Vec::new();
    rs.name_hits(name, &mut hits);
    rs.scan(
        &FileContext::named(name),
        content.as_bytes(),
        &mut s,
        &mut hits,
    );
    for h in &hits {
        assert!(h.redacted.chars().count() <= 5, "redaction too long");
    }
    hits.into_iter()
        .map(|h| rs.rules[h.rule].id.clone())
        .collect()
}

fn found(content: &str) -> Vec<String> {
    found_in("config.txt", content)
}

#[track_caller]
fn assert_rule(content: &str, rule: &str) {
    let got = found(content);
    assert!(
        got.iter().any(|r| r == rule),
        "expected {rule}, got {got:?}"
    );
}

#[track_caller]
fn assert_clean(name: &str, content: &str) {
    let got = found_in(name, content);
    assert!(got.is_empty(), "expected nothing in {name}, got {got:?}");
}

/// A token in the GitHub / npm format with a valid CRC32 suffix.
fn github_token(g: &mut Gen, prefix: &str) -> String {
    let random = g.s(ALNUM, 30);
    let check = base62_6(crc32(random.as_bytes()));
    format!(
        "{prefix}_{random}{}",
        std::str::from_utf8(&check).expect("ascii")
    )
}

fn b64url(s: &str) -> String {
    let a = B64URL.as_bytes();
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &c)| acc | (u32::from(c) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(a[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn b64std(s: &str) -> String {
    let mut out = b64url(s).replace('-', "+").replace('_', "/");
    while out.len() % 4 != 0 {
        out.push('=');
    }
    out
}

#[test]
fn aws_access_key_id() {
    let mut g = Gen::new(1);
    let key = format!("{}{}", "AK", "IA") + &g.s(B32, 16);
    assert_rule(&format!("aws_access_key_id = {key}\n"), "aws-access-key-id");
    // Documented example, lower case, one character short.
    assert_clean("a.txt", &format!("id = {}{}\n", "AKIAIOSFODNN7", "EXAMPLE"));
    assert_clean("a.txt", &format!("id = {}\n", key.to_lowercase()));
    assert_clean("a.txt", &format!("id = {}\n", &key[..19]));
}

#[test]
fn aws_secret_access_key() {
    let mut g = Gen::new(2);
    let secret = g.s(B64, 40);
    assert_rule(
        &format!("[default]\naws_secret_access_key = {secret}\n"),
        "aws-secret-access-key",
    );
    let example = format!("{}{}", "wJalrXUtnFEMI/K7MDENG/bPxRfiCY", "EXAMPLEKEY");
    assert_clean("c", &format!("aws_secret_access_key = {example}\n"));
    let short = found(&format!("aws_secret_access_key = {}\n", &secret[..39]));
    assert!(
        !short.contains(&"aws-secret-access-key".into()),
        "{short:?}"
    );
}

#[test]
fn github_classic_tokens_need_a_valid_checksum() {
    let mut g = Gen::new(3);
    for prefix in ["ghp", "gho", "ghu", "ghs", "ghr"] {
        let t = github_token(&mut g, prefix);
        assert_rule(&format!("GH_TOKEN={t}\n"), "github-token");
        // Flip the last checksum character: same shape, not a token.
        let mut bad = t.clone();
        let last = bad.pop().expect("non-empty");
        bad.push(if last == 'A' { 'B' } else { 'A' });
        let got = found(&format!("x {bad} y\n"));
        assert!(!got.iter().any(|r| r == "github-token"), "{got:?}");
    }
}

#[test]
fn github_fine_grained_pat() {
    let mut g = Gen::new(4);
    let t = format!("github_{}_{}_{}", "pat", g.s(ALNUM, 22), g.s(ALNUM, 59));
    assert_rule(&format!("token: {t}\n"), "github-fine-grained-pat");
    let short = format!("github_{}_{}_{}", "pat", g.s(ALNUM, 22), g.s(ALNUM, 58));
    assert!(!found(&format!("x {short}\n")).contains(&"github-fine-grained-pat".into()));
}

#[test]
fn gitlab_token() {
    let mut g = Gen::new(5);
    assert_rule(&format!("x = glpat-{}\n", g.s(ALNUM, 20)), "gitlab-token");
    assert_clean("a", &format!("x = glpat-{}\n", "x".repeat(20)));
}

#[test]
fn slack_token_and_webhook() {
    let mut g = Gen::new(6);
    let t = format!(
        "xox{}-{}-{}-{}",
        "b",
        g.s("0123456789", 11),
        g.s("0123456789", 13),
        g.s(ALNUM, 24)
    );
    assert_rule(&format!("SLACK={t}\n"), "slack-token");
    assert_clean("a", "SLACK=xoxb-your-token-here\n");
    let hook = format!(
        "https://hooks.slack.com/services/T{}/B{}/{}",
        g.s(UPPER, 8),
        g.s(UPPER, 10),
        g.s(ALNUM, 24)
    );
    assert_rule(&format!("url: {hook}\n"), "slack-webhook");
    assert_clean(
        "a",
        "url: https://hooks.slack.com/services/TXXXXXXXX/BXXXXXXXX/XXXXXXXXXXXXXXXXXXXXXXXX\n",
    );
}

#[test]
fn stripe_key_but_not_the_documented_test_key() {
    let mut g = Gen::new(7);
    assert_rule(
        &format!("STRIPE=sk_{}_{}\n", "live", g.s(ALNUM, 24)),
        "stripe-key",
    );
    let docs = format!("sk_{}_{}{}", "test", "4eC39HqLy", "jWDarjtT1zdp7dc");
    assert_clean("a", &format!("Stripe.api_key = '{docs}'\n"));
}

#[test]
fn anthropic_and_openai_keys() {
    let mut g = Gen::new(8);
    let ant = format!("sk-{}-api03-{}AA", "ant", g.s(B64URL, 93));
    assert_rule(&format!("ANTHROPIC_API_KEY={ant}\n"), "anthropic-api-key");
    let proj = format!("sk-{}-{}", "proj", g.s(B64URL, 120));
    assert_rule(&format!("OPENAI_API_KEY={proj}\n"), "openai-api-key");
    let legacy = format!("sk-{}{}{}", g.s(ALNUM, 20), "T3Blbk", "FJ") + &g.s(ALNUM, 20);
    assert_rule(&format!("key: {legacy}\n"), "openai-api-key");
    assert_clean("a", "OPENAI_API_KEY=sk-proj-YOUR_API_KEY_HERE\n");
    assert_clean("a", "ANTHROPIC_API_KEY=sk-ant-api03-xxxxxxxx\n");
}

#[test]
fn generic_sk_key() {
    let mut g = Gen::new(9);
    assert_rule(&format!("DEEPSEEK=sk-{}\n", g.s(HEX, 32)), "generic-sk-key");
    assert_clean(
        "a",
        "pip install scikit-learn; risk-assessment-framework-component\n",
    );
}

#[test]
fn google_api_key_and_service_account() {
    let mut g = Gen::new(10);
    assert_rule(
        &format!("key={}{}\n", "AIza", g.s(B64URL, 35)),
        "google-api-key",
    );
    assert_clean("a", &format!("key=AIza{}\n", "X".repeat(35)));
    let body: Vec<String> = (0..10).map(|_| g.s(B64, 64)).collect();
    let sa = format!(
        "{{\n  \"type\": \"service_account\",\n  \"private_key\": \"-----BEGIN {} KEY-----\\n{}\\n-----END PRIVATE KEY-----\\n\"\n}}\n",
        "PRIVATE",
        body.join("\\n")
    );
    assert_rule(&sa, "gcp-service-account-key");
    assert_clean(
        "sa.json",
        "{\"type\": \"service_account\", \"private_key\": \"\", \"private_key_id\": \"\"}\n",
    );
}

#[test]
fn azure_storage_key() {
    let mut g = Gen::new(11);
    let conn = format!(
        "DefaultEndpointsProtocol=https;AccountName=acct;{}={}==;EndpointSuffix=core.windows.net",
        "AccountKey",
        g.s(B64, 86)
    );
    assert_rule(&conn, "azure-storage-key");
    let sas = format!(
        "https://acct.blob.core.windows.net/c?sv=2022-11-02&ss=b&srt=co&sp=rl&se=2030-01-01T00:00:00Z&sig={}%3D",
        g.s(B64, 43).replace('+', "%2B").replace('/', "%2F")
    );
    assert_rule(&format!("url: {sas}\n"), "azure-sas-token");
    assert_clean(
        "a",
        "url: https://acct.blob.core.windows.net/c?sv=2022-11-02&sig=<signature>\n",
    );
    assert_clean("a", "AccountKey=<your-account-key>;\n");
}

#[test]
fn huggingface_and_npm_tokens() {
    let mut g = Gen::new(12);
    assert_rule(
        &format!("HF_TOKEN=hf_{}\n", g.s(ALNUM, 34)),
        "huggingface-token",
    );
    assert_clean(
        "a.py",
        "from x import hf_hub_download_with_progress_and_cache_dir\n",
    );
    let npm = github_token(&mut g, "npm");
    assert_rule(&format!("t = {npm}\n"), "npm-token");
    assert_clean("a", &format!("t = npm_{}\n", g.s(ALNUM, 36)));
    assert_clean("a", "npm_config_cache_directory_location_abc\n");
}

#[test]
fn npmrc_pypirc_netrc() {
    let mut g = Gen::new(13);
    let npmrc = format!("//registry.npmjs.org/:_authToken={}\n", g.s(B64URL, 36));
    assert!(!found_in(".npmrc", &npmrc).is_empty());
    assert_clean(".npmrc", "//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n");

    let pypirc = format!(
        "[pypi]\nusername = __token__\npassword = {}\n",
        g.s(ALNUM, 20)
    );
    assert!(found_in(".pypirc", &pypirc).contains(&"pypirc-password".into()));
    assert_clean(
        ".pypirc",
        "[pypi]\nusername = __token__\npassword = $PYPI_TOKEN\n",
    );
    let token = format!("pypi-{}{}", "AgEIcHlwaS5vcmc", g.s(B64URL, 60));
    assert_rule(&format!("password = {token}\n"), "pypi-token");

    let netrc = format!("machine api.host.io login me password {}\n", g.s(ALNUM, 24));
    assert!(found_in(".netrc", &netrc).contains(&"netrc-password".into()));
    assert_clean(".netrc", "machine api.host.io login me password $TOKEN\n");
}

#[test]
fn twilio_sendgrid_mailgun() {
    let mut g = Gen::new(14);
    let sid = format!("S{}{}", "K", g.s(HEX, 32));
    assert_rule(&format!("TWILIO_API_KEY={sid}\n"), "twilio-key");
    assert_clean("a", &format!("build_id = {}\n", g.s(HEX, 32)));
    let sg = format!("SG.{}.{}", g.s(B64URL, 22), g.s(B64URL, 43));
    assert_rule(&format!("SENDGRID={sg}\n"), "sendgrid-api-key");
    assert_clean("a", "see SG.short.value\n");
    assert_rule(
        &format!("MAILGUN=key-{}\n", g.s(HEX, 32)),
        "mailgun-api-key",
    );
    assert_clean("a", &format!("a key-{} value\n", g.s(HEX, 31)));
}

#[test]
fn shopify_digitalocean_heroku_databricks_atlassian() {
    let mut g = Gen::new(15);
    assert_rule(
        &format!("t=shp{}_{}\n", "at", g.s(HEX, 32)),
        "shopify-token",
    );
    assert_clean("a", &format!("t=shpat_{}\n", g.s(HEX, 31)));
    assert_rule(
        &format!("t=do{}_v1_{}\n", "p", g.s(HEX, 64)),
        "digitalocean-token",
    );
    assert_clean("a", &format!("t=dop_v1_{}\n", "a".repeat(64)));
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        g.s(HEX, 8),
        g.s(HEX, 4),
        g.s(HEX, 4),
        g.s(HEX, 4),
        g.s(HEX, 12)
    );
    assert_rule(&format!("HEROKU_API_KEY={uuid}\n"), "heroku-api-key");
    assert_rule(&format!("t=HRKU-{}\n", g.s(B64URL, 60)), "heroku-api-key");
    assert_clean("a", &format!("request_id={uuid}\n"));
    assert_rule(&format!("t=dapi{}\n", g.s(HEX, 32)), "databricks-token");
    assert_clean("a", &format!("t=dapi{}\n", "0".repeat(32)));
    assert_rule(
        &format!("JIRA_TOKEN=ATATT3{}\n", g.s(B64URL, 180)),
        "atlassian-api-token",
    );
    assert_clean("a", "JIRA_TOKEN=ATATT3xxxx\n");
}

#[test]
fn jwt_but_not_the_jwt_io_example_or_unsigned() {
    let mut g = Gen::new(16);
    let header = b64url(r#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = b64url(&format!(
        r#"{{"sub":"{}","iat":1700000000}}"#,
        g.s(ALNUM, 12)
    ));
    let jwt = format!("{header}.{payload}.{}", g.s(B64URL, 43));
    assert_rule(&format!("Authorization: Bearer {jwt}\n"), "jwt");
    let example = format!(
        "{header}.{}.{}{}",
        "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ",
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6y",
        "JV_adQssw5c"
    );
    assert_clean("README.md", &format!("try `{example}`\n"));
    let unsigned = format!("{}.{payload}.", b64url(r#"{"alg":"none"}"#));
    assert_clean("a", &format!("t = {unsigned}\n"));
}

fn pem(kind: &str, g: &mut Gen) -> String {
    let body: Vec<String> = (0..8).map(|_| g.s(B64, 64)).collect();
    format!(
        "-----BEGIN {kind}-----\n{}\n-----END {kind}-----\n",
        body.join("\n")
    )
}

#[test]
fn private_keys_of_any_type() {
    let mut g = Gen::new(17);
    for kind in ["RSA", "EC", "DSA", "OPENSSH", "ENCRYPTED", ""] {
        let label = format!("{kind} PRIVATE KEY").trim().to_string();
        assert_rule(&pem(&label, &mut g), "private-key");
    }
    let pgp = format!(
        "-----BEGIN PGP {} KEY BLOCK-----\nComment: x\n\n{}\n",
        "PRIVATE",
        g.s(B64, 64)
    );
    assert_rule(&pgp, "private-key");
}

#[test]
fn public_keys_certificates_and_doc_stubs_are_not_private_keys() {
    let mut g = Gen::new(18);
    assert_clean("pub.pem", &pem("PUBLIC KEY", &mut g));
    assert_clean("cert.pem", &pem("CERTIFICATE", &mut g));
    assert_clean(
        "ssh.pub",
        &format!("ssh-ed25519 {} me@host\n", g.s(B64, 68)),
    );
    assert_clean(
        "README.md",
        "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----\n",
    );
}

#[test]
fn keystores_by_name() {
    assert!(found_in("release.jks", "").contains(&"keystore-file".into()));
    assert!(found_in("client.p12", "").contains(&"keystore-file".into()));
    assert_clean("p12.md", "");
}

#[test]
fn kubeconfig_and_docker_config() {
    let mut g = Gen::new(19);
    let kube = format!(
        "users:\n- name: admin\n  user:\n    client-key-data: {}\n",
        b64std(&pem("RSA PRIVATE KEY", &mut g))
    );
    assert_rule(&kube, "kubeconfig-client-key");
    let token = format!(
        "users:\n- name: sa\n  user:\n    token: {}\n",
        g.s(ALNUM, 40)
    );
    assert!(!found_in("config", &token).is_empty());

    let auth = b64std(&format!("deploy:{}", g.s(ALNUM, 20)));
    let docker = format!("{{\"auths\": {{\"ghcr.io\": {{\"auth\": \"{auth}\"}}}}}}\n");
    assert_rule(&docker, "docker-config-auth");
    let no_colon = b64std("just some text without a separator");
    assert_clean(
        "config.json",
        &format!("{{\"auths\": {{\"ghcr.io\": {{\"auth\": \"{no_colon}\"}}}}}}\n"),
    );
}

#[test]
fn urls_with_passwords() {
    let mut g = Gen::new(20);
    let pw = g.s(ALNUM, 16);
    for scheme in ["postgres", "mysql", "mongodb+srv", "redis", "amqp", "https"] {
        assert_rule(
            &format!("url = \"{scheme}://app:{pw}@db.internal:5432/x\"\n"),
            "url-with-password",
        );
    }
    assert_clean("a", "DATABASE_URL=postgres://app:${DB_PASSWORD}@db/x\n");
    assert_clean("a", "DATABASE_URL=postgres://app:password@localhost/x\n");
    assert_clean("a", "DATABASE_URL=postgres://app@localhost/x\n");
    assert_clean("a", "see https://example.com/a:b@c for docs\n");
}

#[test]
fn generic_assignment_in_every_format() {
    let mut g = Gen::new(21);
    let v = g.s(ALNUM, 24);
    let cases = [
        ("settings.py", format!("API_KEY = \"{v}\"\n")),
        ("app.js", format!("const clientSecret = '{v}';\n")),
        ("config.yaml", format!("db:\n  password: {v}\n")),
        ("config.json", format!("{{\"client_secret\": \"{v}\"}}\n")),
        ("Cargo.toml", format!("token = \"{v}\"\n")),
        ("app.ini", format!("[db]\npassword={v}\n")),
        (".env", format!("export DB_PASSWORD={v}\n")),
    ];
    for (name, content) in cases {
        let got = found_in(name, &content);
        assert!(
            got.contains(&"generic-secret-assignment".into()),
            "{name}: {got:?}"
        );
    }
}

#[test]
fn generic_assignment_ignores_references_placeholders_and_non_secrets() {
    let mut g = Gen::new(22);
    let hex64 = g.s(HEX, 64);
    let cases = [
        (
            "settings.py",
            "password = os.environ[\"DB_PASSWORD\"]\n".to_string(),
        ),
        ("settings.py", "password = get_password(\"db\")\n".into()),
        ("settings.py", "token = self.token_from_config\n".into()),
        ("app.js", "const token = process.env.GITHUB_TOKEN;\n".into()),
        ("app.js", "api_key: \"YOUR_API_KEY\",\n".into()),
        ("config.yaml", "secret: ${SECRET_FROM_ENV}\n".into()),
        ("config.yaml", "token: <token>\n".into()),
        (
            "config.yaml",
            "password: \"{{ vault_db_password }}\"\n".into(),
        ),
        ("config.toml", format!("token_hash = \"{hex64}\"\n")),
        (
            "config.toml",
            "session_token = \"0f8fad5b-d9cb-469f-a165-70867728950e\"\n".into(),
        ),
        ("config.toml", "max_tokens = 4096\n".into()),
        ("config.toml", "secret_name = \"prod-database\"\n".into()),
        (
            "config.toml",
            "password_file = \"/run/secrets/db_password\"\n".into(),
        ),
        (".env", "PASSWORD=changeme\n".into()),
        (".env", "TOKEN=xxxxxxxxxxxxxxxxxxxx\n".into()),
        ("tokens.css", ".token-primary { color: #ff0000; }\n".into()),
    ];
    for (name, content) in cases {
        assert_clean(name, &content);
    }
}

#[test]
fn lockfile_integrity_hashes_and_uuids_are_not_secrets() {
    let mut g = Gen::new(23);
    let lock = format!(
        "{{\"node_modules/js-tokens\": {{\"version\": \"4.0.0\", \"resolved\": \"https://registry.npmjs.org/js-tokens/-/js-tokens-4.0.0.tgz\", \"integrity\": \"sha512-{}==\"}}}}\n",
        g.s(B64, 86)
    );
    assert_clean("package-lock.json", &lock);
    assert_clean(
        "Cargo.lock",
        &format!(
            "[[package]]\nname = \"x\"\nchecksum = \"{}\"\n",
            g.s(HEX, 64)
        ),
    );
    assert_clean(
        "ids.txt",
        "id = 0f8fad5b-d9cb-469f-a165-70867728950e\nsha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n",
    );
}

#[test]
fn base64_images_and_minified_bundles_are_not_secrets() {
    let mut g = Gen::new(24);
    // A long base64 run that happens to contain token-shaped slices.
    let mut blob = g.s(B64, 4000);
    blob.insert_str(2000, &format!("/{}{}{}/", "AK", "IA", g.s(B32, 16)));
    assert_clean(
        "index.html",
        &format!("<img src=\"data:image/png;base64,{blob}\">\n"),
    );
    let min = format!(
        "!function(e){{var t={{token:\"{}\",apiKey:\"{}\"}};{}}}\n",
        g.s(ALNUM, 24),
        g.s(ALNUM, 24),
        "e.x=1;".repeat(400)
    );
    assert_clean("vendor.min.js", &min);
    assert_clean("bundle.js", &min);
}

#[test]
fn generic_findings_redact_the_value_not_its_quote() {
    let rs = rules();
    let mut s = Scratch::new(rs);
    let mut hits = Vec::new();
    let text = format!("token = \"{}\"\n", "Zq3vN8kPw2Lx7Rt5Hy9M");
    rs.scan(
        &FileContext::named("a.toml"),
        text.as_bytes(),
        &mut s,
        &mut hits,
    );
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].redacted, "Zq3v…");
}

#[test]
fn placeholders_and_non_ascii_do_not_panic() {
    for v in ["%aé", "%", "$", "é", "%2Bx", "%(name)s", "${X}"] {
        let _ = is_placeholder(v.as_bytes());
    }
    assert!(is_placeholder(b"%(password)s"));
    assert!(!is_placeholder(b"%2Bq8Vd2kLm4Np7Rs1Tx6Wz"));
    assert_clean(
        "a.txt",
        "password = \"\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\"\n",
    );
}

#[test]
fn redaction_is_a_short_prefix_never_the_value() {
    assert_eq!(redact(b"abcdefghijklmnop"), "abcd…");
    assert_eq!(redact(b"abcdefgh"), "ab…");
    assert_eq!(redact(b"abc"), "…");
}

#[test]
fn crc32_and_base62_match_known_vectors() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(&base62_6(0), b"000000");
    assert_eq!(&base62_6(61), b"00000z");
    assert_eq!(&base62_6(62), b"000010");
}

#[test]
fn entropy() {
    assert!(shannon_entropy(b"aaaaaaaa") < 0.01);
    assert!((shannon_entropy(b"abcd") - 2.0).abs() < 1e-9);
}

#[test]
fn env_values() {
    let mut g = Gen::new(25);
    use crate::scan::secret_in_value;
    assert_eq!(
        secret_in_value(&github_token(&mut g, "ghp")),
        Some("github-token")
    );
    assert_eq!(
        secret_in_value(&(format!("{}{}", "AK", "IA") + &g.s(B32, 16))),
        Some("aws-access-key-id")
    );
    assert!(secret_in_value(&pem("OPENSSH PRIVATE KEY", &mut g)).is_some());
    assert_eq!(
        secret_in_value(&format!("postgres://u:{}@db/x", g.s(ALNUM, 12))),
        Some("url-with-password")
    );
    assert_eq!(
        secret_in_value(&format!("foo://u:{}@db/x", g.s(ALNUM, 12))),
        Some("url-with-password")
    );
    assert!(secret_in_value(&format!("sk-{}", g.s(HEX, 32))).is_some());
    for benign in [
        "/usr/local/bin:/usr/bin:/bin",
        "/home/user",
        "xterm-256color",
        "en_US.UTF-8",
        "rs=0:di=01;34:ln=01;36:mh=00:pi=40;33",
        "postgres://localhost/db",
        "https://proxy.internal:3128",
        "sk-learn",
        "unix:path=/run/user/1000/bus",
    ] {
        assert_eq!(secret_in_value(benign), None, "{benign}");
    }
}

/// False positives seen when scanning real trees (crate sources, Python's
/// site-packages, /usr/share/doc, /etc).
#[test]
fn false_positives_seen_in_real_trees() {
    let cases = [
        ("README.md", "let token: cpuid_aes_sha::InitToken = cpuid_aes_sha::init();\n"),
        ("README.md", "[badge]: https://codecov.io/gh/o/r/graph/badge.svg?token=Z92NHFQ70G\n"),
        ("postgresql.conf", "#password_encryption = scram-sha-256\t# or md5\n"),
        ("_oid.py", "    AttributeOID.CHALLENGE_PASSWORD: \"challengePassword\",\n"),
        ("dsa.py", "    backend: \"Backend\", private_key: \"_DSAPrivateKey\", data: bytes\n"),
        ("ssh.py", "        proxy_password = display_desc.get(\"proxy_password\", password)\n"),
        ("connection.py", "        self.key_password = key_password\n"),
        ("mvn", "__mvncomp \"username= message= password= scmVersion= $(x)\" \"-D\"\n"),
        ("sshconfig.vim", "syn match sshconfigHostKeyAlgo \"\\<sk-ecdsa-sha2-nistp256-cert-v01@openssh\\.com\\>\"\n"),
        ("http.md", "const options = new URL('https://abc:xyz@example.com');\n"),
        ("a.yaml", "url: postgres://app:app@db/x\n"),
        ("ec.py", "    backend: \"Backend\", private_key: \"_EllipticCurvePrivateKey\", data: bytes\n"),
        ("npmrc.md", "//somewhere-else.com/myorg/:_authToken=MYTOKEN1\n"),
    ];
    for (name, content) in cases {
        assert_clean(name, content);
    }
}

#[test]
fn names_versus_random_letters() {
    for name in [
        "challengePassword",
        "_EllipticCurvePrivateKey",
        "_RSAPrivateKey",
        "scmVersion",
        "CHALLENGE_PASSWORD",
        "InitToken",
    ] {
        assert!(looks_like_name(name), "{name}");
    }
    let mut g = Gen::new(27);
    let letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut missed = 0;
    for _ in 0..1000 {
        if looks_like_name(&g.s(letters, 24)) {
            missed += 1;
        }
    }
    assert!(
        missed < 5,
        "{missed} of 1000 random strings look like names"
    );
    assert_rule(
        &format!("password = \"{}\"\n", "bNekIDPqIQQskGBsuCUVyFpr"),
        "generic-secret-assignment",
    );
}

#[test]
fn line_numbers_and_the_per_file_cap() {
    let mut g = Gen::new(26);
    let mut text = String::new();
    for _ in 0..300 {
        text.push_str(&format!("k = {}{}{}\n\n", "AK", "IA", g.s(B32, 16)));
    }
    let rs = rules();
    let mut s = Scratch::new(rs);
    let mut hits = Vec::new();
    rs.scan(
        &FileContext::named("keys.txt"),
        text.as_bytes(),
        &mut s,
        &mut hits,
    );
    assert_eq!(hits.len(), MAX_HITS_PER_FILE);
    let lines: Vec<usize> = hits.iter().map(|h| h.line).take(3).collect();
    assert_eq!(lines, vec![1, 3, 5]);
}

// ---- precision on real code (issue 11); each case has a positive control ----

#[track_caller]
fn assert_found_in(name: &str, content: &str, rule: &str) {
    let got = found_in(name, content);
    assert!(
        got.iter().any(|r| r == rule),
        "{name}: expected {rule}, got {got:?}"
    );
}

#[test]
fn aws_documented_example_keys_are_not_credentials() {
    // The key pair in AWS's documentation, built from pieces.
    let id = format!("{}{}", "AKIAIOSFODNN7", "EXAMPLE");
    let secret = format!("{}{}", "wJalrXUtnFEMI/K7MDENG/bPxRfiCY", "EXAMPLEKEY");
    assert_clean(
        "config",
        &format!("aws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
    );
    let mut g = Gen::new(1101);
    assert_rule(
        &format!(
            "aws_access_key_id = AKIA{}\n",
            g.s("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
        ),
        "aws-access-key-id",
    );
}

#[test]
fn pagination_and_idempotency_tokens_are_not_credentials() {
    let mut g = Gen::new(1102);
    let b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for line in [
        format!("\"NextToken\": \"eyJ{}\"", g.s(b64, 60)),
        format!("\"NextContinuationToken\": \"{}==\"", g.s(b64, 54)),
        "\"output_token\": \"DistributionList.NextMarker\",".to_string(),
        "\"input_token\": \"ExclusiveStartShardId\",".to_string(),
        "\"ClientToken\": \"cachedvol112233\",".to_string(),
        "\"PurchaseToken\": \"eyJ2IjoiMSIsInMiOjEsImMiOi...\",".to_string(),
        "\"PasswordLastUsed\": \"2016-09-08T21:47:36Z\",".to_string(),
    ] {
        assert_clean("examples-1.json", &format!("{{\n  {line}\n}}\n"));
    }
    // Control: the same shape under a credential's name is found.
    assert_found_in(
        "config.json",
        &format!("{{\"SessionToken\": \"{}\"}}\n", g.s(ALNUM, 40)),
        "generic-secret-assignment",
    );
}

#[test]
fn docstring_doctest_and_readme_examples_are_not_credentials() {
    let mut g = Gen::new(1103);
    let pw = g.s(ALNUM, 16);
    assert_clean(
        "types.py",
        &format!("def f():\n    \"\"\"\n    model = Model(password='{pw}')\n    \"\"\"\n"),
    );
    assert_clean("types.py", &format!("    >>> connect(password='{pw}')\n"));
    assert_clean(
        "lib.rs",
        &format!("/// let c = Client::new(token = \"{pw}\");\n"),
    );
    assert_clean(
        "client.js",
        &format!("/**\n * @example\n * login({{ password: \"{pw}\" }})\n */\n"),
    );
    assert_clean("README.md", &format!("```\npassword = \"{pw}\"\n```\n"));
    assert_clean("examples-1.json", "{\"OldPassword\": \"3s0K_;xh4~8XXI\"}\n");
    assert_clean(".env.example", &format!("DB_PASSWORD={pw}\n"));
    // Controls: the same literal in code, after a docstring closed, in a config file,
    // and commented out (a commented-out credential is still one).
    assert_found_in(
        "types.py",
        &format!("\"\"\"doc\"\"\"\npassword = '{pw}'\n"),
        "generic-secret-assignment",
    );
    assert_found_in(
        "settings.py",
        &format!("# password = '{pw}'\n"),
        "generic-secret-assignment",
    );
    assert_found_in(
        "app.yaml",
        &format!("password: \"{pw}\"\n"),
        "generic-secret-assignment",
    );
}

#[test]
fn hashes_ids_header_and_constant_names_are_not_credentials() {
    let mut g = Gen::new(1104);
    for line in [
        format!("\"AccessKeyId\": \"{}\"", g.s("0123456789abcdef", 32)),
        format!("api_key_sha256 = \"{}\"", g.s("0123456789abcdef", 64)),
        format!("\"ApiKeyMd5\": \"{}\"", g.s("0123456789abcdef", 32)),
        "ALLOW_CREDENTIALS = \"Access-Control-Allow-Credentials\"".to_string(),
        "api_key = \"X-Api-Key\"".to_string(),
        "TOKEN = \"OPENAI_KEY_V2\"".to_string(),
        "\"access_token_expires_at\": \"2024-05-01T00:00:00Z\"".to_string(),
    ] {
        assert_clean("settings.py", &format!("{line}\n"));
    }
    // Control: a random literal under the same kind of key is found.
    assert_found_in(
        "settings.py",
        &format!("api_key = \"{}\"\n", g.s(ALNUM, 24)),
        "generic-secret-assignment",
    );
}

#[test]
fn example_urls_in_library_docs_are_not_credentials() {
    for line in [
        "https://jo%40email.com:a%20secret@m\u{fc}ller.de:1234/pa%20th?search=ab#anchorlink",
        "mhu = MultiHostUrl('https://foo.com:123,foo:bar@bar.com/path')",
        "postgres://user:mypassword@db.internal/app",
        "https://user:he%2F%2Fo@pypi.company.com/simple",
    ] {
        assert_clean("_urls.py", &format!("{line}\n"));
    }
    let mut g = Gen::new(1105);
    assert_found_in(
        "_urls.py",
        &format!("u = 'postgres://app:{}@db.internal/app'\n", g.s(ALNUM, 14)),
        "url-with-password",
    );
}

// ---- recall: formats added for issue 11; each with near-miss negatives ----

/// `a` + `b`: keeps literal prefixes out of this file's text.
fn p(a: &str, b: &str) -> String {
    format!("{a}{b}")
}

#[track_caller]
fn assert_found_named(name: &str, content: &str, rule: &str) {
    assert_found_in(name, content, rule);
}

#[test]
fn new_prefixed_formats() {
    let mut g = Gen::new(1201);
    let bech = "qpzry9x8gf2tvdw0s3jn54khce6mua7l".to_ascii_uppercase();
    let cases: Vec<(String, &str)> = vec![
        (
            p("AGE-SECRET-KEY-", "1") + &g.s(&bech, 58),
            "age-secret-key",
        ),
        (p("AKC", "p") + &g.s(ALNUM, 69), "jfrog-token"),
        (p("cmVmdGtuOjAx", "Oj") + &g.s(ALNUM, 54), "jfrog-token"),
        (p("gs", "k_") + &g.s(ALNUM, 52), "groq-api-key"),
        (
            format!(
                "https://discord.com/api/{}/{}/{}",
                "webhooks",
                g.s("0123456789", 18),
                g.s(B64URL, 68)
            ),
            "discord-webhook",
        ),
        (p("pu", "l-") + &g.s(HEX, 40), "pulumi-token"),
        (p("dp.p", "t.") + &g.s(ALNUM, 43), "doppler-token"),
        (p("r8", "_") + &g.s(ALNUM, 37), "replicate-token"),
        (p("whs", "ec_") + &g.s(ALNUM, 32), "stripe-webhook-secret"),
        (p("dckr_", "pat_") + &g.s(ALNUM, 27), "dockerhub-pat"),
        (p("sq", "p_") + &g.s(HEX, 40), "sonarqube-token"),
        (
            format!("{}{}_{}", p("gl", "sa_"), g.s(ALNUM, 32), g.s(HEX, 8)),
            "grafana-token",
        ),
        (
            p("GOCS", "PX-") + &g.s(B64URL, 28),
            "google-oauth-client-secret",
        ),
        (format!("{}-us{}", g.s(HEX, 32), 14), "mailchimp-api-key"),
        (p("hv", "s.") + &g.s(B64URL, 92), "vault-token"),
        (p("hv", "b.") + &g.s(B64URL, 140), "vault-token"),
    ];
    for (token, rule) in &cases {
        assert_found_in("deploy.yaml", &format!("value: {token}\n"), rule);
        // Truncated by a few characters: the fixed length is part of the format.
        let short = &token[..token.len() - 8];
        let got = found_in("deploy.yaml", &format!("value: {short} \n"));
        assert!(
            !got.iter().any(|r| r == rule)
                || rule.contains("webhook")
                || rule.contains("vault")
                || rule.contains("jfrog")
                || rule.contains("grafana"),
            "{rule}: a truncated value still matched"
        );
    }
    // Low entropy and placeholders are not tokens.
    assert_clean(
        "a.yaml",
        &format!("v: {}\n", p("gs", "k_") + &"a".repeat(52)),
    );
    assert_clean(
        "a.yaml",
        &format!(
            "v: {}\n",
            p("dckr_", "pat_") + "xxxxxxxxxxxxxxxxxxxxxxxxxxx"
        ),
    );
    assert_clean("a.yaml", "name: ask_me-us1\n");
}

#[test]
fn datadog_keys_need_their_name() {
    let mut g = Gen::new(1202);
    let key = g.s(HEX, 40);
    assert_found_in(
        "datadog.yaml",
        &format!("DD_APP_KEY={key}\n"),
        "datadog-key",
    );
    assert_found_in(
        "conf.py",
        &format!("datadog_api_key = \"{}\"\n", g.s(HEX, 32)),
        "datadog-key",
    );
    let got = found_in("lock.json", &format!("\"sha1\": \"{key}\"\n"));
    assert!(!got.iter().any(|r| r == "datadog-key"), "{got:?}");
}

#[test]
fn putty_private_key() {
    let mut g = Gen::new(1203);
    let ppk = format!(
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: k\nPublic-Lines: 2\n{}\n{}\nPrivate-Lines: 1\n{}\nPrivate-MAC: {}\n",
        g.s(B64, 64),
        g.s(B64, 20),
        g.s(B64, 44),
        g.s(HEX, 64)
    );
    assert_found_in("id.ppk", &ppk, "putty-private-key");
    assert_clean(
        "notes.md",
        "Save it as a PuTTY-User-Key-File-3: file with puttygen.\n",
    );
}

#[test]
fn bare_token_files_by_name_and_shape() {
    let mut g = Gen::new(1204);
    assert_found_named(
        ".vault-token",
        &(p("hv", "s.") + &g.s(B64URL, 92)),
        "vault-token",
    );
    assert_found_named(
        ".vault-token",
        &format!("s.{}\n", g.s(ALNUM, 24)),
        "bare-token-file",
    );
    assert_found_named("token", &format!("{}\n", g.s(ALNUM, 37)), "bare-token-file");
    assert_found_named("master.key", &g.s(HEX, 32), "bare-token-file");
    // Same content under another name, or prose under the name: not findings.
    assert_clean("notes", &format!("{}\n", g.s(ALNUM, 37)));
    assert_clean("token", "this file documents how the token is made\n");
    assert_clean("token", "0000000000000000000000\n");
}

#[test]
fn passwords_not_written_as_key_value() {
    let mut g = Gen::new(1205);
    let pw = g.s(ALNUM, 14);
    for (name, content, rule) in [
        (
            ".pgpass",
            format!("db.internal:5432:app:app:{pw}\n"),
            "pgpass-password",
        ),
        (
            "hosts",
            format!("web1 ansible_host=10.0.0.5 ansible_ssh_pass={pw}\n"),
            "ansible-password",
        ),
        (
            "group_vars.yml",
            format!("ansible_become_password: \"{pw}\"\n"),
            "ansible-password",
        ),
        (
            "config",
            format!("BUNDLE_GEMS__CONTRIBSYS__COM: \"ci:{pw}\"\n"),
            "bundler-credential",
        ),
        (
            "wp-config.php",
            format!("define( 'DB_PASSWORD', '{pw}' );\n"),
            "wordpress-config",
        ),
        (
            "settings.py",
            format!("DB = 'postgresql+psycopg2://app:{pw}@db.internal/app'\n"),
            "url-with-password",
        ),
        (
            "deploy.sh",
            format!("docker login -u ci -p {pw} registry.internal\n"),
            "docker-login-password",
        ),
        (
            "backup.sh",
            format!("mysqldump -u root -p'{pw}' app > a.sql\n"),
            "mysql-cli-password",
        ),
        (
            "backup.sh",
            format!("mysql -uroot -p{pw} app\n"),
            "mysql-cli-password",
        ),
    ] {
        assert_found_in(name, &content, rule);
    }
    for (name, content) in [
        (".pgpass", "# hostname:port:database:username:password\n".to_string()),
        ("hosts", "web1 ansible_ssh_pass=\"{{ vault_ssh_pass }}\"\n".to_string()),
        ("config", "BUNDLE_PATH: \"vendor/bundle\"\nBUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG/: \"https://m.internal\"\n".to_string()),
        ("wp-config.php", "define( 'AUTH_KEY', 'put your unique phrase here' );\n".to_string()),
        ("deploy.sh", "echo \"$PW\" | docker login -u ci --password-stdin registry\n".to_string()),
        ("deploy.sh", "docker login -u ci -p \"$REGISTRY_PASSWORD\" registry\n".to_string()),
        ("backup.sh", "mysql -u root -p app\nmysql -h db -P3306 -p -u x\n".to_string()),
    ] {
        assert_clean(name, &content);
    }
}

#[test]
fn environment_files_by_name() {
    let rs = rules();
    let named = |n: &str| {
        let mut h = Vec::new();
        rs.name_hits(n, &mut h);
        h.iter()
            .map(|h| rs.rules[h.rule].id.clone())
            .collect::<Vec<_>>()
    };
    for n in ["prod.env", "staging.env", "Production.env"] {
        assert_eq!(named(n), vec!["env-file".to_string()], "{n}");
    }
    for n in [
        "prod.env.example",
        "sample.env",
        "env.py",
        "prod.environment",
        ".env",
    ] {
        assert!(named(n).is_empty(), "{n}");
    }
}

#[test]
fn utf16_text_is_decoded_before_matching() {
    let mut g = Gen::new(1206);
    let token = github_token(&mut g, "ghp");
    let text = format!("$env:GITHUB_TOKEN = \"{token}\"\r\n");
    let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    for (bytes, bom) in [
        (le.clone(), &[0xFF, 0xFE][..]),
        (be.clone(), &[0xFE, 0xFF][..]),
        (le.clone(), &[][..]),
        (be, &[][..]),
    ] {
        let mut all = bom.to_vec();
        all.extend_from_slice(&bytes);
        let mut out = Vec::new();
        assert!(utf16_to_utf8(&all, &mut out));
        assert_eq!(String::from_utf8(out.clone()).expect("utf8"), text);
        assert_eq!(
            found_in("profile.ps1", &text),
            vec!["github-token".to_string()]
        );
    }
    let mut out = Vec::new();
    assert!(!utf16_to_utf8(text.as_bytes(), &mut out));
    assert!(!utf16_to_utf8(
        b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        &mut out
    ));
}

#[test]
fn prefixed_tokens_inside_binary_files() {
    let mut g = Gen::new(1207);
    let token = github_token(&mut g, "ghp");
    let mut blob = b"SQLite format 3\x00\x10\x00\x01\x01".to_vec();
    blob.extend_from_slice(&[0u8; 64]);
    blob.extend_from_slice(format!("\x05\x17{token}\x00").as_bytes());
    blob.extend_from_slice(format!("password=\"{}\"\x00", g.s(ALNUM, 16)).as_bytes());
    let rs = rules();
    let mut s = Scratch::new(rs);
    let mut hits = Vec::new();
    let ctx = FileContext {
        name: "state.vscdb",
        binary: true,
        ..FileContext::default()
    };
    rs.scan(&ctx, &blob, &mut s, &mut hits);
    let ids: Vec<&str> = hits.iter().map(|h| rs.rules[h.rule].id.as_str()).collect();
    // The checksummed token is found; the generic rule does not run on binaries.
    assert_eq!(ids, vec!["github-token"]);
}
