//! A labelled corpus for the secret scan: per credential format, files that
//! hold a real-shaped credential (positives) and near misses that must not
//! be flagged (placeholders, documented examples, truncated values, library
//! files in a virtualenv); plus benign filler code for throughput.
//!
//! Deterministic (one seed), regenerable, and free of key-shaped literals:
//! every value is assembled at run time. `scripts/bench-scan.sh` writes a
//! large one and reports precision and recall per format; the `scan` test
//! binary checks a small one against the targets.
#![allow(dead_code)]

use std::fs;
use std::path::Path;

pub const ALNUM: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const HEX: &str = "0123456789abcdef";
const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B32: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const DIGITS: &str = "0123456789";
const BECH32: &str = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L";

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn s(&mut self, alphabet: &str, n: usize) -> String {
        let a = alphabet.as_bytes();
        (0..n)
            .map(|_| a[(self.next() % a.len() as u64) as usize] as char)
            .collect()
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

/// `a` + `b`: keeps literal prefixes out of this file's text.
fn j(a: &str, b: &str) -> String {
    format!("{a}{b}")
}

fn crc32(data: &[u8]) -> u32 {
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

fn base62_6(mut n: u32) -> String {
    let a = ALNUM.as_bytes();
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = a[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn checksummed(r: &mut Rng, prefix: &str) -> String {
    let random = r.s(ALNUM, 30);
    let check = base62_6(crc32(random.as_bytes()));
    format!("{prefix}{random}{check}")
}

fn pem(r: &mut Rng, label: &str) -> String {
    let body: Vec<String> = (0..8).map(|_| r.s(B64, 64)).collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        body.join("\n")
    )
}

fn b64(data: &[u8]) -> String {
    let a = B64.as_bytes();
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= c.len() {
                out.push(a[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One labelled file: where, what, and whether it holds a credential.
pub struct Sample {
    pub rel: String,
    pub format: &'static str,
    pub positive: bool,
    pub bytes: Vec<u8>,
}

fn text(rel: String, format: &'static str, positive: bool, body: String) -> Sample {
    Sample {
        rel,
        format,
        positive,
        bytes: body.into_bytes(),
    }
}

/// Positive and negative samples of one format, the `i`-th variant.
fn format_samples(r: &mut Rng, i: usize) -> Vec<Sample> {
    let d = |f: &str| format!("svc{i}/{f}");
    let mut v = Vec::new();
    let mut pos = |rel: String, format: &'static str, body: String| {
        v.push(text(rel, format, true, body));
    };
    // ---- token formats with a prefix ----
    let aws = j("AKI", "A") + &r.s(B32, 16);
    pos(
        d("aws.ini"),
        "aws",
        format!(
            "[default]\naws_access_key_id = {aws}\naws_secret_access_key = {}\n",
            r.s(B64, 40)
        ),
    );
    pos(
        d("gh.sh"),
        "github",
        format!("export GH_TOKEN={}\n", checksummed(r, &j("gh", "p_"))),
    );
    pos(
        d("ci.yml"),
        "gitlab",
        format!("token: {}\n", j("glpat", "-") + &r.s(ALNUM, 20)),
    );
    pos(
        d("slack.json"),
        "slack",
        format!(
            "{{\"bot\": \"{}\"}}\n",
            j("xox", "b-") + &r.s(DIGITS, 12) + "-" + &r.s(ALNUM, 24)
        ),
    );
    pos(
        d("notify.py"),
        "slack-webhook",
        format!(
            "URL = \"https://hooks.slack.com/services/T{}/B{}/{}\"\n",
            r.s(B32, 8),
            r.s(B32, 10),
            r.s(ALNUM, 24)
        ),
    );
    pos(
        d("pay.rb"),
        "stripe",
        format!(
            "Stripe.api_key = '{}'\n",
            j("sk_li", "ve_") + &r.s(ALNUM, 32)
        ),
    );
    pos(
        d("ai.env.sh"),
        "anthropic",
        format!(
            "export ANTHROPIC_API_KEY={}AA\n",
            j("sk-ant-", "api03-") + &r.s(B64URL, 93)
        ),
    );
    pos(
        d("openai.ts"),
        "openai",
        format!("const k = \"{}\";\n", j("sk-pr", "oj-") + &r.s(B64URL, 60)),
    );
    pos(
        d("maps.js"),
        "google-api-key",
        format!("key: '{}'\n", j("AI", "za") + &r.s(B64URL, 35)),
    );
    pos(
        d("sa.json"),
        "gcp-service-account",
        format!(
            "{{\"type\": \"service_account\", \"private_key\": \"{}\\n{}\\n-----END PRIVATE KEY-----\\n\"}}\n",
            j("-----BEGIN PRIVATE", " KEY-----"),
            r.s(B64, 64)
        ),
    );
    pos(
        d("storage.cfg"),
        "azure-storage",
        format!(
            "conn=DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={}==;\n",
            r.s(B64, 86)
        ),
    );
    pos(
        d("hf.py"),
        "huggingface",
        format!("HF = \"{}\"\n", j("h", "f_") + &r.s(ALNUM, 34)),
    );
    pos(
        d("npm.sh"),
        "npm",
        format!("NPM_TOKEN={}\n", checksummed(r, &j("np", "m_"))),
    );
    pos(
        d(".npmrc"),
        "npmrc",
        format!("//registry.npmjs.org/:_authToken={}\n", r.s(ALNUM, 36)),
    );
    pos(
        d("pypi.cfg"),
        "pypi",
        format!(
            "token = {}\n",
            j("pypi-AgEIcHlwaS5", "vcmc") + &r.s(B64URL, 70)
        ),
    );
    pos(
        d("mail.py"),
        "sendgrid",
        format!(
            "SG_KEY = \"{}.{}.{}\"\n",
            j("S", "G"),
            r.s(B64URL, 22),
            r.s(B64URL, 43)
        ),
    );
    pos(
        d("shop.yml"),
        "shopify",
        format!("token: {}\n", j("shp", "at_") + &r.s(HEX, 32)),
    );
    pos(
        d("do.tf"),
        "digitalocean",
        format!("token = \"{}\"\n", j("dop_", "v1_") + &r.s(HEX, 64)),
    );
    pos(
        d("dbx.cfg"),
        "databricks",
        format!("token = {}\n", j("da", "pi") + &r.s(HEX, 32)),
    );
    pos(
        d("id_deploy"),
        "private-key",
        pem(r, &j("OPENSSH PRIVATE", " KEY")),
    );
    pos(
        d("tls.key.pem"),
        "private-key",
        pem(r, &j("EC PRIVATE", " KEY")),
    );
    let jwt = format!(
        "{}.{}.{}",
        j("ey", "J") + &r.s(B64URL, 30),
        j("ey", "J") + &r.s(B64URL, 60),
        r.s(B64URL, 43)
    );
    pos(
        d("session.txt"),
        "jwt",
        format!("Authorization: Bearer {jwt}\n"),
    );
    pos(
        d("db.yml"),
        "url-password",
        format!(
            "url: postgres://app:{}@db{i}.internal:5432/app\n",
            r.s(ALNUM, 16)
        ),
    );
    pos(
        d("settings.py"),
        "url-password",
        format!(
            "DB = 'mysql+pymysql://app:{}@db.internal/app'\n",
            r.s(ALNUM, 16)
        ),
    );
    pos(
        d(".env"),
        "generic",
        format!("DEBUG=0\nDB_PASSWORD={}\n", r.s(ALNUM, 20)),
    );
    pos(
        d("app.yaml"),
        "generic",
        format!("db:\n  password: \"{}\"\n", r.s(ALNUM, 18)),
    );
    pos(
        d("conf.toml"),
        "generic",
        format!("[api]\nsecret_key = \"{}\"\n", r.s(ALNUM, 32)),
    );
    // ---- formats new in issue 11 ----
    pos(
        d("age.txt"),
        "age",
        format!(
            "# created\n{}\n",
            j("AGE-SECRET-", "KEY-1") + &r.s(BECH32, 58)
        ),
    );
    pos(
        d("jfrog.cfg"),
        "jfrog",
        format!("apikey={}\n", j("AKC", "p") + &r.s(ALNUM, 69)),
    );
    pos(
        d("groq.py"),
        "groq",
        format!(
            "client = Groq(api_key=\"{}\")\n",
            j("gs", "k_") + &r.s(ALNUM, 52)
        ),
    );
    pos(
        d("discord.json"),
        "discord-webhook",
        format!(
            "{{\"hook\": \"https://discord.com/api/{}/{}/{}\"}}\n",
            "webhooks",
            r.s(DIGITS, 18),
            r.s(B64URL, 68)
        ),
    );
    pos(
        d("pulumi.sh"),
        "pulumi",
        format!(
            "export PULUMI_ACCESS_TOKEN={}\n",
            j("pu", "l-") + &r.s(HEX, 40)
        ),
    );
    pos(
        d("doppler.yml"),
        "doppler",
        format!("token: {}\n", j("dp.", "st.") + &r.s(ALNUM, 43)),
    );
    pos(
        d("replicate.py"),
        "replicate",
        format!("T = '{}'\n", j("r8", "_") + &r.s(ALNUM, 37)),
    );
    pos(
        d("hooks.env.sh"),
        "stripe-webhook",
        format!("export STRIPE_WH={}\n", j("whs", "ec_") + &r.s(ALNUM, 32)),
    );
    pos(
        d("docker.sh"),
        "dockerhub",
        format!(
            "echo {} | docker login -u ci --password-stdin\n",
            j("dckr_", "pat_") + &r.s(B64URL, 27)
        ),
    );
    pos(
        d("sonar.properties"),
        "sonarqube",
        format!("sonar.token={}\n", j("sq", "p_") + &r.s(HEX, 40)),
    );
    pos(
        d("grafana.ini"),
        "grafana",
        format!(
            "token = {}_{}\n",
            j("gl", "sa_") + &r.s(ALNUM, 32),
            r.s(HEX, 8)
        ),
    );
    pos(
        d("client_secret.json"),
        "google-oauth",
        format!(
            "{{\"web\": {{\"client_secret\": \"{}\"}}}}\n",
            j("GOCS", "PX-") + &r.s(B64URL, 28)
        ),
    );
    pos(
        d("datadog.yaml"),
        "datadog",
        format!("dd_app_key: {}\n", r.s(HEX, 40)),
    );
    pos(
        d("mc.py"),
        "mailchimp",
        format!("MC = \"{}-us{}\"\n", r.s(HEX, 32), 6 + i % 10),
    );
    pos(
        d("server.ppk"),
        "putty",
        format!(
            "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: k\nPublic-Lines: 2\n{}\n{}\nPrivate-Lines: 1\n{}\nPrivate-MAC: {}\n",
            r.s(B64, 64),
            r.s(B64, 20),
            r.s(B64, 44),
            r.s(HEX, 64)
        ),
    );
    pos(
        d("vault.hcl"),
        "vault",
        format!("token = \"{}\"\n", j("hv", "s.") + &r.s(B64URL, 92)),
    );
    pos(
        d(".vault-token"),
        "bare-token",
        format!("s.{}", r.s(ALNUM, 24)),
    );
    pos(d("hf/token"), "bare-token", r.s(ALNUM, 37));
    pos(d("config/master.key"), "bare-token", r.s(HEX, 32));
    pos(
        d(".pgpass"),
        "pgpass",
        format!("db.internal:5432:app:app:{}\n", r.s(ALNUM, 14)),
    );
    pos(
        d("inventory.ini"),
        "ansible",
        format!(
            "[web]\nweb1 ansible_host=10.0.0.{i} ansible_ssh_pass={}\n",
            r.s(ALNUM, 14)
        ),
    );
    pos(
        d(".bundle/config"),
        "bundler",
        format!(
            "---\nBUNDLE_GEMS__CONTRIBSYS__COM: \"ci:{}\"\n",
            r.s(HEX, 16)
        ),
    );
    pos(
        d("wp-config.php"),
        "wordpress",
        format!("<?php\ndefine( 'DB_PASSWORD', '{}' );\n", r.s(ALNUM, 16)),
    );
    pos(
        d("deploy.sh"),
        "docker-login",
        format!(
            "docker login -u ci -p {} registry.internal\n",
            r.s(ALNUM, 16)
        ),
    );
    pos(
        d("backup.sh"),
        "mysql-cli",
        format!(
            "mysqldump -u root -p'{}' app > /backup/app.sql\n",
            r.s(ALNUM, 14)
        ),
    );
    pos(
        d("prod.env"),
        "env-file-name",
        format!("MODE=prod\nREGION=eu-{i}\n"),
    );
    // UTF-16 (PowerShell) and a binary with a prefixed token inside.
    let ps = format!(
        "$env:GITHUB_TOKEN = \"{}\"\r\n",
        checksummed(r, &j("gh", "p_"))
    );
    let mut wide = vec![0xFF, 0xFE];
    wide.extend(ps.encode_utf16().flat_map(u16::to_le_bytes));
    v.push(Sample {
        rel: d("profile.ps1"),
        format: "utf16",
        positive: true,
        bytes: wide,
    });
    let mut blob = b"SQLite format 3\x00\x10\x00\x01\x01".to_vec();
    blob.extend_from_slice(&[0u8; 200]);
    blob.extend_from_slice(j("\x00", &checksummed(r, &j("gh", "o_"))).as_bytes());
    blob.extend_from_slice(&[0u8; 100]);
    v.push(Sample {
        rel: d("state.vscdb"),
        format: "binary",
        positive: true,
        bytes: blob,
    });
    let auth = b64(format!("ci:{}", r.s(ALNUM, 16)).as_bytes());
    v.push(text(
        d("docker/config.json"),
        "docker-config",
        true,
        format!("{{\"auths\": {{\"registry.internal\": {{\"auth\": \"{auth}\"}}}}}}\n"),
    ));
    v.push(text(
        d("kubeconfig"),
        "kubeconfig",
        true,
        format!(
            "users:\n- name: u\n  user:\n    client-key-data: {}\n",
            r.s(B64, 64)
        ),
    ));
    v.push(text(
        d(".netrc"),
        "netrc",
        true,
        format!(
            "machine api.internal login ci password {}\n",
            r.s(ALNUM, 16)
        ),
    ));
    v.extend(negatives(r, i));
    v.extend(more_formats(r, i));
    v
}

/// Near misses per format: placeholders, documented examples, truncated or
/// low-entropy values, references to variables, certificates, docs.
fn negatives(r: &mut Rng, i: usize) -> Vec<Sample> {
    let d = |f: &str| format!("svc{i}/neg/{f}");
    let mut v = Vec::new();
    let mut neg = |rel: String, format: &'static str, body: String| {
        v.push(text(rel, format, false, body));
    };
    neg(
        d("aws.md"),
        "aws",
        format!("aws_access_key_id = {}\n", j("AKIAIOSFODNN7", "EXAMPLE")),
    );
    neg(
        // A token-shaped value with a wrong checksum, not under a credential's name.
        d("gh.log"),
        "github",
        format!("revoked {} at 12:00\n", j("gh", "p_") + &r.s(ALNUM, 36)),
    );
    neg(
        d("ci.yml"),
        "gitlab",
        format!("token: {}\n", j("glpat", "-") + "xxxxxxxxxxxxxxxxxxxx"),
    );
    neg(
        d("slack.json"),
        "slack",
        "{\"bot\": \"xoxb-your-token-here\"}\n".into(),
    );
    neg(
        d("pay.rb"),
        "stripe",
        format!("Stripe.api_key = '{}'\n", j("sk_te", "st_") + "YOUR_KEY"),
    );
    neg(
        d("app.py"),
        "generic",
        "import os\npassword = os.environ[\"DB_PASSWORD\"]\ntoken = get_token()\n".into(),
    );
    neg(
        d(".env.example"),
        "generic",
        format!("DB_PASSWORD={}\n", r.s(ALNUM, 20)),
    );
    neg(
        d("app.yaml"),
        "generic",
        "db:\n  password: ${DB_PASSWORD}\n  token: changeme\n".into(),
    );
    neg(
        d("README.md"),
        "generic",
        format!(
            "Configure it:\n\n```\npassword = \"{}\"\n```\n",
            r.s(ALNUM, 16)
        ),
    );
    neg(
        d("paginators-1.json"),
        "generic",
        format!(
            "{{\"output_token\": \"NextToken\", \"NextToken\": \"{}\"}}\n",
            j("ey", "J") + &r.s(B64, 60)
        ),
    );
    neg(
        d("lock.json"),
        "generic",
        format!(
            "{{\"integrity\": \"sha512-{}==\", \"api_key_sha256\": \"{}\"}}\n",
            r.s(B64, 86),
            r.s(HEX, 64)
        ),
    );
    neg(
        d("db.yml"),
        "url-password",
        "url: postgres://user:password@example.com/db\n".into(),
    );
    neg(
        d("cacert.pem"),
        "private-key",
        pem(r, "CERTIFICATE") + &pem(r, "CERTIFICATE"),
    );
    neg(
        d("id_ed25519.pub"),
        "private-key",
        format!("ssh-ed25519 {} me@host\n", r.s(B64, 68)),
    );
    neg(
        d("groq.py"),
        "groq",
        format!("K = \"{}\"\n", j("gs", "k_") + &"a".repeat(52)),
    );
    neg(
        d("token"),
        "bare-token",
        "see the docs for how to get a token\n".into(),
    );
    neg(
        d("deploy.sh"),
        "docker-login",
        "docker login -u ci -p \"$REGISTRY_PASSWORD\" registry\n".into(),
    );
    neg(d("backup.sh"), "mysql-cli", "mysql -u root -p app\n".into());
    neg(
        d("hosts"),
        "ansible",
        "web1 ansible_ssh_pass=\"{{ vault_ssh_pass }}\"\n".into(),
    );
    neg(
        d("wp-config-sample.php"),
        "wordpress",
        "define( 'AUTH_KEY', 'put your unique phrase here' );\n".into(),
    );
    neg(
        d("cors.py"),
        "generic",
        "ALLOW = \"Access-Control-Allow-Credentials\"\nTOKEN_ENV = \"OPENAI_KEY_V2\"\n".into(),
    );
    neg(
        d("doc.py"),
        "generic",
        format!(
            "def f():\n    \"\"\"\n    >>> Model(password='{}')\n    \"\"\"\n",
            r.s(ALNUM, 14)
        ),
    );
    // A virtualenv: names that match mask patterns, docstrings, a CA bundle.
    let sp = format!("svc{i}/.venv/lib/python3.12/site-packages");
    neg(
        format!("svc{i}/.venv/pyvenv.cfg"),
        "package-tree",
        "home = /usr/bin\n".into(),
    );
    neg(
        format!("{sp}/litellm/credentials.py"),
        "package-tree",
        format!("class Credentials:\n    api_key = \"{}\"\n", r.s(ALNUM, 24)),
    );
    neg(
        format!("{sp}/certifi/cacert.pem"),
        "package-tree",
        pem(r, "CERTIFICATE"),
    );
    neg(
        format!("{sp}/tornado/test/test.key"),
        "package-tree",
        pem(r, &j("RSA PRIVATE", " KEY")),
    );
    neg(
        format!("{sp}/awscli/examples/s3/presign.rst"),
        "package-tree",
        format!(
            "https://b.s3.amazonaws.com/k?X-Amz-Credential={}%2F2020\n",
            j("AKI", "A") + &r.s(B32, 16)
        ),
    );
    v
}

const LOWER_ALNUM: &str = "0123456789abcdefghijklmnopqrstuvwxyz";
const UPPER_ALNUM: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const AH: &str = "0123456789abcdefgh";

fn uuid(r: &mut Rng) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        r.s(HEX, 8),
        r.s(HEX, 4),
        r.s(HEX, 4),
        r.s(HEX, 4),
        r.s(HEX, 12)
    )
}

/// One prefixed format: its label, a file, a line with `{}` for the token,
/// and the token.
struct Prefixed {
    format: &'static str,
    file: &'static str,
    line: &'static str,
    token: String,
    /// A near miss of its own (formats that are a whole line or file).
    miss: Option<String>,
}

/// Formats with a fixed prefix added to pass gitleaks' default set: one
/// positive each, and one near miss (the token cut in half in a log line, or
/// its random part replaced by a placeholder).
fn prefixed_formats(r: &mut Rng) -> Vec<Prefixed> {
    let p = |format, file, line, token| Prefixed {
        format,
        file,
        line,
        token,
        miss: None,
    };
    let m = |format, file, token, miss: &str| Prefixed {
        format,
        file,
        line: "{}",
        token,
        miss: Some(miss.to_string()),
    };
    vec![
        p("1password", "op.env.sh", "export OP_SECRET_KEY={}\n", format!("{}-{}-{}-{}-{}-{}", j("A", "3"), r.s(UPPER_ALNUM, 6), r.s(UPPER_ALNUM, 11), r.s(UPPER_ALNUM, 5), r.s(UPPER_ALNUM, 5), r.s(UPPER_ALNUM, 5))),
        p("1password", "op-sa.yml", "token: {}\n", j("ops_", "eyJ") + &r.s(B64, 280)),
        p("adobe", "adobe.json", "{{\"secret\": \"{}\"}}\n", j("p8", "e-") + &r.s(ALNUM, 32)),
        p("alibaba", "aliyun.ini", "[default]\nak = {}\n", j("LT", "AI") + &r.s(ALNUM, 20)),
        p("tencent", "tencent.ini", "[default]\nsecret_id = {}\n", j("AK", "ID") + &r.s(ALNUM, 32)),
        p("azure-ad", "appsettings.json", "{{\"ClientCredential\": \"{}\"}}\n", format!("{}{}{}", r.s(ALNUM, 3), r.s(DIGITS, 1), j("Q", "~")) + &r.s(ALNUM, 34)),
        p("authress", "authress.json", "{{\"accessKey\": \"{}\"}}\n", format!("{}{}.{}.{}{}.{}", j("s", "c_"), r.s(ALNUM, 12), r.s(ALNUM, 5), j("ac", "c_"), r.s(ALNUM, 20), r.s(B64URL, 64))),
        p("clickhouse", "ch.yml", "key: {}\n", j("4b", "1d") + &r.s(ALNUM, 38)),
        p("clojars", "deploy.sh", "export CLOJARS_DEPLOY={}\n", j("CLOJARS", "_") + &r.s(LOWER_ALNUM, 60)),
        p("cloudflare", "origin.cfg", "origin_ca = {}\n", format!("{}{}-{}", j("v1.", "0-"), r.s(HEX, 24), r.s(HEX, 146))),
        p("contentful", "cma.sh", "export CMA={}\n", j("CFP", "AT-") + &r.s(B64URL, 43)),
        p("defined-networking", "nebula.yml", "key: {}\n", format!("{}{}-{}", j("dnk", "ey-"), r.s(ALNUM, 26), r.s(ALNUM, 52))),
        p("duffel", "duffel.ts", "const k = \"{}\";\n", j("duffel_", "live_") + &r.s(B64URL, 43)),
        p("dynatrace", "dt.yml", "token: {}\n", format!("{}{}.{}", j("dt0c", "01."), r.s(UPPER_ALNUM, 24), r.s(ALNUM, 64))),
        p("easypost", "ship.rb", "EasyPost.api_key = '{}'\n", j("EZ", "AK") + &r.s(ALNUM, 54)),
        p("facebook", "fb.json", "{{\"page\": \"{}\"}}\n", j("EA", "AG") + &r.s(ALNUM, 180)),
        p("flutterwave", "flw.php", "<?php $k = '{}';\n", format!("{}{}-X", j("FLWSE", "CK-"), r.s(AH, 32))),
        p("flyio", "fly.sh", "export FLY_API_TOKEN={}\n", j("fo", "1_") + &r.s(B64URL, 43)),
        p("frameio", "frame.yml", "token: {}\n", j("fio-", "u-") + &r.s(B64URL, 64)),
        p("harness", "harness.yml", "apiKey: {}\n", format!("{}{}.{}.{}", j("pa", "t."), r.s(B64URL, 22), r.s(ALNUM, 24), r.s(ALNUM, 20))),
        p("terraform-cloud", "credentials.tfrc.json", "{{\"token\": \"{}\"}}\n", format!("{}{}{}", r.s(ALNUM, 14), j(".atlas", "v1."), r.s(B64URL, 67))),
        p("huggingface-org", "hub.cfg", "org = {}\n", j("api_o", "rg_") + &r.s(&ALNUM[10..], 34)),
        p("infracost", "infracost.yml", "api_key: {}\n", j("ic", "o-") + &r.s(ALNUM, 32)),
        p("intra42", "42.env.sh", "export FT_SECRET={}\n", j("s-s4t2", "ud-") + &r.s(HEX, 64)),
        p("linear", "linear.ts", "const c = new LinearClient({{ apiKey: \"{}\" }});\n", j("lin_", "api_") + &r.s(ALNUM, 40)),
        p("mapbox", "mapbox.js", "mapboxgl.secret = '{}';\n", format!("{}{}.{}", j("sk.e", "yJ"), r.s(B64URL, 60), r.s(B64URL, 22))),
        p("maxmind", "GeoIP.conf", "LicenseKey {}\n", format!("{}_{}{}", r.s(ALNUM, 6), r.s(ALNUM, 29), j("_m", "mk"))),
        p("teams-webhook", "notify.sh", "curl -X POST {} -d @msg.json\n", format!("https://acme.{}/webhookb2/{}@{}/IncomingWebhook/{}/{}", j("webhook.", "office.com"), uuid(r), uuid(r), r.s(ALNUM, 32), uuid(r))),
        p("newrelic", "newrelic.yml", "api_key: {}\n", j("NR", "AK-") + &r.s(UPPER_ALNUM, 27)),
        p("notion", "notion.py", "NOTION = \"{}\"\n", format!("{}{}{}", j("nt", "n_"), r.s(DIGITS, 11), r.s(ALNUM, 35))),
        p("octopus-deploy", "octo.ps1.txt", "octo push --apiKey {} --server https://octo.internal\n", j("AP", "I-") + &r.s(UPPER_ALNUM, 26)),
        p("openshift", "oc.sh", "oc login --token={} --server=https://api.internal:6443\n", j("sha256", "~") + &r.s(B64URL, 43)),
        p("perplexity", "pplx.py", "client = OpenAI(api_key=\"{}\", base_url=BASE)\n", j("pp", "lx-") + &r.s(ALNUM, 48)),
        p("xai", "grok.sh", "export XAI_API_KEY={}\n", j("xa", "i-") + &r.s(ALNUM, 80)),
        p("tavily", "search.py", "TAVILY = \"{}\"\n", j("tv", "ly-") + &r.s(ALNUM, 32)),
        p("langsmith", "langsmith.sh", "export LANGCHAIN_API_KEY={}\n", format!("{}{}_{}", j("lsv2_", "pt_"), r.s(HEX, 32), r.s(HEX, 10))),
        p("pinecone", "pc.yml", "pinecone: {}\n", format!("{}{}_{}", j("pc", "sk_"), r.s(ALNUM, 5), r.s(ALNUM, 63))),
        p("planetscale", "ps.sh", "export PLANETSCALE_SERVICE_TOKEN={}\n", j("pscale_", "tkn_") + &r.s(B64URL, 43)),
        p("postman", "postman.json", "{{\"apikey\": \"{}\"}}\n", format!("{}{}-{}", j("PM", "AK-"), r.s(HEX, 24), r.s(HEX, 34))),
        p("prefect", "prefect.toml", "PREFECT_API_KEY = \"{}\"\n", j("pn", "u_") + &r.s(ALNUM, 36)),
        p("readme", "readme.sh", "rdme openapi --key={}\n", j("rd", "me_") + &r.s(LOWER_ALNUM, 70)),
        p("rubygems", "gem-credentials.yml", "---\n:rubygems_api_key: {}\n", j("rubyg", "ems_") + &r.s(HEX, 48)),
        p("nuget", "push.sh", "dotnet nuget push pkg.nupkg -k {} -s nuget.org\n", j("oy", "2") + &r.s(LOWER_ALNUM, 43)),
        p("scalingo", "scalingo.sh", "scalingo login --api-token {}\n", j("tk-", "us-") + &r.s(B64URL, 48)),
        p("brevo", "brevo.php", "<?php $config->setApiKey('api-key', '{}');\n", format!("{}{}-{}", j("xkey", "sib-"), r.s(HEX, 64), r.s(ALNUM, 16))),
        p("mailersend", "ms.yml", "token: {}\n", j("ml", "sn.") + &r.s(HEX, 64)),
        p("sentry", "sentryclirc", "[auth]\ntoken={}\n", j("sntr", "yu_") + &r.s(HEX, 64)),
        p("settlemint", "sm.sh", "export SETTLEMINT_ACCESS_TOKEN={}\n", j("sm_", "pat_") + &r.s(ALNUM, 16)),
        p("shippo", "shippo.py", "shippo.config.api_key = \"{}\"\n", j("shippo", "_live_") + &r.s(HEX, 40)),
        p("sourcegraph", "src.sh", "export SRC_ACCESS_TOKEN={}\n", j("sg", "p_") + &r.s(HEX, 40)),
        p("square", "square.yml", "access_token: {}\n", j("sq0", "atp-") + &r.s(B64URL, 22)),
        p("telegram", "bot.py", "bot = Bot(\"{}\")\n", format!("{}:{}{}", r.s(DIGITS, 10), j("A", "A"), r.s(B64URL, 33))),
        p("typeform", "typeform.sh", "export TF={}\n", j("tf", "p_") + &r.s(B64URL, 59)),
        p("yandex", "yc.json", "{{\"api_key\": \"{}\"}}\n", j("AQ", "VN") + &r.s(B64URL, 36)),
        p("hubspot", "hubspot.js", "const hs = new Client({{ accessToken: '{}' }});\n", j("pat-", "na1-") + &uuid(r)),
        p("plaid", "plaid.json", "{{\"access\": \"{}\"}}\n", j("access-", "production-") + &uuid(r)),
        p("netlify", "netlify.sh", "netlify deploy --auth {}\n", j("nf", "p_") + &r.s(ALNUM, 40)),
        p("supabase", "supabase.sh", "supabase login --token {}\n", j("sb", "p_") + &r.s(HEX, 40)),
        p("tailscale", "ts.sh", "tailscale up --authkey={}\n", format!("{}{}-{}", j("tskey-", "auth-"), r.s(ALNUM, 14), r.s(ALNUM, 32))),
        p("buildkite", "bk.yml", "token: {}\n", j("bk", "ua_") + &r.s(HEX, 40)),
        p("circleci", "circle.sh", "export CIRCLE_TOKEN={}\n", format!("{}{}_{}", j("CCI", "PAT_"), r.s(ALNUM, 22), r.s(HEX, 40))),
        p("figma", "figma.json", "{{\"pat\": \"{}\"}}\n", j("fi", "gd_") + &r.s(B64URL, 40)),
        p("deno-deploy", "deploy.ts", "const t = \"{}\";\n", j("dd", "p_") + &r.s(ALNUM, 36)),
        p("google-oauth-token", "adc.json", "{{\"refresh\": \"{}\"}}\n", j("1//", "0") + &r.s(B64URL, 60)),
        p("firebase", "fcm.js", "const serverKey = '{}';\n", format!("{}{}{}{}", j("AA", "AA"), r.s(B64URL, 7), j(":APA", "91b"), r.s(B64URL, 134))),
        p("dropbox", "dbx.py", "dbx = dropbox.Dropbox(\"{}\")\n", j("sl", ".B") + &r.s(B64URL, 140)),
        m("kubernetes-secret", "secret.yaml", format!("apiVersion: v1\nkind: {}\nmetadata:\n  name: db\ntype: Opaque\ndata:\n  password: {}\n", j("Sec", "ret"), b64(r.s(ALNUM, 18).as_bytes())), &format!("apiVersion: v1\nkind: {}\nmetadata:\n  name: db\ndata:\n  password: {{{{ .Values.dbPassword | b64enc }}}}\n", j("Sec", "ret"))),
        m("nuget-config", "NuGet.Config", format!("<configuration><packageSourceCredentials><feed>\n<add key=\"Username\" value=\"ci\" />\n<add key=\"{}\" value=\"{}\" />\n</feed></packageSourceCredentials></configuration>\n", j("ClearText", "Password"), r.s(ALNUM, 16)), &format!("<add key=\"{}\" value=\"%NUGET_PASSWORD%\" />\n", j("ClearText", "Password"))),
        m("curl", "call.sh", format!("curl -sS -H \"Authorization: Bearer {}\" https://api.internal/v1/me\n", r.s(ALNUM, 32)), "curl -sS -H \"Authorization: Bearer $API_TOKEN\" https://api.internal/v1/me\n"),
        m("curl", "fetch.sh", format!("curl -u ci:{} https://repo.internal/artifact.tgz -o a.tgz\n", r.s(ALNUM, 14)), "curl -u \"ci:$REPO_PASSWORD\" https://repo.internal/artifact.tgz\n"),
    ]
}

/// One vendor key without a prefix: `<vendor key name> = <value>`.
struct Vendor {
    format: &'static str,
    key: &'static str,
    value: String,
}

fn vendor_formats(r: &mut Rng) -> Vec<Vendor> {
    let v = |format, key, value| Vendor { format, key, value };
    vec![
        v(
            "adafruit",
            "ADAFRUIT_IO_KEY",
            j("ai", "o_") + &r.s(ALNUM, 28),
        ),
        v(
            "airtable",
            "AIRTABLE_PAT",
            format!("{}{}.{}", j("pa", "t"), r.s(ALNUM, 14), r.s(HEX, 64)),
        ),
        v("algolia", "ALGOLIA_ADMIN_KEY", r.s(HEX, 32)),
        v("alibaba", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", r.s(ALNUM, 30)),
        v(
            "asana",
            "ASANA_PAT",
            format!("2/{}/{}:{}", r.s(DIGITS, 16), r.s(DIGITS, 16), r.s(HEX, 32)),
        ),
        v("beamer", "BEAMER_KEY", j("b", "_") + &r.s(B64URL, 44)),
        v("bitbucket", "BITBUCKET_CONSUMER_SECRET", r.s(ALNUM, 32)),
        v("bittrex", "BITTREX_SECRET", r.s(HEX, 32)),
        v("cisco-meraki", "MERAKI_DASHBOARD_API_KEY", r.s(HEX, 40)),
        v("cloudflare", "CLOUDFLARE_API_TOKEN", r.s(B64URL, 40)),
        v("codecov", "CODECOV_TOKEN", uuid(r)),
        v("cohere", "COHERE_API_KEY", r.s(ALNUM, 40)),
        v("coinbase", "COINBASE_API_SECRET", r.s(B64URL, 64)),
        v("confluent", "CONFLUENT_CLOUD_API_SECRET", r.s(B64, 64)),
        v("contentful", "CONTENTFUL_DELIVERY_TOKEN", r.s(B64URL, 43)),
        v(
            "discord",
            "DISCORD_BOT",
            format!("M{}.{}.{}", r.s(ALNUM, 24), r.s(B64URL, 6), r.s(B64URL, 38)),
        ),
        v("droneci", "DRONE_TOKEN", r.s(ALNUM, 32)),
        v("dropbox", "DROPBOX_APP_SECRET", r.s(LOWER_ALNUM, 15)),
        v("etsy", "ETSY_KEYSTRING", r.s(LOWER_ALNUM, 24)),
        v("facebook", "FACEBOOK_APP_SECRET", r.s(HEX, 32)),
        v("fastly", "FASTLY_API_TOKEN", r.s(B64URL, 32)),
        v("finicity", "FINICITY_APP_KEY", r.s(HEX, 32)),
        v("finnhub", "FINNHUB_KEY", r.s(LOWER_ALNUM, 20)),
        v("flickr", "FLICKR_SECRET", r.s(HEX, 32)),
        v("freshbooks", "FRESHBOOKS_CLIENT_SECRET", r.s(HEX, 64)),
        v("gitter", "GITTER_TOKEN", r.s(HEX, 40)),
        v(
            "gocardless",
            "GOCARDLESS_ACCESS",
            j("live", "_") + &r.s(B64URL, 40),
        ),
        v("hubspot", "HUBSPOT_HAPIKEY", uuid(r)),
        v("intercom", "INTERCOM_ACCESS_TOKEN", r.s(B64URL, 60)),
        v("kraken", "KRAKEN_PRIVATE_KEY", r.s(B64, 88)),
        v("kucoin", "KUCOIN_API_SECRET", uuid(r)),
        v(
            "launchdarkly",
            "LAUNCHDARKLY_SDK_KEY",
            j("sd", "k-") + &uuid(r),
        ),
        v("linkedin", "LINKEDIN_CLIENT_SECRET", r.s(ALNUM, 16)),
        v("lob", "LOB_API_KEY", j("live", "_") + &r.s(HEX, 35)),
        v("mattermost", "MATTERMOST_TOKEN", r.s(LOWER_ALNUM, 26)),
        v("messagebird", "MESSAGEBIRD_ACCESS_KEY", r.s(ALNUM, 25)),
        v("nytimes", "NYTIMES_API_KEY", r.s(ALNUM, 32)),
        v("okta", "OKTA_API_TOKEN", j("0", "0") + &r.s(B64URL, 40)),
        v("plaid", "PLAID_SECRET", r.s(HEX, 30)),
        v("privateai", "PRIVATEAI_API_KEY", r.s(LOWER_ALNUM, 32)),
        v("rapidapi", "X_RAPIDAPI_KEY", r.s(ALNUM, 50)),
        v(
            "resend",
            "RESEND_API_KEY",
            format!("{}{}_{}", j("r", "e_"), r.s(ALNUM, 8), r.s(ALNUM, 24)),
        ),
        v("sendbird", "SENDBIRD_API_TOKEN", r.s(HEX, 40)),
        v("sentry", "SENTRY_AUTH_TOKEN", r.s(HEX, 64)),
        v("snyk", "SNYK_TOKEN", uuid(r)),
        v("squarespace", "SQUARESPACE_API_KEY", uuid(r)),
        v("sumologic", "SUMO_ACCESS_KEY", r.s(ALNUM, 64)),
        v("travisci", "TRAVIS_API_TOKEN", r.s(ALNUM, 22)),
        v("twitch", "TWITCH_CLIENT_SECRET", r.s(LOWER_ALNUM, 30)),
        v("twitter", "TWITTER_CONSUMER_SECRET", r.s(ALNUM, 50)),
        v(
            "yandex",
            "YANDEX_STATIC_KEY",
            j("Y", "C") + &r.s(B64URL, 38),
        ),
        v("zendesk", "ZENDESK_API_TOKEN", r.s(ALNUM, 40)),
        v("mistral", "MISTRAL_API_KEY", r.s(ALNUM, 32)),
        v(
            "pagerduty",
            "PAGERDUTY_API_KEY",
            j("u", "+") + &r.s(B64URL, 18),
        ),
        v("linode", "LINODE_TOKEN", r.s(HEX, 64)),
        v("hetzner", "HCLOUD_TOKEN", r.s(ALNUM, 64)),
        v("vercel", "VERCEL_TOKEN", r.s(ALNUM, 24)),
        v("postmark", "POSTMARK_SERVER_TOKEN", uuid(r)),
        v("mailjet", "MAILJET_SECRET", r.s(HEX, 32)),
    ]
}

/// Positives and near misses of the formats above, the `i`-th variant.
fn more_formats(r: &mut Rng, i: usize) -> Vec<Sample> {
    let mut v = Vec::new();
    for (n, f) in prefixed_formats(r).into_iter().enumerate() {
        v.push(text(
            format!("svc{i}/more/{n}/{}", f.file),
            f.format,
            true,
            f.line.replace("{}", &f.token),
        ));
        let miss = if let Some(miss) = &f.miss {
            miss.clone()
        } else if i % 2 == 0 {
            // Half a token, quoted in a log line: not the format.
            format!(
                "{}: rotated, old value {} (revoked)\n",
                f.format,
                &f.token[..f.token.len() / 2]
            )
        } else {
            // The prefix and some of the token, then a placeholder.
            let keep = f.token.len() * 2 / 5;
            f.line.replace(
                "{}",
                &format!("{}{}", &f.token[..keep], "x".repeat(f.token.len() - keep)),
            )
        };
        v.push(text(
            format!("svc{i}/more/neg/{n}-{}", f.file),
            f.format,
            false,
            miss,
        ));
    }
    let exts = ["env.sh", "yml", "json", "toml", "ini", "py"];
    for (n, f) in vendor_formats(r).into_iter().enumerate() {
        let ext = exts[(n + i) % exts.len()];
        let line = |value: &str| match ext {
            "env.sh" => format!("export {}={value}\n", f.key),
            "yml" => format!("{}: \"{value}\"\n", f.key.to_ascii_lowercase()),
            "json" => format!("{{\"{}\": \"{value}\"}}\n", f.key.to_ascii_lowercase()),
            "toml" => format!("{} = \"{value}\"\n", f.key.to_ascii_lowercase()),
            "ini" => format!("[{}]\n{} = {value}\n", f.format, f.key.to_ascii_lowercase()),
            _ => format!("{} = \"{value}\"\n", f.key),
        };
        v.push(text(
            format!("svc{i}/vendor/{n}-{}.{ext}", f.format),
            f.format,
            true,
            line(&f.value),
        ));
        // Near misses: the same line in a README, or a reference to the
        // environment instead of a literal.
        let (rel, body) = if i % 2 == 0 {
            (
                format!("svc{i}/vendor/neg/{n}-README.md"),
                format!("Set it:\n\n    {}", line(&f.value)),
            )
        } else {
            (
                format!("svc{i}/vendor/neg/{n}-{}.{ext}", f.format),
                line(&format!("${{{}}}", f.key)),
            )
        };
        v.push(text(rel, f.format, false, body));
    }
    v
}

/// Benign source files, for throughput (about `kib` KiB each).
fn filler(r: &mut Rng, i: usize, kib: usize) -> Sample {
    let ext = r.pick(&["py", "js", "rs", "go", "md", "json", "yaml"]);
    let mut body = String::with_capacity(kib * 1024);
    let mut block = 0;
    while body.len() < kib * 1024 {
        let n = r.s(DIGITS, 4);
        block += 1;
        // Plain code most of the time; a credential-sounding name (`token`,
        // `apiKey`) in one block of ten, about as often as in real code.
        if block % 10 != 0 {
            body.push_str(&format!(
                "    result_{n} = compute(values[{n}], offset={n}) + len(items)\n    if result_{n} > limit:\n        log.debug(\"value %d out of range\", result_{n})\n"
            ));
            continue;
        }
        body.push_str(&match ext {
            "py" => format!("def handler_{n}(event):\n    token = os.environ['TOKEN']\n    return {{'id': {n}, 'name': 'item{n}'}}\n\n"),
            "js" => format!("export function f{n}(a, b) {{\n  const apiKey = process.env.API_KEY;\n  return a + b + {n};\n}}\n"),
            "rs" => format!("pub fn f{n}(x: u32) -> u32 {{\n    // compute the value\n    x.wrapping_mul({n})\n}}\n"),
            "go" => format!("func F{n}(ctx context.Context) error {{\n\treturn nil // id {n}\n}}\n"),
            "md" => format!("## Section {n}\n\nSet `API_KEY=YOUR_API_KEY` and see https://example.com/docs/{n}.\n\n"),
            "json" => format!("{{\"name\": \"pkg{n}\", \"version\": \"1.0.{n}\", \"integrity\": \"sha512-{}==\"}}\n", r.s(B64, 86)),
            _ => format!("service: s{n}\nreplicas: 3\nimage: registry/s{n}:latest\n"),
        });
    }
    text(
        format!("src/m{}/f{i}.{ext}", i / 100),
        "filler",
        false,
        body,
    )
}

/// Write the corpus under `root` (`variants` samples of every format, and
/// `filler` benign files of `kib` KiB). Returns the labels.
pub fn generate(
    root: &Path,
    seed: u64,
    variants: usize,
    filler_files: usize,
    kib: usize,
) -> Vec<Sample> {
    let mut r = Rng::new(seed);
    let mut all = Vec::new();
    for i in 0..variants {
        all.extend(format_samples(&mut r, i));
    }
    for i in 0..filler_files {
        all.push(filler(&mut r, i, kib));
    }
    for s in &mut all {
        let p = root.join(&s.rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, &s.bytes).expect("write");
        s.bytes = Vec::new();
    }
    all
}

/// Per-format (true positives, positives, false positives, negatives).
pub fn score(
    samples: &[Sample],
    flagged: &std::collections::HashSet<String>,
) -> std::collections::BTreeMap<&'static str, [usize; 4]> {
    let mut m: std::collections::BTreeMap<&'static str, [usize; 4]> = Default::default();
    for s in samples {
        let e = m.entry(s.format).or_default();
        let hit = flagged.contains(&s.rel);
        if s.positive {
            e[1] += 1;
            e[0] += usize::from(hit);
        } else {
            e[3] += 1;
            e[2] += usize::from(hit);
        }
    }
    m
}
