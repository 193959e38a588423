//! The Debian package (packaging/build-deb.sh), the systemd unit and the
//! logrotate snippet it ships: built and inspected with Debian's own tools.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{logrelay, repo, TestDir, BIN};

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(program: &str, args: &[&str]) -> Out {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is needed (tests/run.sh installs it): {e}"));
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn build_deb(out: &Path) -> PathBuf {
    let script = repo().join("packaging/build-deb.sh");
    let out_text = out.display().to_string();
    let built = run(
        &script.display().to_string(),
        &["--binary", BIN, "--out", &out_text],
    );
    assert!(built.ok, "build-deb.sh: {}", built.stderr);
    let deb = PathBuf::from(built.stdout.lines().last().unwrap_or_default());
    assert_eq!(
        deb,
        out.join(format!("logrelay_{}_amd64.deb", env!("CARGO_PKG_VERSION")))
    );
    deb
}

#[test]
fn debian_package_ships_binary_unit_configs_logrotate_and_man_page() {
    let dir = TestDir::new();
    let deb = build_deb(dir.path());
    let deb_text = deb.display().to_string();

    // Every path with its mode and owner, exactly.
    let listing = run("dpkg-deb", &["-c", &deb_text]);
    assert!(listing.ok, "{}", listing.stderr);
    let entries: Vec<String> = listing
        .stdout
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{} {} {}", f[0], f[1], f[5])
        })
        .collect();
    let dir_ = |p: &str| format!("drwxr-xr-x root/root {p}");
    let file = |p: &str| format!("-rw-r--r-- root/root {p}");
    // The reference: every docs/*.md of the repository, gzipped.
    let mut docs: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| file(&format!("./usr/share/doc/logrelay/docs/{n}.gz")))
        .collect();
    docs.sort();
    assert!(docs.len() >= 7, "{docs:?}");
    let mut expected = vec![
        dir_("./"),
        dir_("./etc/"),
        dir_("./etc/logrelay/"),
        file("./etc/logrelay/client.toml"),
        file("./etc/logrelay/relay.toml"),
        file("./etc/logrelay/server.toml"),
        dir_("./etc/logrelay/tls/"),
        dir_("./etc/logrotate.d/"),
        file("./etc/logrotate.d/logrelay"),
        dir_("./lib/"),
        dir_("./lib/systemd/"),
        dir_("./lib/systemd/system/"),
        file("./lib/systemd/system/logrelay@.service"),
        dir_("./usr/"),
        dir_("./usr/bin/"),
        "-rwxr-xr-x root/root ./usr/bin/logrelay".to_owned(),
        dir_("./usr/share/"),
        dir_("./usr/share/doc/"),
        dir_("./usr/share/doc/logrelay/"),
        file("./usr/share/doc/logrelay/README.md.gz"),
        file("./usr/share/doc/logrelay/copyright"),
        dir_("./usr/share/doc/logrelay/docs/"),
    ];
    expected.extend(docs);
    expected.extend([
        dir_("./usr/share/man/"),
        dir_("./usr/share/man/man8/"),
        file("./usr/share/man/man8/logrelay.8.gz"),
    ]);
    assert_eq!(entries, expected);

    // Control fields and conffiles.
    let fields = run(
        "dpkg-deb",
        &[
            "-f",
            &deb_text,
            "Package",
            "Version",
            "Architecture",
            "Depends",
            "Section",
        ],
    );
    assert!(fields.ok, "{}", fields.stderr);
    assert_eq!(
        fields.stdout,
        format!(
            "Package: logrelay\nVersion: {}\nArchitecture: amd64\n\
             Depends: libc6 (>= 2.34), libgcc-s1 (>= 4.2), adduser\nSection: admin\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    let conffiles = run("dpkg-deb", &["-I", &deb_text, "conffiles"]);
    assert_eq!(
        conffiles.stdout,
        "/etc/logrelay/client.toml\n/etc/logrelay/relay.toml\n/etc/logrelay/server.toml\n/etc/logrotate.d/logrelay\n"
    );
    let control = dir.path().join("control");
    let control_text = control.display().to_string();
    let extracted = run("dpkg-deb", &["-e", &deb_text, &control_text]);
    assert!(extracted.ok, "{}", extracted.stderr);
    for script in ["postinst", "prerm", "postrm"] {
        let syntax = run("sh", &["-n", &control.join(script).display().to_string()]);
        assert!(syntax.ok, "{script}: {}", syntax.stderr);
    }
    let info = run("dpkg-deb", &["-I", &deb_text]);
    for script in ["postinst", "prerm", "postrm"] {
        assert!(
            info.stdout
                .lines()
                .any(|l| l.contains(&format!("*  {script}"))),
            "{script} missing or not executable: {}",
            info.stdout
        );
    }

    // The packaged binary and configs: the configs are the repo's, and
    // each passes `logrelay check` in its mode (TLS files: test certificates).
    let root = dir.path().join("root");
    let root_text = root.display().to_string();
    let unpacked = run("dpkg-deb", &["-x", &deb_text, &root_text]);
    assert!(unpacked.ok, "{}", unpacked.stderr);
    let version = run(
        &root.join("usr/bin/logrelay").display().to_string(),
        &["--version"],
    );
    assert_eq!(
        version.stdout,
        format!("logrelay {}\n", env!("CARGO_PKG_VERSION"))
    );
    let tls = dir.path().join("tls");
    std::fs::create_dir(&tls).expect("tls dir");
    let ca = crate::pki::Ca::new("ca");
    ca.leaf("host", &["localhost"]);
    for name in ["ca.pem", "host.pem", "host.key"] {
        std::fs::copy(ca.dir.path().join(name), tls.join(name)).expect("tls file");
    }
    for mode in ["client", "relay", "server"] {
        let packaged = root.join(format!("etc/logrelay/{mode}.toml"));
        let text = std::fs::read_to_string(&packaged).expect("packaged config");
        let in_repo = std::fs::read_to_string(repo().join(format!("configs/{mode}.toml")))
            .expect("repo config");
        assert_eq!(text, in_repo, "{mode}");
        assert!(text.contains("/etc/logrelay/tls/host.key"), "{mode}: TLS");
        assert!(text.contains("disk_buffer"), "{mode}: disk buffer");
        assert!(text.contains("user = \"logrelay\""), "{mode}: user");
        let checked = dir.write(
            &format!("{mode}.toml"),
            &text.replace("/etc/logrelay/tls/", &format!("{}/", tls.display())),
        );
        let checked_text = checked.display().to_string();
        let run = logrelay(&["check", "--mode", mode, "-c", &checked_text], dir.path());
        assert_eq!(run.code, 0, "{mode}: {}", run.stderr);
        assert!(
            run.stdout
                .starts_with(&format!("{checked_text}: ok ({mode} mode)\n")),
            "{}",
            run.stdout
        );
    }

    // The man page: the frame, and the --help of every command.
    let man = run(
        "zcat",
        &[&root
            .join("usr/share/man/man8/logrelay.8.gz")
            .display()
            .to_string()],
    );
    assert!(man.ok, "{}", man.stderr);
    assert!(man.stdout.starts_with(".TH LOGRELAY 8 "), "{}", man.stdout);
    for command in ["client", "relay", "server", "check", "stats"] {
        assert!(
            man.stdout.contains(&format!(".SS logrelay {command}\n")),
            "{command}"
        );
        let help = logrelay(&[command, "--help"], dir.path());
        let first = help.stdout.lines().next().unwrap_or_default().to_owned();
        assert!(man.stdout.contains(&first), "{command}: {first}");
    }
    for section in [".SH FILES", ".SH SIGNALS", ".SH SYSTEMD", ".SH EXIT STATUS"] {
        assert!(man.stdout.contains(section), "{section}");
    }
}

/// The unit with its binary at `bin`, as `logrelay@server.service` in `dir`.
fn instance_unit(dir: &TestDir, text: &str) -> String {
    let unit = text.replace("/usr/bin/logrelay", BIN);
    dir.write("logrelay@server.service", &unit)
        .display()
        .to_string()
}

/// What `systemd-analyze verify` says about the unit file (other lines,
/// about the machine the test runs on, are not the unit's business).
fn verify(unit: &str) -> (bool, Vec<String>) {
    let out = run("systemd-analyze", &["verify", "--man=no", unit]);
    let about_unit = out
        .stderr
        .lines()
        .filter(|l| l.contains("logrelay@"))
        .map(str::to_owned)
        .collect();
    (out.ok, about_unit)
}

#[test]
fn systemd_analyze_verify_accepts_the_unit_and_would_catch_a_bad_one() {
    let text =
        std::fs::read_to_string(repo().join("packaging/logrelay@.service")).expect("the unit file");
    for line in [
        "Type=notify",
        "ExecStartPre=/usr/bin/logrelay check -c /etc/logrelay/%i.toml --mode %i",
        "ExecStart=/usr/bin/logrelay %i -c /etc/logrelay/%i.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "WatchdogSec=30s",
        "StateDirectory=logrelay/%i",
        "RuntimeDirectory=logrelay",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID CAP_CHOWN",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?}");
    }
    let dir = TestDir::new();
    let (ok, said) = verify(&instance_unit(&dir, &text));
    assert!(ok && said.is_empty(), "{said:?}");

    // The same check sees a misspelt setting and a missing binary.
    let bad = TestDir::new();
    let (_, said) = verify(&instance_unit(
        &bad,
        &text.replace("Type=notify", "Type=notify\nWatchdogSecs=30s"),
    ));
    assert!(
        said.iter()
            .any(|l| l.contains("Unknown key 'WatchdogSecs'")),
        "{said:?}"
    );
    let (ok, _) = verify(&instance_unit(
        &bad,
        &text.replace(
            "ExecStart=/usr/bin/logrelay",
            "ExecStart=/nonexistent/logrelay",
        ),
    ));
    assert!(!ok);
}

#[test]
fn logrotate_snippet_parses_and_covers_the_server_archives() {
    let text = std::fs::read_to_string(repo().join("packaging/debian/logrotate"))
        .expect("the logrotate snippet");
    assert!(text.contains("systemctl reload 'logrelay@server.service'"));
    // The logrelay user exists only where the package is installed.
    assert!(text.contains("    su logrelay adm\n"));
    let dir = TestDir::new();
    let snippet = dir.write(
        "logrelay",
        &text.replace("su logrelay adm", "su nobody nogroup"),
    );
    let state = dir.path().join("state").display().to_string();
    let out = run(
        "logrotate",
        &["--debug", "--state", &state, &snippet.display().to_string()],
    );
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains(
            "rotating pattern: /var/log/remote/*/*.log /var/log/remote/*/*/*.log  after 1 days (30 rotations)"
        ),
        "{said}"
    );
    assert!(!said.contains("error"), "{said}");
}

#[test]
fn logrotate_snippet_rotates_archives_of_a_server_running_as_nobody() {
    use std::os::unix::fs::PermissionsExt;
    assert!(
        run("id", &["-u"]).stdout.trim() == "0",
        "needs root, as CI and tests/run.sh have: logrelay drops to nobody"
    );
    let dir = TestDir::new();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let remote = dir.path().join("remote");
    std::fs::create_dir(&remote).expect("remote dir");
    let chowned = run("chown", &["nobody:nogroup", &remote.display().to_string()]);
    assert!(chowned.ok, "{}", chowned.stderr);
    dir.write(
        "config.toml",
        &format!(
            "[global]\nuser = \"nobody\"\ngroup = \"nogroup\"\nstate_dir = \"state\"\n\n\
             [sources.net]\ntype = \"tcp\"\nlisten = \"127.0.0.1:0\"\n\n\
             [destinations.archive]\ntype = \"file\"\npath = \"{}/${{HOST}}/${{PROGRAM}}.log\"\n\n\
             [[paths]]\nsources = [\"net\"]\ndestinations = [\"archive\"]\n",
            remote.display()
        ),
    );
    let mut server = crate::harness::Server::spawn(dir, &["server", "-c", "config.toml"], None);
    server.send_tcp(
        "net",
        b"<13>1 2026-11-27T10:00:00Z web-1 app - - - before\n",
    );
    let current = remote.join("web-1/app.log");
    crate::harness::wait_lines(&current, 1);

    // The shipped snippet, pointed at this archive, this user and this pid.
    let text = std::fs::read_to_string(repo().join("packaging/debian/logrotate"))
        .expect("the logrotate snippet");
    let text = text
        .replace("/var/log/remote", &remote.display().to_string())
        .replace("su logrelay adm", "su nobody nogroup")
        .replace(
            "systemctl reload 'logrelay@server.service' >/dev/null 2>&1 || true",
            &format!("kill -HUP {}", server.pid()),
        );
    let snippet = server.dir.write("logrotate.conf", &text);
    let state = server.path("logrotate.state").display().to_string();
    let rotated = run(
        "logrotate",
        &["--force", "--state", &state, &snippet.display().to_string()],
    );
    assert!(rotated.ok, "{}{}", rotated.stdout, rotated.stderr);
    server.wait_stderr("logrelay: reloaded", 1);
    server.send_tcp("net", b"<13>1 2026-11-27T10:00:01Z web-1 app - - - after\n");
    let lines = crate::harness::wait_lines(&current, 1);
    assert_eq!(
        String::from_utf8_lossy(&lines[0]),
        "2026-11-27T10:00:01+00:00 web-1 app: after"
    );
    // delaycompress: the first rotation stays plain.
    let old = std::fs::read_to_string(remote.join("web-1/app.log.1")).expect("app.log.1");
    assert_eq!(old, "2026-11-27T10:00:00+00:00 web-1 app: before\n");
    server.stop();
}
