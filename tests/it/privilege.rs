//! `[global] user`/`group`: started as root, logrelay binds a port below
//! 1024, then runs as the configured user. These tests need root (CI and
//! tests/run.sh run as root) and fail, saying so, without it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use crate::harness::{logrelay, wait_lines, Server, TestDir};

fn id(args: &[&str]) -> u32 {
    let out = Command::new("id").args(args).output().expect("run id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("id {args:?}: {out:?}"))
}

fn gid_of_group(name: &str) -> u32 {
    let out = Command::new("getent")
        .args(["group", name])
        .output()
        .expect("run getent");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(':')
        .nth(2)
        .and_then(|g| g.trim().parse().ok())
        .unwrap_or_else(|| panic!("getent group {name}: {text:?}"))
}

fn require_root() {
    assert_eq!(
        id(&["-u"]),
        0,
        "this test starts logrelay as root to see it drop privileges: run the suite as root (tests/run.sh in CI does)"
    );
}

/// A free TCP port below 1024 on 127.0.0.1.
fn privileged_port(not: u16) -> u16 {
    (600..1024)
        .filter(|&p| p != not)
        .find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("a free port in 600..1024")
}

/// The `Uid:`/`Gid:`/`Groups:`/`CapEff:` lines of /proc/PID/status.
fn status(pid: u32) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    text.lines()
        .filter(|l| {
            ["Uid:", "Gid:", "Groups:", "CapEff:", "CapPrm:"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn root_binds_a_privileged_port_then_runs_as_nobody() {
    require_root();
    let nobody = id(&["-u", "nobody"]);
    let nogroup = gid_of_group("nogroup");
    let port = privileged_port(0);

    let dir = TestDir::new();
    // The temp dir is 0700 root: let nobody in, but not write.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let archive = dir.path().join("archive");
    std::fs::create_dir(&archive).expect("archive dir");
    std::os::unix::fs::chown(&archive, Some(nobody), Some(nogroup)).expect("chown archive");
    std::fs::set_permissions(&archive, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    // A checkpoint-like file root left in state_dir by an earlier run.
    let state = dir.path().join("state");
    std::fs::create_dir_all(state.join("old")).expect("state dir");
    std::fs::write(state.join("old/checkpoint.json"), "{}").expect("state file");

    let config = format!(
        r#"
[global]
user = "nobody"
group = "nogroup"
state_dir = "{state}"

[sources.net]
type = "tcp"
listen = "127.0.0.1:{port}"

[destinations.archive]
type = "file"
path = "{archive}/${{HOST}}.log"

[[paths]]
sources = ["net"]
destinations = ["archive"]
"#,
        state = state.display(),
        archive = archive.display(),
    );
    dir.write("config.toml", &config);
    let mut server = Server::spawn(dir, &["server", "-c", "config.toml"], None);
    assert_eq!(
        server.addr("net"),
        format!("127.0.0.1:{port}").parse().expect("addr")
    );

    // Real, effective, saved and filesystem ids; one group; no capability.
    assert_eq!(
        status(server.pid()),
        [
            format!("Uid: {nobody} {nobody} {nobody} {nobody}"),
            format!("Gid: {nogroup} {nogroup} {nogroup} {nogroup}"),
            format!("Groups: {nogroup}"),
            "CapPrm: 0000000000000000".to_owned(),
            "CapEff: 0000000000000000".to_owned(),
        ]
    );
    assert!(server
        .stderr()
        .contains("privileges dropped: every source is bound, running as nobody"));
    // state_dir and what was in it now belong to nobody.
    for path in [
        &state,
        &state.join("old"),
        &state.join("old/checkpoint.json"),
    ] {
        let meta = std::fs::metadata(path).expect("state entry");
        assert_eq!((meta.uid(), meta.gid()), (nobody, nogroup), "{path:?}");
    }

    // A message to the privileged port lands in a dir only nobody can write.
    server.send_tcp(
        "net",
        b"<13>1 2026-11-27T10:00:00Z web-1 app 42 - - as nobody\n",
    );
    let file = archive.join("web-1.log");
    let lines = wait_lines(&file, 1);
    assert_eq!(
        String::from_utf8_lossy(&lines[0]),
        "2026-11-27T10:00:00+00:00 web-1 app[42]: as nobody"
    );
    let meta = std::fs::metadata(&file).expect("archive file");
    assert_eq!((meta.uid(), meta.gid()), (nobody, nogroup));

    // A reload that needs another port below 1024 cannot bind it: refused,
    // said why, and the running config stays.
    let other = privileged_port(port);
    let reload = config.replace(
        "[[paths]]\nsources = [\"net\"]",
        &format!(
            "[sources.more]\ntype = \"tcp\"\nlisten = \"127.0.0.1:{other}\"\n\n[[paths]]\nsources = [\"net\", \"more\"]"
        ),
    );
    assert_ne!(reload, config);
    server.rewrite_config(&reload);
    server.signal("HUP");
    let refused = server.wait_stderr("config reload refused", 1);
    assert!(
        refused.contains(&format!("127.0.0.1:{other}"))
            && refused.contains("running as nobody:nogroup since start-up"),
        "{refused}"
    );
    server.send_tcp(
        "net",
        b"<13>1 2026-11-27T10:00:01Z web-1 app 42 - - still here\n",
    );
    let lines = wait_lines(&file, 2);
    assert_eq!(
        String::from_utf8_lossy(&lines[1]),
        "2026-11-27T10:00:01+00:00 web-1 app[42]: still here"
    );
    server.stop();
}

#[test]
fn unknown_user_or_group_stops_start_up_with_exit_1() {
    require_root();
    let dir = TestDir::new();
    for (global, expected) in [
        (
            "user = \"no-such-user-here\"",
            "logrelay: global.user = \"no-such-user-here\": no such user\n",
        ),
        (
            "user = \"nobody\"\ngroup = \"no-such-group-here\"",
            "logrelay: global.group = \"no-such-group-here\": no such group\n",
        ),
    ] {
        let config = format!(
            "[global]\n{global}\nstate_dir = \"state\"\n\n[sources.net]\ntype = \"tcp\"\nlisten = \"127.0.0.1:0\"\n\n[destinations.out]\ntype = \"stdout\"\n\n[[paths]]\nsources = [\"net\"]\ndestinations = [\"out\"]\n"
        );
        dir.write("config.toml", &config);
        let run = logrelay(&["server", "-c", "config.toml"], dir.path());
        assert_eq!(run.code, 1, "{global}: {}", run.stderr);
        assert!(run.stderr.ends_with(expected), "{global}: {}", run.stderr);
        assert!(!run.stderr.contains("logrelay: ready"), "{}", run.stderr);
    }
    // A group without a user is a config error: `check` refuses it too.
    let config = "[global]\ngroup = \"nogroup\"\nstate_dir = \"state\"\n\n[sources.net]\ntype = \"tcp\"\nlisten = \"127.0.0.1:0\"\n\n[destinations.out]\ntype = \"stdout\"\n\n[[paths]]\nsources = [\"net\"]\ndestinations = [\"out\"]\n";
    dir.write("config.toml", config);
    for args in [
        &["server", "-c", "config.toml"][..],
        &["check", "-c", "config.toml"][..],
    ] {
        let run = logrelay(args, dir.path());
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        // (The harness gives the config its own state_dir and control
        // lines, so the line number is not the one written above.)
        assert!(
            run.stderr.starts_with("config.toml:")
                && run.stderr.ends_with(
                    ":9: global.group: needs `user`: whom should logrelay run as? (the group alone is never switched to)\n"
                ),
            "{args:?}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("logrelay: ready"), "{}", run.stderr);
    }
}

#[test]
fn not_root_and_another_user_configured_refuses_to_start() {
    require_root();
    // A copy of the binary nobody can run, wherever the checkout is.
    let dir = TestDir::new();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let bin = dir.path().join("logrelay");
    std::fs::copy(crate::harness::BIN, &bin).expect("copy the binary");
    let config = dir.write(
        "config.toml",
        "[global]\nuser = \"root\"\nstate_dir = \"/nonexistent/state\"\n\n\
         [sources.net]\ntype = \"tcp\"\nlisten = \"127.0.0.1:0\"\n\n\
         [destinations.out]\ntype = \"stdout\"\n\n\
         [[paths]]\nsources = [\"net\"]\ndestinations = [\"out\"]\n",
    );
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(&bin)
        .args(["server", "-c"])
        .arg(&config)
        .current_dir(dir.path())
        .output()
        .expect("run setpriv (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let nobody = id(&["-u", "nobody"]);
    assert!(
        stderr.ends_with(&format!(
            "logrelay: global.user = \"root\": switching to it needs root, and logrelay runs as uid {nobody}; \
             start it as root or remove user/group from [global]\n"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("logrelay: ready"), "{stderr}");
}
