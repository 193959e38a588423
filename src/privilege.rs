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

use std::ffi::CString;
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
    let (uid, primary_gid) = match lookup_user(user)? {
        Some(ids) => ids,
        None => match user.parse::<u32>() {
            Ok(uid) => (uid, uid),
            Err(_) => return Err(Error::NoSuchUser(user.clone())),
        },
    };
    let (group, gid) = match &global.group {
        None => (primary_gid.to_string(), primary_gid),
        Some(group) => match lookup_group(group)? {
            Some(gid) => (group.clone(), gid),
            None => match group.parse::<u32>() {
                Ok(gid) => (group.clone(), gid),
                Err(_) => return Err(Error::NoSuchGroup(group.clone())),
            },
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

#[allow(unsafe_code)]
fn effective_ids() -> (u32, u32) {
    // SAFETY: geteuid and getegid cannot fail and touch no memory.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

#[allow(unsafe_code)]
fn switch(target: &Target) -> Result<(), Error> {
    let check = |call: &'static str, rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(Error::Syscall {
                call,
                source: std::io::Error::last_os_error(),
            })
        }
    };
    let groups = [target.gid as libc::gid_t];
    // SAFETY: one gid from a valid array; then plain id-setting calls.
    // glibc applies setgroups/setgid/setuid to every thread.
    check("setgroups", unsafe { libc::setgroups(1, groups.as_ptr()) })?;
    check("setgid", unsafe { libc::setgid(target.gid) })?;
    check("setuid", unsafe { libc::setuid(target.uid) })?;
    // SAFETY: as above; this one must fail.
    let regained = target.uid != 0 && unsafe { libc::setuid(0) } == 0;
    let (euid, egid) = effective_ids();
    if regained || euid != target.uid || egid != target.gid {
        return Err(Error::Regained(target.user.clone()));
    }
    Ok(())
}

/// `(uid, primary gid)` of `name` from the passwd database.
#[allow(unsafe_code)]
fn lookup_user(name: &str) -> Result<Option<(u32, u32)>, Error> {
    let Ok(c_name) = CString::new(name) else {
        return Ok(None);
    };
    let mut size = 16 * 1024;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        // SAFETY: a zeroed passwd is a valid out-parameter.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; buf outlives it and
        // its length is passed.
        let rc = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        match rc {
            0 if result.is_null() => return Ok(None),
            0 => return Ok(Some((pwd.pw_uid, pwd.pw_gid))),
            libc::ERANGE if size < 1024 * 1024 => size *= 4,
            // "Not found" comes back as these from some NSS modules.
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            errno => {
                return Err(Error::Lookup {
                    what: "user",
                    name: name.to_owned(),
                    source: std::io::Error::from_raw_os_error(errno),
                })
            }
        }
    }
}

/// The gid of group `name` from the group database.
#[allow(unsafe_code)]
fn lookup_group(name: &str) -> Result<Option<u32>, Error> {
    let Ok(c_name) = CString::new(name) else {
        return Ok(None);
    };
    let mut size = 16 * 1024;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        // SAFETY: a zeroed group is a valid out-parameter.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as in lookup_user.
        let rc = unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        match rc {
            0 if result.is_null() => return Ok(None),
            0 => return Ok(Some(grp.gr_gid)),
            libc::ERANGE if size < 1024 * 1024 => size *= 4,
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            errno => {
                return Err(Error::Lookup {
                    what: "group",
                    name: name.to_owned(),
                    source: std::io::Error::from_raw_os_error(errno),
                })
            }
        }
    }
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
