//! The Landlock part of the plan (pure: reads directory listings, makes no
//! privileged syscall).
//!
//! Landlock rights are an allow-list and they *inherit downwards*: a right
//! granted on a directory holds for everything beneath it, and there is no
//! "deny" rule. So a path that must get *fewer* rights than the tree it sits in
//! (a secret in landlock-only mode, a protected path inside the read-write
//! workspace) cannot be expressed by adding a rule; the tree's rule has to be
//! *carved*: the tree itself keeps only what the carved path may have
//! (listing, adding entries), and every sibling on the way down to the carved
//! path gets the tree's full rights on its own rule.
//!
//! Consequences, stated honestly:
//! - direct entries of a carved directory cannot be removed, renamed away or
//!   written through the directory's own rule (their own sibling rule still
//!   lets files be rewritten in place and subdirectories be used freely);
//! - an entry created in a carved directory *after* the plan was built has no
//!   rule of its own: it can be created (and renamed into) but not written;
//! - Landlock cannot tell a new file from an existing one, so under a protected
//!   path a freshly created file cannot be written either; additions work by
//!   creating the file elsewhere and renaming it in (REFER);
//! - a hard link to a secret *outside* the carved directories stays readable
//!   (links among the carved siblings are detected and dropped);
//! - a symlink sibling gets no rule: the kernel checks its target's own rules.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What the Landlock builder needs to know about the view.
#[derive(Debug, Clone, Default)]
pub struct LandlockInput {
    /// Paths readable and executable.
    pub ro: Vec<PathBuf>,
    /// Paths readable and writable.
    pub rw: Vec<PathBuf>,
    /// Paths readable where new entries may be added, but nothing removed, truncated or overwritten.
    pub protect: Vec<PathBuf>,
    /// Paths that must stay unreadable (landlock-only mode shapes the rules around them).
    pub deny: Vec<PathBuf>,
    /// Whether the host network is shared (then TCP port rules apply).
    pub host_net: bool,
    /// No TCP connect or bind at all (landlock-only mode, network "none").
    pub no_tcp: bool,
    /// TCP connect to this port only, no bind (landlock-only mode, network "proxy").
    pub tcp_only_to: Option<u16>,
    pub connect_ports: Vec<u16>,
    pub bind_ports: Vec<u16>,
    /// Minimum ABI the profile requires (0: not required).
    pub min_abi: u8,
    pub best_effort: bool,
}

/// One path rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PathRule {
    #[serde(serialize_with = "crate::pathfmt::ser")]
    pub path: PathBuf,
    pub access: Access,
    /// A required rule whose path cannot be opened is an error; an optional one
    /// (a sibling found while carving) is skipped and reported.
    pub required: bool,
    /// Why the rule exists.
    pub reason: String,
}

/// An access class: what a rule grants, by the table [`Access::rights`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    Ro,
    Rw,
    /// Readable; nothing added, removed, renamed, truncated or overwritten
    /// (as the read-only bind of the full mode).
    Protect,
    /// A carved read-only directory: listable; its entries get their own rules.
    DirRo,
    /// A carved writable directory: listable, entries may be added.
    DirRw,
}

/// A Landlock filesystem right (`LANDLOCK_ACCESS_FS_*`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Right {
    Execute,
    ReadFile,
    ReadDir,
    WriteFile,
    RemoveDir,
    RemoveFile,
    MakeChar,
    MakeDir,
    MakeReg,
    MakeSock,
    MakeFifo,
    MakeBlock,
    MakeSym,
    Refer,
    Truncate,
    IoctlDev,
}

impl Access {
    pub const ALL: [Access; 5] = [
        Access::Ro,
        Access::Rw,
        Access::Protect,
        Access::DirRo,
        Access::DirRw,
    ];

    /// The rights each class grants: the whole filesystem policy. The
    /// executor maps each [`Right`] to the kernel's flag and nothing else.
    pub fn rights(self) -> &'static [Right] {
        use Right::*;
        match self {
            Access::Ro | Access::Protect => &[Execute, ReadFile, ReadDir],
            Access::Rw => &[
                Execute, ReadFile, ReadDir, WriteFile, RemoveDir, RemoveFile, MakeChar, MakeDir,
                MakeReg, MakeSock, MakeFifo, MakeBlock, MakeSym, Refer, Truncate, IoctlDev,
            ],
            Access::DirRo => &[ReadDir],
            Access::DirRw => &[
                ReadDir, MakeReg, MakeDir, MakeSym, MakeSock, MakeFifo, Refer,
            ],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Access::Ro => "ro",
            Access::Rw => "rw",
            Access::Protect => "protect",
            Access::DirRo => "dir-ro",
            Access::DirRw => "dir-rw",
        }
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The rights of an access class.
pub fn rights_of(class: Access) -> &'static [Right] {
    class.rights()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LandlockPlan {
    pub min_abi: u8,
    pub best_effort: bool,
    pub rules: Vec<PathRule>,
    /// Paths left without any rule on purpose (landlock-only secrets).
    #[serde(serialize_with = "crate::pathfmt::ser_vec")]
    pub denied: Vec<PathBuf>,
    pub scope_abstract_unix: bool,
    pub scope_signals: bool,
    /// TCP ports that may be connected to (None: TCP not restricted by Landlock,
    /// e.g. because the network namespace already cuts the network).
    pub connect_ports: Option<Vec<u16>>,
    pub bind_ports: Option<Vec<u16>>,
    /// Things the shaping could not do or chose not to do.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carve {
    /// No rule at all.
    Deny,
    /// The protect class.
    Protect,
}

pub fn build(input: &LandlockInput) -> LandlockPlan {
    let mut plan = LandlockPlan {
        min_abi: input.min_abi,
        best_effort: input.best_effort,
        scope_abstract_unix: true,
        scope_signals: true,
        // Only a listed kind of access is restricted: `--net host` without a
        // port list keeps plain TCP working (the user chose to share the network).
        connect_ports: if input.no_tcp {
            Some(Vec::new())
        } else if let Some(port) = input.tcp_only_to {
            Some(vec![port])
        } else {
            (input.host_net && !input.connect_ports.is_empty())
                .then(|| sorted(&input.connect_ports))
        },
        bind_ports: if input.no_tcp || input.tcp_only_to.is_some() {
            Some(Vec::new())
        } else {
            (input.host_net && !input.bind_ports.is_empty()).then(|| sorted(&input.bind_ports))
        },
        ..Default::default()
    };

    let writable = |p: &Path| input.rw.iter().any(|r| p.starts_with(r));

    // Base grants: one class per path; on a duplicate the narrower class wins
    // for protect, the wider for ro vs rw (a read-only bind enforces ro there).
    let mut base: Vec<(PathBuf, Access, String)> = Vec::new();
    let mut put = |p: &Path, class: Access, why: String| {
        if let Some(e) = base.iter_mut().find(|(q, _, _)| q == p) {
            if class == Access::Protect || (e.1 == Access::Ro && class == Access::Rw) {
                *e = (p.to_path_buf(), class, why);
            }
        } else {
            base.push((p.to_path_buf(), class, why));
        }
    };
    for p in &input.ro {
        put(p, Access::Ro, "read-only in the view".into());
    }
    for p in &input.rw {
        put(p, Access::Rw, "read-write in the view".into());
    }
    let mut carves: Vec<(PathBuf, Carve)> = Vec::new();
    for p in &input.protect {
        if writable(p) {
            put(p, Access::Protect, "protected: add only".into());
            carves.push((p.clone(), Carve::Protect));
        } else {
            put(p, Access::Ro, "protected (in a read-only tree)".into());
        }
    }
    for p in &input.deny {
        carves.push((p.clone(), Carve::Deny));
    }
    // A grant of a denied path itself is dropped.
    base.retain(|(p, _, _)| {
        let denied = input.deny.iter().any(|d| d == p);
        if denied {
            plan.notes
                .push(format!("{}: denied, its own grant is dropped", p.display()));
        }
        !denied
    });

    let deny_ids: Vec<(u64, u64)> = input.deny.iter().filter_map(|d| file_id(d)).collect();

    for (path, class, why) in &base {
        // Carve-outs strictly beneath this grant that need fewer rights than it gives.
        let under: Vec<(PathBuf, Carve)> = carves
            .iter()
            .filter(|(c, kind)| {
                c != path
                    && c.starts_with(path)
                    && match kind {
                        Carve::Deny => true,
                        Carve::Protect => *class == Access::Rw,
                    }
            })
            .cloned()
            .collect();
        if under.is_empty() {
            plan.rules.push(PathRule {
                path: path.clone(),
                access: *class,
                required: true,
                reason: why.clone(),
            });
        } else {
            carve(path, *class, &under, &deny_ids, true, &mut plan);
        }
    }
    for d in &input.deny {
        if !base.iter().any(|(p, _, _)| d.starts_with(p)) {
            plan.notes.push(format!(
                "{}: denied, and no rule reaches it anyway",
                d.display()
            ));
        }
        plan.denied.push(d.clone());
    }
    plan
}

/// Replace the grant `class` on directory `dir` by a carved rule on `dir`
/// itself plus one rule per entry, recursing towards each carve-out.
fn carve(
    dir: &Path,
    class: Access,
    under: &[(PathBuf, Carve)],
    deny_ids: &[(u64, u64)],
    required: bool,
    plan: &mut LandlockPlan,
) {
    let adds = class.rights().contains(&Right::MakeReg);
    let denied_dir_beneath = under
        .iter()
        .any(|(c, k)| *k == Carve::Deny && !c.is_symlink() && c.is_dir());
    let dir_class = match (adds, denied_dir_beneath) {
        (true, false) => Some(Access::DirRw),
        // Rights inherit downwards: the carved directory's make_* and refer
        // would let the command create entries (a symlink, a config file)
        // *inside* the denied directory. So a directory holding a denied
        // directory gets no rule at all: its other entries keep their own.
        (true, true) => None,
        (false, false) => Some(Access::DirRo),
        (false, true) => None,
    };
    if let Some(dc) = dir_class {
        plan.rules.push(PathRule {
            path: dir.to_path_buf(),
            access: dc,
            required,
            reason: format!("carved {class}: holds a path with fewer rights"),
        });
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => {
            let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            v.sort();
            v
        }
        Err(e) => {
            // Fail closed: the directory keeps only its carved rule.
            plan.notes.push(format!(
                "{}: cannot list ({e}); its entries get no {class} rule",
                dir.display()
            ));
            return;
        }
    };
    for entry in entries {
        if let Some((_, kind)) = under.iter().find(|(c, _)| *c == entry) {
            if *kind == Carve::Deny {
                continue; // the secret itself: no rule
            }
            continue; // a protected path: its own base rule covers it
        }
        let deeper: Vec<(PathBuf, Carve)> = under
            .iter()
            .filter(|(c, _)| c.starts_with(&entry))
            .cloned()
            .collect();
        let meta = match std::fs::symlink_metadata(&entry) {
            Ok(m) => m,
            Err(_) => continue, // vanished while listing
        };
        if meta.file_type().is_symlink() {
            continue; // its target is checked under its own rules
        }
        if !deeper.is_empty() {
            if meta.is_dir() {
                carve(&entry, class, &deeper, deny_ids, false, plan);
            }
            continue;
        }
        if meta.is_file() && meta_id(&meta).is_some_and(|id| deny_ids.contains(&id)) {
            plan.notes.push(format!(
                "{}: a hard link to a denied file; no rule",
                entry.display()
            ));
            continue;
        }
        plan.rules.push(PathRule {
            path: entry,
            access: class,
            required: false,
            reason: format!("sibling in carved {}", dir.display()),
        });
    }
}

fn file_id(p: &Path) -> Option<(u64, u64)> {
    let m = std::fs::symlink_metadata(p).ok()?;
    if m.is_file() {
        meta_id(&m)
    } else {
        None
    }
}

fn meta_id(m: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((m.dev(), m.ino()))
}

fn sorted(v: &[u16]) -> Vec<u16> {
    let s: BTreeSet<u16> = v.iter().copied().collect();
    s.into_iter().collect()
}

impl LandlockPlan {
    /// Lines for `--dry-run`.
    pub fn describe(&self) -> Vec<String> {
        let mut out = vec![format!(
            "min ABI {}{}, {} path rules, scopes: {}",
            self.min_abi,
            if self.best_effort {
                " (best effort)"
            } else {
                ""
            },
            self.rules.len(),
            match (self.scope_abstract_unix, self.scope_signals) {
                (true, true) => "abstract-unix-socket, signal (ABI 6+)",
                (true, false) => "abstract-unix-socket (ABI 6+)",
                (false, true) => "signal (ABI 6+)",
                (false, false) => "none",
            }
        )];
        // Siblings found while carving are many: one line per carved directory and class.
        let mut i = 0;
        while i < self.rules.len() {
            let r = &self.rules[i];
            let parent = r.path.parent();
            let run = self.rules[i..]
                .iter()
                .take_while(|q| !q.required && q.access == r.access && q.path.parent() == parent)
                .count();
            if run > 1 {
                let names: Vec<String> = self.rules[i..i + run]
                    .iter()
                    .filter_map(|q| q.path.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .collect();
                let shown = if names.len() > 6 {
                    format!("{}, … ({} entries)", names[..6].join(", "), names.len())
                } else {
                    names.join(", ")
                };
                out.push(format!(
                    "  {:<8} {}/{{{shown}}}  # siblings in a carved directory",
                    r.access,
                    parent.map(|p| p.display().to_string()).unwrap_or_default(),
                ));
                i += run;
                continue;
            }
            out.push(format!(
                "  {:<8} {}{}  # {}",
                r.access,
                r.path.display(),
                if r.required { "" } else { " (optional)" },
                r.reason
            ));
            i += 1;
        }
        for d in &self.denied {
            out.push(format!("  {:<8} {}", "deny", d.display()));
        }
        match (&self.connect_ports, &self.bind_ports) {
            (None, None) => out.push("  tcp: not restricted by Landlock".into()),
            (c, b) => {
                let show = |v: &Option<Vec<u16>>| match v {
                    Some(p) => format!("only {p:?}"),
                    None => "any port".into(),
                };
                out.push(format!(
                    "  tcp (ABI 4+): connect {}, bind {}",
                    show(c),
                    show(b)
                ))
            }
        }
        for n in &self.notes {
            out.push(format!("  note: {n}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn rule(path: &Path, access: Access, required: bool) -> (PathBuf, Access, bool) {
        (path.to_path_buf(), access, required)
    }

    fn rules(plan: &LandlockPlan) -> Vec<(PathBuf, Access, bool)> {
        plan.rules
            .iter()
            .map(|r| (r.path.clone(), r.access, r.required))
            .collect()
    }

    #[test]
    fn plain_view_maps_one_rule_per_path() {
        let input = LandlockInput {
            ro: vec!["/usr".into(), "/etc".into()],
            rw: vec!["/work".into(), "/tmp".into()],
            min_abi: 3,
            ..Default::default()
        };
        let plan = build(&input);
        assert_eq!(
            rules(&plan),
            vec![
                rule(Path::new("/usr"), Access::Ro, true),
                rule(Path::new("/etc"), Access::Ro, true),
                rule(Path::new("/work"), Access::Rw, true),
                rule(Path::new("/tmp"), Access::Rw, true),
            ]
        );
        assert_eq!(plan.min_abi, 3);
        assert!(plan.scope_abstract_unix && plan.scope_signals);
        assert_eq!(plan.connect_ports, None);
        assert!(plan.denied.is_empty());
    }

    #[test]
    fn host_net_gets_sorted_port_lists() {
        let input = LandlockInput {
            host_net: true,
            connect_ports: vec![443, 80, 443],
            bind_ports: vec![],
            ..Default::default()
        };
        let plan = build(&input);
        assert_eq!(plan.connect_ports, Some(vec![80, 443]));
        assert_eq!(plan.bind_ports, None, "an empty list leaves bind alone");
        let plan = build(&LandlockInput {
            connect_ports: vec![443],
            ..Default::default()
        });
        assert_eq!(
            plan.connect_ports, None,
            "no host network: the netns cuts TCP"
        );
    }

    #[test]
    fn protect_in_readonly_tree_is_just_readonly() {
        let input = LandlockInput {
            ro: vec!["/usr".into()],
            protect: vec!["/usr/share".into()],
            ..Default::default()
        };
        assert_eq!(
            rules(&build(&input)),
            vec![
                rule(Path::new("/usr"), Access::Ro, true),
                rule(Path::new("/usr/share"), Access::Ro, true)
            ]
        );
    }

    /// ws/{a.txt, src/{main.rs, .env, lib/x.rs}, .git/{hooks/, HEAD}, link -> src/.env}
    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().expect("tempdir");
        let w = t.path();
        fs::create_dir_all(w.join("src/lib")).expect("mkdir");
        fs::create_dir_all(w.join(".git/hooks")).expect("mkdir");
        fs::write(w.join("a.txt"), "a").expect("write");
        fs::write(w.join("src/main.rs"), "m").expect("write");
        fs::write(w.join("src/.env"), "SECRET=1").expect("write");
        fs::write(w.join("src/lib/x.rs"), "x").expect("write");
        fs::write(w.join(".git/HEAD"), "h").expect("write");
        std::os::unix::fs::symlink("src/.env", w.join("link")).expect("symlink");
        t
    }

    #[test]
    fn denied_file_is_carved_out_of_a_writable_tree() {
        let t = tree();
        let w = t.path();
        let input = LandlockInput {
            ro: vec!["/usr".into()],
            rw: vec![w.to_path_buf()],
            deny: vec![w.join("src/.env")],
            ..Default::default()
        };
        let plan = build(&input);
        assert_eq!(
            rules(&plan),
            vec![
                rule(Path::new("/usr"), Access::Ro, true),
                rule(w, Access::DirRw, true),
                rule(&w.join(".git"), Access::Rw, false),
                rule(&w.join("a.txt"), Access::Rw, false),
                // `link` is a symlink: no rule
                rule(&w.join("src"), Access::DirRw, false),
                rule(&w.join("src/lib"), Access::Rw, false),
                rule(&w.join("src/main.rs"), Access::Rw, false),
            ]
        );
        assert_eq!(plan.denied, vec![w.join("src/.env")]);
        let text = plan.describe().join("\n");
        assert!(
            text.contains("rw       ") && text.contains("/{.git, a.txt}"),
            "{text}"
        );
        assert!(text.contains(&format!("deny     {}", w.join("src/.env").display())));
    }

    #[test]
    fn denied_dir_removes_listing_from_ancestors() {
        let t = tree();
        let w = t.path();
        let input = LandlockInput {
            rw: vec![w.to_path_buf()],
            ro: vec!["/opt/ro".into()],
            deny: vec![w.join("src/lib")],
            ..Default::default()
        };
        let plan = build(&input);
        assert_eq!(
            rules(&plan),
            vec![
                rule(Path::new("/opt/ro"), Access::Ro, true),
                rule(&w.join(".git"), Access::Rw, false),
                rule(&w.join("a.txt"), Access::Rw, false),
                rule(&w.join("src/.env"), Access::Rw, false),
                rule(&w.join("src/main.rs"), Access::Rw, false),
            ]
        );
    }

    #[test]
    fn denied_file_in_readonly_tree_keeps_siblings_readable() {
        let t = tree();
        let w = t.path();
        let input = LandlockInput {
            ro: vec![w.to_path_buf()],
            deny: vec![w.join("src/.env")],
            ..Default::default()
        };
        assert_eq!(
            rules(&build(&input)),
            vec![
                rule(w, Access::DirRo, true),
                rule(&w.join(".git"), Access::Ro, false),
                rule(&w.join("a.txt"), Access::Ro, false),
                rule(&w.join("src"), Access::DirRo, false),
                rule(&w.join("src/lib"), Access::Ro, false),
                rule(&w.join("src/main.rs"), Access::Ro, false),
            ]
        );
    }

    #[test]
    fn protected_path_in_writable_tree_is_carved() {
        let t = tree();
        let w = t.path();
        let input = LandlockInput {
            rw: vec![w.to_path_buf()],
            protect: vec![w.join(".git/hooks")],
            ..Default::default()
        };
        assert_eq!(
            rules(&build(&input)),
            vec![
                rule(w, Access::DirRw, true),
                rule(&w.join(".git"), Access::DirRw, false),
                rule(&w.join(".git/HEAD"), Access::Rw, false),
                rule(&w.join("a.txt"), Access::Rw, false),
                rule(&w.join("src"), Access::Rw, false),
                rule(&w.join(".git/hooks"), Access::Protect, true),
            ]
        );
    }

    #[test]
    fn hard_link_to_denied_file_gets_no_rule() {
        let t = tree();
        let w = t.path();
        fs::hard_link(w.join("src/.env"), w.join("src/copy")).expect("link");
        let input = LandlockInput {
            rw: vec![w.to_path_buf()],
            deny: vec![w.join("src/.env")],
            ..Default::default()
        };
        let plan = build(&input);
        assert!(!plan.rules.iter().any(|r| r.path == w.join("src/copy")));
        assert!(plan.notes.iter().any(|n| n.contains("hard link")));
    }

    #[test]
    fn denying_a_granted_path_drops_the_grant() {
        let input = LandlockInput {
            ro: vec!["/a".into(), "/b".into()],
            deny: vec!["/b".into()],
            ..Default::default()
        };
        let plan = build(&input);
        assert_eq!(rules(&plan), vec![rule(Path::new("/a"), Access::Ro, true)]);
    }

    #[test]
    fn every_class_is_in_the_table() {
        for c in Access::ALL {
            assert!(!rights_of(c).is_empty(), "{c}");
        }
        for r in [
            Right::RemoveFile,
            Right::Truncate,
            Right::WriteFile,
            Right::MakeReg,
        ] {
            assert!(!rights_of(Access::Protect).contains(&r));
        }
    }
}
