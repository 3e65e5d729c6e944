//! The Debian package as users get it (issue 13, ship list): built from
//! `[package.metadata.deb]` in Cargo.toml, installed with dpkg into a
//! temporary root, the installed `review-sync check` run on the installed
//! example config with its credentials where the README puts them, then
//! removed (the edited conffile stays) and purged (nothing stays).
//!
//! How the package is built: with cargo-deb when it is installed (what the
//! README tells users to run), from the debug binary so the test does not
//! need a 6-minute release build. Without cargo-deb, the same asset list,
//! conffiles and unit placement are packed with `dpkg-deb --build`, which
//! tests everything but cargo-deb's generated systemd maintainer scripts;
//! the test says which one it used. Maintainer scripts run with the
//! systemd helpers replaced by stubs on PATH, so nothing touches the host.

use crate::helpers::text;
use crate::monitoring::which;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `[package.metadata.deb]` of Cargo.toml.
fn metadata() -> toml::Table {
    let cargo: toml::Table = std::fs::read_to_string(root().join("Cargo.toml"))
        .expect("Cargo.toml")
        .parse()
        .expect("TOML");
    cargo["package"]["metadata"]["deb"]
        .as_table()
        .expect("[package.metadata.deb]")
        .clone()
}

/// Where cargo-deb puts the systemd unit.
const UNIT_DIR: &str = "usr/lib/systemd/system";

/// (source file, path in the package without the leading /, mode) for
/// every asset, with the globs expanded and the release binary replaced by
/// the test's, plus the unit as cargo-deb installs it.
fn assets(meta: &toml::Table) -> Vec<(PathBuf, String, u32)> {
    let mut out = Vec::new();
    for asset in meta["assets"].as_array().expect("assets") {
        let a = asset.as_array().expect("[src, dest, mode]");
        let (src, dest, mode) = (
            a[0].as_str().expect("src"),
            a[1].as_str().expect("dest"),
            u32::from_str_radix(a[2].as_str().expect("mode"), 8).expect("octal mode"),
        );
        let sources: Vec<PathBuf> = if src == "target/release/review-sync" {
            vec![PathBuf::from(env!("CARGO_BIN_EXE_review-sync"))]
        } else {
            let pattern = root().join(src).display().to_string();
            let found: Vec<PathBuf> = glob::glob(&pattern)
                .expect("pattern")
                .map(|p| p.expect("path"))
                .collect();
            assert!(!found.is_empty(), "asset {src} matches no file");
            found
        };
        for source in sources {
            let target = if dest.ends_with('/') {
                let name = if src == "target/release/review-sync" {
                    "review-sync".to_owned()
                } else {
                    source
                        .file_name()
                        .expect("name")
                        .to_string_lossy()
                        .into_owned()
                };
                format!("{dest}{name}")
            } else {
                dest.to_owned()
            };
            out.push((source, target, mode));
        }
    }
    out.push((
        root().join("systemd/review-sync.service"),
        format!("{UNIT_DIR}/review-sync.service"),
        0o644,
    ));
    out
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        text(&out).0,
        text(&out).1
    );
    out
}

/// Packs the assets with dpkg-deb, as cargo-deb would lay them out.
fn build_with_dpkg_deb(meta: &toml::Table, work: &Path) -> PathBuf {
    let tree = work.join("pkg");
    for (source, target, mode) in assets(meta) {
        // cargo-deb compresses man pages, as Debian policy asks.
        let man = target.starts_with("usr/share/man/");
        let path = tree.join(if man { format!("{target}.gz") } else { target });
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        if man {
            let gz = run(Command::new("gzip").args(["-9nc"]).arg(&source)).stdout;
            std::fs::write(&path, gz).expect("write man page");
        } else {
            std::fs::copy(&source, &path).expect("copy asset");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    // cargo-deb writes the copyright file from `copyright` and `license`.
    std::fs::write(
        tree.join("usr/share/doc/review-sync/copyright"),
        format!(
            "Copyright: {}\nLicense: {}\n",
            meta["copyright"].as_str().expect("copyright"),
            env!("CARGO_PKG_LICENSE")
        ),
    )
    .expect("copyright");
    let debian = tree.join("DEBIAN");
    std::fs::create_dir_all(&debian).expect("mkdir");
    let arch = String::from_utf8(run(Command::new("dpkg").arg("--print-architecture")).stdout)
        .expect("utf-8");
    let description = meta["extended-description"]
        .as_str()
        .expect("description")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    std::fs::write(
        debian.join("control"),
        format!(
            "Package: review-sync\nVersion: {}-1\nArchitecture: {}\nMaintainer: {}\n\
             Section: {}\nPriority: {}\nDepends: libc6\nDescription: {}\n {}\n",
            env!("CARGO_PKG_VERSION"),
            arch.trim(),
            meta["maintainer"].as_str().expect("maintainer"),
            meta["section"].as_str().expect("section"),
            meta["priority"].as_str().expect("priority"),
            env!("CARGO_PKG_DESCRIPTION"),
            description
        ),
    )
    .expect("control");
    let conffiles: Vec<&str> = meta["conf-files"]
        .as_array()
        .expect("conf-files")
        .iter()
        .map(|c| c.as_str().expect("path"))
        .collect();
    std::fs::write(debian.join("conffiles"), conffiles.join("\n") + "\n").expect("conffiles");
    let deb = work.join("review-sync.deb");
    // No compression: the debug binary is about 200 MB, and xz would take minutes.
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Znone", "--build"])
        .arg(&tree)
        .arg(&deb));
    deb
}

/// Builds the package with cargo-deb from the debug binary, when cargo-deb
/// is installed.
fn build_with_cargo_deb(work: &Path) -> Option<PathBuf> {
    // `cargo install` puts it in ~/.cargo/bin, which may not be on PATH.
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let cargo_deb = which("cargo-deb").or_else(|| {
        home.map(|h| h.join("bin/cargo-deb"))
            .filter(|p| p.is_file())
    })?;
    let out_dir = work.join("cargo-deb");
    std::fs::create_dir_all(&out_dir).expect("mkdir");
    let out = Command::new(cargo_deb)
        .args([
            "--no-build",
            "--no-strip",
            "--no-dbgsym",
            "--fast",
            "--profile",
            "dev",
            "--output",
        ])
        .arg(&out_dir)
        .current_dir(root())
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("cargo-deb runs");
    assert!(out.status.success(), "cargo deb failed: {}", text(&out).1);
    std::fs::read_dir(&out_dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.extension().is_some_and(|e| e == "deb") && !p.to_string_lossy().contains("dbgsym")
        })
}

/// The target directory of this build (the test binary's grandparent).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_review-sync"))
        .ancestors()
        .nth(2)
        .expect("target dir")
        .to_owned()
}

/// The regular files a package holds (`dpkg-deb -c`), without the leading `./`.
fn files_of(deb: &Path) -> BTreeSet<String> {
    let out = run(Command::new("dpkg-deb").arg("-c").arg(deb));
    text(&out)
        .0
        .lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split(" ./").nth(1))
        .map(str::to_owned)
        .collect()
}

/// dpkg on the temporary root, with the systemd helpers stubbed (they log
/// their arguments to `calls`).
struct Dpkg {
    root: PathBuf,
    stubs: PathBuf,
}

impl Dpkg {
    fn new(work: &Path) -> Dpkg {
        let root = work.join("root");
        let admin = root.join("var/lib/dpkg");
        for dir in ["info", "updates", "triggers", "alternatives"] {
            std::fs::create_dir_all(admin.join(dir)).expect("mkdir");
        }
        for file in ["status", "available"] {
            std::fs::write(admin.join(file), "").expect("admin file");
        }
        let stubs = work.join("stubs");
        std::fs::create_dir_all(&stubs).expect("mkdir");
        for tool in ["deb-systemd-helper", "deb-systemd-invoke", "systemctl"] {
            let path = stubs.join(tool);
            std::fs::write(
                &path,
                // `was-enabled` answers no, as on a fresh install: the
                // package must not enable the service by itself.
                format!(
                    "#!/bin/sh\necho \"{tool} $*\" >> \"{}\"\n\
                     case \"$*\" in *was-enabled*) exit 1;; esac\n",
                    work.join("calls").display()
                ),
            )
            .expect("stub");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        Dpkg { root, stubs }
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new("dpkg");
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.arg(format!("--root={}", self.root.display()))
            .args([
                "--force-depends",
                "--force-script-chrootless",
                "--force-not-root",
            ])
            .env("PATH", format!("{}:{path}", self.stubs.display()));
        cmd
    }

    fn status(&self) -> String {
        let out = self
            .cmd()
            .args(["-s", "review-sync"])
            .output()
            .expect("dpkg -s");
        text(&out).0
    }

    /// Regular files and symlinks under the root, outside dpkg's database.
    fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, skip: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.starts_with(skip) {
                    continue;
                }
                if path.is_dir() && !path.is_symlink() {
                    walk(&path, skip, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &self.root.join("var/lib/dpkg"), &mut out);
        out
    }
}

/// The secrets of the installed example config, by form: `(form, name)`
/// for `{ env = NAME }`, `{ file = NAME }`, `{ credential = NAME }`.
fn secrets(config: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for line in config.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for form in ["env", "file", "credential"] {
            if let Some(rest) = line.split(&format!("{{ {form} = \"")).nth(1)
                && let Some(name) = rest.split('"').next()
            {
                out.push((form, name.to_owned()));
            }
        }
    }
    out
}

/// Supplies every secret of `config` the way the README says: credentials
/// as files of a directory (systemd's LoadCredential=), `{ file }` next to
/// the config, `{ env }` in the environment. The credentials directory,
/// the environment, and the files written next to the config.
fn supply_secrets(
    dpkg: &Dpkg,
    config: &str,
    work: &Path,
) -> (PathBuf, Vec<(String, String)>, Vec<PathBuf>) {
    let credentials = work.join("credentials");
    std::fs::create_dir_all(&credentials).expect("mkdir");
    let (mut env, mut files) = (Vec::new(), Vec::new());
    for (form, name) in secrets(config) {
        let value = format!("value-of-{name}\n");
        match form {
            "credential" => std::fs::write(credentials.join(&name), value).expect("write"),
            "file" => {
                assert!(
                    !name.starts_with('/'),
                    "an absolute secret path in the example: {name}"
                );
                let path = dpkg.root.join("etc/review-sync").join(&name);
                std::fs::write(&path, value).expect("write");
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .expect("chmod");
                files.push(path);
            }
            _ => env.push((name.clone(), format!("value-of-{name}"))),
        }
    }
    (credentials, env, files)
}

/// Runs the installed `review-sync check` on the installed config, with
/// the credentials in `credentials` (`None`: none), where the state
/// directory systemd's `StateDirectory=` would create exists: a private
/// mount namespace with a tmpfs on /var/lib, when `unshare` may.
fn installed_check(dpkg: &Dpkg, credentials: Option<&Path>, env: &[(String, String)]) -> Output {
    let bin = dpkg.root.join("usr/bin/review-sync");
    let config = dpkg.root.join("etc/review-sync/config.toml");
    let check = format!("{} --config {} check", bin.display(), config.display());
    let namespaced = Command::new("unshare")
        .args(["-m", "--propagation", "private", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut cmd = if namespaced {
        let mut c = Command::new("unshare");
        c.args(["-m", "--propagation", "private", "sh", "-c"]).arg(format!(
            "mount -t tmpfs tmpfs /var/lib && mkdir -m 0700 /var/lib/review-sync && exec {check}"
        ));
        c
    } else {
        eprintln!(
            "package: no private mount namespace here: check runs without the state directory"
        );
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!("exec {check}"));
        c
    };
    cmd.env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("REVIEW_SYNC_CONFIG")
        .env_remove("RUST_LOG");
    if let Some(dir) = credentials {
        cmd.env("CREDENTIALS_DIRECTORY", dir);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("check runs")
}

#[test]
fn the_package_installs_checks_and_purges_cleanly() {
    if which("dpkg").is_none() || which("dpkg-deb").is_none() {
        eprintln!("package: SKIPPED: dpkg is not installed here");
        return;
    }
    let meta = metadata();
    let work = tempfile::tempdir().expect("tempdir");
    let mirror = build_with_dpkg_deb(&meta, work.path());
    let deb = match build_with_cargo_deb(work.path()) {
        Some(deb) => {
            // What cargo-deb ships is what the asset list says.
            assert_eq!(
                files_of(&deb),
                files_of(&mirror),
                "cargo-deb and the asset list disagree"
            );
            eprintln!("package: built with cargo-deb: {}", deb.display());
            deb
        }
        None => {
            eprintln!(
                "package: cargo-deb is not installed: built from [package.metadata.deb] with dpkg-deb"
            );
            mirror.clone()
        }
    };
    let files = files_of(&deb);
    for want in [
        "usr/bin/review-sync",
        "etc/review-sync/config.toml",
        "usr/share/man/man1/review-sync.1.gz",
        "usr/share/man/man1/review-sync-completions.1.gz",
        "usr/share/bash-completion/completions/review-sync",
        "usr/share/zsh/vendor-completions/_review-sync",
        "usr/share/fish/vendor_completions.d/review-sync.fish",
        "usr/share/doc/review-sync/review-sync.rules.yml",
        "usr/share/doc/review-sync/review-sync.json",
    ] {
        assert!(
            files.contains(want),
            "{want} not in the package: {files:#?}"
        );
    }
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("systemd/system/review-sync.service")),
        "{files:#?}"
    );

    // Install.
    let dpkg = Dpkg::new(work.path());
    run(dpkg.cmd().arg("--install").arg(&deb));
    let status = dpkg.status();
    assert!(status.contains("Status: install ok installed"), "{status}");
    assert!(
        status.contains("/etc/review-sync/config.toml"),
        "conffile: {status}"
    );
    let bin = dpkg.root.join("usr/bin/review-sync");
    let mode = std::fs::metadata(&bin)
        .expect("installed binary")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let version = run(Command::new(&bin).arg("--version"));
    assert!(text(&version).0.contains(env!("CARGO_PKG_VERSION")));

    // `check` on the installed example: refused without the credentials
    // (exit 78, each one named), clean with them in the directory systemd
    // would hand over (README: one file per secret, LoadCredential=).
    let config = std::fs::read_to_string(dpkg.root.join("etc/review-sync/config.toml"))
        .expect("installed config");
    assert!(secrets(&config).len() >= 5, "{:?}", secrets(&config));
    let out = installed_check(&dpkg, None, &[]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out).1);
    let (credentials, env, admin_files) = supply_secrets(&dpkg, &config, work.path());
    let out = installed_check(&dpkg, Some(&credentials), &env);
    assert!(
        out.status.success(),
        "check of the installed example failed:\n{}\n{}",
        text(&out).0,
        text(&out).1
    );
    eprintln!("package: installed check: {}", text(&out).0.trim());

    // The admin edits the conffile; a reinstall (an upgrade) keeps it, a
    // removal keeps it, a purge removes it, and nothing else remains.
    let conffile = dpkg.root.join("etc/review-sync/config.toml");
    let edited = format!("{config}\n# edited by the admin\n");
    std::fs::write(&conffile, &edited).expect("edit");
    run(dpkg.cmd().args(["--force-confold", "--install"]).arg(&deb));
    assert_eq!(
        std::fs::read_to_string(&conffile).expect("conffile"),
        edited
    );
    run(dpkg.cmd().args(["--remove", "review-sync"]));
    assert!(!bin.exists(), "binary removed");
    assert!(
        !dpkg
            .root
            .join("usr/share/man/man1/review-sync.1.gz")
            .exists()
    );
    assert_eq!(
        std::fs::read_to_string(&conffile).expect("conffile kept on remove"),
        edited
    );
    let status = dpkg.status();
    assert!(status.contains("deinstall ok config-files"), "{status}");
    run(dpkg.cmd().args(["--purge", "review-sync"]));
    // Only the admin's own secret files remain: dpkg never deletes what it
    // did not install.
    let left = dpkg.files();
    assert_eq!(left, admin_files, "left behind after purge");
    assert!(!conffile.exists(), "the conffile is purged");
    let calls = std::fs::read_to_string(work.path().join("calls")).unwrap_or_default();
    if deb != mirror {
        // cargo-deb's maintainer scripts ran (against the stubs): the unit's
        // state is cleaned up on purge.
        assert!(
            calls.contains("deb-systemd-helper purge review-sync.service"),
            "{calls}"
        );
        assert!(
            !calls.contains("helper enable") && !calls.contains("systemctl"),
            "installed, not enabled or started: {calls}"
        );
    }
    eprintln!(
        "package: installed, checked, removed and purged; systemd helper calls: {}",
        calls.lines().collect::<Vec<_>>().join("; ")
    );
}
