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
