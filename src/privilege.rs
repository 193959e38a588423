//! Privilege drop: `[global] user` / `group`.
//!
//! Started as root (so it can bind ports below 1024 and sockets such as
//! `/dev/log` or `/run/systemd/journal/syslog`), logrelay binds every
//! source first, then, before any task runs, becomes `user`:
//!
//! 1. `user` is looked up (a name from the passwd database, or a number);
//!    `group` (a name or number) defaults to the user's primary group.
//!    `group` without `user` is an error.
//! 2. `state_dir` is created if missing, then it and everything below it
//!    are chowned to `user:group` (without following symlinks), so that
//!    checkpoints and disk buffers written as root by an earlier run stay
//!    writable. Nothing else is chowned: archive directories and database
//!    files must already be writable by `user` (the Debian package creates
//!    `/var/log/remote` for the `logrelay` user).
//! 3. `setgroups([gid])`, `setgid(gid)`, `setuid(uid)`: real, effective
//!    and saved ids all change, every capability is lost (glibc applies
//!    them to every thread of the process). Then `setuid(0)` must fail,
//!    or logrelay refuses to run.
//!
//! Not running as root with `user` set: when the process already is that
//! user and group there is nothing to do; otherwise start-up fails with a
//! clear error rather than running with other rights than configured.
//!
//! After the drop, a SIGHUP reload runs as `user`: it cannot bind ports
//! below 1024 or create sockets in root-owned directories, and a change of
//! `user`/`group` applies only after a restart. Such a reload is refused
//! (logged, the running config stays), like any reload that cannot bind.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::config::Global;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("global.group = {0:?} needs global.user: whom should logrelay run as?")]
    GroupWithoutUser(String),
    #[error("global.user = {0:?}: no such user")]
    NoSuchUser(String),
    #[error("global.group = {0:?}: no such group")]
    NoSuchGroup(String),
    #[error("cannot look up {what} {name:?}: {source}")]
    Lookup {
        what: &'static str,
        name: String,
        source: std::io::Error,
    },
    #[error(
        "global.user = {user:?}: switching to it needs root, and logrelay runs as uid {uid}; \
         start it as root or remove user/group from [global]"
    )]
    NotRoot { user: String, uid: u32 },
    #[error("cannot give {path} to {user}: {source}")]
    Chown {
        path: PathBuf,
        user: String,
        source: std::io::Error,
    },
    #[error("{call} failed: {source}")]
    Syscall {
        call: &'static str,
        source: std::io::Error,
    },
    #[error("still able to become root after switching to {0}: refusing to run")]
    Regained(String),
}

/// Who the process became, once it did (for reload error messages).
static DROPPED_TO: OnceLock<String> = OnceLock::new();

/// `user:group` when privileges were dropped.
pub fn dropped_to() -> Option<&'static str> {
    DROPPED_TO.get().map(String::as_str)
}

/// Whom `global` says to run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub user: String,
    pub uid: u32,
    pub group: String,
    pub gid: u32,
}

/// Looks up `global.user`/`global.group`; `None` when neither is set.
pub fn resolve(global: &Global) -> Result<Option<Target>, Error> {
    let user = match (&global.user, &global.group) {
        (None, None) => return Ok(None),
        (None, Some(group)) => return Err(Error::GroupWithoutUser(group.clone())),
        (Some(user), _) => user,
    };
    let Some((uid, primary_gid)) = user_ids(user)? else {
        return Err(Error::NoSuchUser(user.clone()));
    };
    let (group, gid) = match &global.group {
        None => (primary_gid.to_string(), primary_gid),
        Some(group) => match group_id(group)? {
            Some(gid) => (group.clone(), gid),
            None => return Err(Error::NoSuchGroup(group.clone())),
        },
    };
    Ok(Some(Target {
        user: user.clone(),
        uid,
        group,
        gid,
    }))
}

/// Drops to `global.user`/`global.group` (see the module doc); `Ok(None)`
/// when there was nothing to do.
pub fn drop_privileges(global: &Global) -> Result<Option<Target>, Error> {
    let Some(target) = to_switch(global)? else {
        return Ok(None);
    };
    give_tree(&global.state_dir, &target)?;
    switch(&target)?;
    let _ = DROPPED_TO.set(format!("{}:{}", target.user, target.group));
    tracing::info!(
        user = %target.user, uid = target.uid, group = %target.group, gid = target.gid,
        state_dir = %global.state_dir.display(),
        "privileges dropped: every source is bound, running as {}", target.user
    );
    Ok(Some(target))
}

/// Whom [`drop_privileges`] will switch to: `None` when nothing is
/// configured or the process already runs as that user and group; an error
/// when the user or group is unknown or switching needs root and this is
/// not root. Side-effect free, so start-up checks it before it takes the
/// instance lock or binds anything.
pub fn to_switch(global: &Global) -> Result<Option<Target>, Error> {
    let Some(target) = resolve(global)? else {
        return Ok(None);
    };
    let (euid, egid) = effective_ids();
    if euid != 0 {
        if euid == target.uid && egid == target.gid {
            return Ok(None);
        }
        return Err(Error::NotRoot {
            user: target.user,
            uid: euid,
        });
    }
    Ok(Some(target))
}

/// Creates `dir` if needed and chowns it and everything below it.
fn give_tree(dir: &Path, target: &Target) -> Result<(), Error> {
    let fail = |path: &Path, source| Error::Chown {
        path: path.to_owned(),
        user: target.user.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        std::os::unix::fs::lchown(&path, Some(target.uid), Some(target.gid))
            .map_err(|e| fail(&path, e))?;
        let meta = std::fs::symlink_metadata(&path).map_err(|e| fail(&path, e))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(|e| fail(&path, e))? {
                pending.push(entry.map_err(|e| fail(&path, e))?.path());
            }
        }
    }
    Ok(())
}

fn effective_ids() -> (u32, u32) {
    (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    )
}

/// setgroups, setgid, setuid through the C library (`nix`), which applies
/// each to every thread of the process (glibc's setxid broadcast): a raw
/// system call (as `rustix` makes) would change only the calling thread
/// and leave the runtime's other threads as root.
fn switch(target: &Target) -> Result<(), Error> {
    use nix::unistd::{Gid, Uid};
    let check = |call: &'static str, result: nix::Result<()>| {
        result.map_err(|errno| Error::Syscall {
            call,
            source: std::io::Error::from(errno),
        })
    };
    let gid = Gid::from_raw(target.gid);
    check("setgroups", nix::unistd::setgroups(&[gid]))?;
    check("setgid", nix::unistd::setgid(gid))?;
    check("setuid", nix::unistd::setuid(Uid::from_raw(target.uid)))?;
    // This one must fail.
    let regained = target.uid != 0 && nix::unistd::setuid(Uid::from_raw(0)).is_ok();
    let (euid, egid) = effective_ids();
    if regained || euid != target.uid || egid != target.gid {
        return Err(Error::Regained(target.user.clone()));
    }
    Ok(())
}

/// Whether an errno from getpwnam_r/getgrnam_r means "no such name":
/// some NSS modules answer that with these instead of a null result.
fn means_not_found(errno: nix::errno::Errno) -> bool {
    use nix::errno::Errno;
    matches!(
        errno,
        Errno::ENOENT | Errno::ESRCH | Errno::EBADF | Errno::EPERM
    )
}

/// `(uid, primary gid)` of user `name`, looked up through NSS
/// (getpwnam_r: /etc/passwd, LDAP, sssd... as nsswitch.conf says).
/// `Ok(None)` when there is no such user. The one user lookup of the
/// crate: [`drop_privileges`] and the file destination's `owner` use it.
pub fn lookup_user(name: &str) -> Result<Option<(u32, u32)>, Error> {
    match nix::unistd::User::from_name(name) {
        Ok(user) => Ok(user.map(|u| (u.uid.as_raw(), u.gid.as_raw()))),
        Err(errno) if means_not_found(errno) => Ok(None),
        Err(errno) => Err(Error::Lookup {
            what: "user",
            name: name.to_owned(),
            source: std::io::Error::from(errno),
        }),
    }
}

/// The gid of group `name`, looked up through NSS (getgrnam_r); `Ok(None)`
/// when there is no such group.
pub fn lookup_group(name: &str) -> Result<Option<u32>, Error> {
    match nix::unistd::Group::from_name(name) {
        Ok(group) => Ok(group.map(|g| g.gid.as_raw())),
        Err(errno) if means_not_found(errno) => Ok(None),
        Err(errno) => Err(Error::Lookup {
            what: "group",
            name: name.to_owned(),
            source: std::io::Error::from(errno),
        }),
    }
}

/// `(uid, primary gid)` of `who`: a user name, else a number (whose
/// primary gid is then taken to be the same number), as chown(1) reads
/// its argument. `Ok(None)`: neither.
pub fn user_ids(who: &str) -> Result<Option<(u32, u32)>, Error> {
    Ok(lookup_user(who)?.or_else(|| who.parse().ok().map(|uid| (uid, uid))))
}

/// The gid of `who`: a group name, else a number. `Ok(None)`: neither.
pub fn group_id(who: &str) -> Result<Option<u32>, Error> {
    Ok(lookup_group(who)?.or_else(|| who.parse().ok()))
}

/// Whether the process runs with an effective uid of 0.
pub fn is_root() -> bool {
    effective_ids().0 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(user: Option<&str>, group: Option<&str>) -> Global {
        let mut config = crate::config::Config::parse(
            "[sources.s]\ntype = \"stdin\"\n[destinations.d]\ntype = \"stdout\"\n\
             [[paths]]\nsources = [\"s\"]\ndestinations = [\"d\"]\n",
            "test.toml",
            crate::config::Mode::Server,
        )
        .unwrap();
        config.global.user = user.map(str::to_owned);
        config.global.group = group.map(str::to_owned);
        config.global
    }

    #[test]
    fn names_and_numbers_resolve() {
        assert_eq!(resolve(&global(None, None)).unwrap(), None);
        let root = resolve(&global(Some("root"), None)).unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        let numeric = resolve(&global(Some("4242"), Some("4343")))
            .unwrap()
            .unwrap();
        assert_eq!((numeric.uid, numeric.gid), (4242, 4343));
        let root_group = resolve(&global(Some("4242"), Some("root")))
            .unwrap()
            .unwrap();
        assert_eq!(root_group.gid, 0);
    }

    #[test]
    fn unknown_names_and_group_alone_are_errors() {
        assert!(matches!(
            resolve(&global(None, Some("root"))),
            Err(Error::GroupWithoutUser(_))
        ));
        assert!(matches!(
            resolve(&global(Some("no-such-user-here"), None)),
            Err(Error::NoSuchUser(_))
        ));
        assert!(matches!(
            resolve(&global(Some("root"), Some("no-such-group-here"))),
            Err(Error::NoSuchGroup(_))
        ));
    }
}
