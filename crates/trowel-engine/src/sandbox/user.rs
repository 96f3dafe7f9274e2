//! Users and groups the way BuildKit resolves them, which is two different ways:
//!
//! - [`resolve_user`]: who a RUN executes as (BuildKit's `GetUser`, runc's `GetExecUser`). The
//!   engine reads the image's `/etc/passwd` and `/etc/group` (if present) and calls it with the
//!   `USER` value in effect; the resulting [`UserIds`] go into the [`RunSpec`](super::RunSpec)
//!   and the home directory into `$HOME` when the image sets none.
//! - [`file_owner`]: who owns what a file operation creates — `COPY --chown`, and the
//!   directories `WORKDIR` makes for the current `USER` (BuildKit's `llb.WithUser` and its file
//!   operations' `readUser`). Its rules are in its own documentation.
//!
//! A RUN's rules:
//! - `""` means root: uid 0, and whatever `/etc/passwd` says about uid 0 (name, gid, home).
//! - `uid:gid` where each part is a number or `root` needs no `/etc/passwd` (BuildKit's fast
//!   path): exactly those ids, no supplementary groups.
//! - A numeric user is always a uid. It need not exist; when it does, its passwd entry supplies
//!   the primary gid, home and name. When it does not, the gid is 0 and home is `/`.
//! - A user name must exist in `/etc/passwd`.
//! - `user:group`: a numeric group is a gid and need not exist; a group name must exist in
//!   `/etc/group`. An explicit group replaces the primary gid and disables supplementary groups.
//! - Without an explicit group, the supplementary groups are all groups in `/etc/group` that list
//!   the user's name as a member (only possible when the user matched a passwd entry).
//! - The first matching line wins when a file has duplicates.

use serde::{Deserialize, Serialize};

use super::SandboxError;

/// Numeric credentials a RUN executes with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserIds {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups. The sandbox always adds `gid` in front when it calls `setgroups`,
    /// as Docker does, so it need not be repeated here.
    pub groups: Vec<u32>,
}

impl UserIds {
    /// uid 0, gid 0, no supplementary groups.
    pub fn root() -> UserIds {
        UserIds { uid: 0, gid: 0, groups: Vec::new() }
    }
}

/// The outcome of [`resolve_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub ids: UserIds,
    /// The passwd home directory, for `$HOME`; `/` when the user has no passwd entry.
    pub home: String,
    /// The passwd name, when the user matched a passwd entry.
    pub name: Option<String>,
}

/// Docker's (and runc's) upper bound for uids and gids.
const MAX_ID: u64 = i32::MAX as u64;

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

/// Resolves a `USER` value against the contents of the image's `/etc/passwd` and `/etc/group`
/// (`None` when the file does not exist).
///
/// Errors name the user or group that could not be found, with Docker's wording
/// (`unable to find user app: no matching entries in passwd file`).
pub fn resolve_user(spec: &str, passwd: Option<&str>, group: Option<&str>) -> Result<ResolvedUser, SandboxError> {
    let users = passwd.map(parse_passwd).unwrap_or_default();
    // BuildKit's fast path: `uid:gid`, each a number or `root`, is taken as is. The passwd entry
    // of that uid, if any, still gives $HOME.
    if let Some((u, g)) = spec.split_once(':')
        && let (Some(uid), Some(gid)) = (root_or_id(u, spec)?, root_or_id(g, spec)?)
    {
        let entry = users.iter().find(|e| e.uid == uid);
        return Ok(ResolvedUser {
            ids: UserIds { uid, gid, groups: Vec::new() },
            home: entry.map(|e| e.home).filter(|h| !h.is_empty()).unwrap_or("/").to_string(),
            name: entry.map(|e| e.name.to_string()),
        });
    }
    // runc splits on every ':' and uses the first two fields.
    let mut fields = spec.split(':');
    let user_arg = fields.next().unwrap_or("");
    let group_arg = fields.next().unwrap_or("");

    let numeric_uid = parse_id(user_arg, spec)?;
    let matched = users.iter().find(|u| match (user_arg.is_empty(), numeric_uid) {
        (true, _) => u.uid == 0,
        (false, Some(uid)) => u.uid == uid,
        (false, None) => u.name == user_arg,
    });

    let mut resolved = match matched {
        Some(u) => ResolvedUser {
            ids: UserIds { uid: u.uid, gid: u.gid, groups: Vec::new() },
            home: if u.home.is_empty() { "/".to_string() } else { u.home.to_string() },
            name: Some(u.name.to_string()),
        },
        None => {
            if !user_arg.is_empty() && numeric_uid.is_none() {
                return Err(SandboxError::UnknownUser { user: user_arg.to_string() });
            }
            ResolvedUser {
                ids: UserIds { uid: numeric_uid.unwrap_or(0), ..UserIds::root() },
                home: "/".into(),
                name: None,
            }
        }
    };

    let groups = group.map(parse_group).unwrap_or_default();
    if !group_arg.is_empty() {
        resolved.ids.gid = match parse_id(group_arg, spec)? {
            Some(gid) => gid,
            None => match groups.iter().find(|g| g.name == group_arg) {
                Some(g) => g.gid,
                None => return Err(SandboxError::UnknownGroup { group: group_arg.to_string() }),
            },
        };
    } else if let Some(name) = &resolved.name {
        for g in groups.iter().filter(|g| g.members.contains(&name.as_str())) {
            if !resolved.ids.groups.contains(&g.gid) {
                resolved.ids.groups.push(g.gid);
            }
        }
    }
    Ok(resolved)
}

/// The owner a file operation gives what it creates, as [`file_owner`] resolves it.
#[derive(Debug)]
pub struct FileOwner {
    pub uid: u32,
    pub gid: u32,
    /// Names that are in neither file (the user, then the group). BuildKit does not fail on
    /// them: an unknown user is taken as 0 (uid and gid), an unknown group leaves the user's
    /// gid. `uid` and `gid` are that result; whether it may be used is the caller's decision.
    pub unknown: Vec<SandboxError>,
}

/// Who owns what a file operation creates, for an owner spec `user[:group]` (`COPY --chown`,
/// or the `USER` in effect when `WORKDIR` creates directories), by BuildKit's rules
/// (`llb.WithUser`, then the file operation's `readUser`), which differ from a RUN's:
/// - the spec is split at its first `:`; an empty group part means no group;
/// - the user part `root` is uid 0 and a number is that uid, with or without an `/etc/passwd`;
///   then the gid is the same number (`9999` gives 9999:9999, where a RUN gets gid 0);
/// - a user name is looked up in `/etc/passwd`: its uid and primary gid;
/// - a group part `root` is gid 0, a number is that gid, a name is looked up in `/etc/group`.
///
/// Names not found are listed in [`FileOwner::unknown`]. Ids beyond Docker's range are an error.
pub fn file_owner(spec: &str, passwd: Option<&str>, group: Option<&str>) -> Result<FileOwner, SandboxError> {
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, g),
        None => (spec, ""),
    };
    let mut owner = FileOwner { uid: 0, gid: 0, unknown: Vec::new() };
    match root_or_id(user_arg, spec)? {
        Some(id) => (owner.uid, owner.gid) = (id, id),
        None if user_arg.is_empty() => {}
        None => match passwd.map(parse_passwd).unwrap_or_default().iter().find(|u| u.name == user_arg) {
            Some(u) => (owner.uid, owner.gid) = (u.uid, u.gid),
            None => owner.unknown.push(SandboxError::UnknownUser { user: user_arg.to_string() }),
        },
    }
    match root_or_id(group_arg, spec)? {
        Some(id) => owner.gid = id,
        None if group_arg.is_empty() => {}
        None => match group.map(parse_group).unwrap_or_default().iter().find(|g| g.name == group_arg) {
            Some(g) => owner.gid = g.gid,
            None => owner.unknown.push(SandboxError::UnknownGroup { group: group_arg.to_string() }),
        },
    }
    Ok(owner)
}

/// BuildKit's `parseUID`: `root` is 0, a number is itself, anything else is a name (`None`).
fn root_or_id(s: &str, spec: &str) -> Result<Option<u32>, SandboxError> {
    if s == "root" {
        return Ok(Some(0));
    }
    parse_id(s, spec)
}

/// `Some(id)` when `s` is all digits (checked against Docker's range), `None` when it is a name.
fn parse_id(s: &str, spec: &str) -> Result<Option<u32>, SandboxError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match s.parse::<u64>() {
        Ok(id) if id <= MAX_ID => Ok(Some(id as u32)),
        _ => Err(SandboxError::IdOutOfRange { spec: spec.to_string() }),
    }
}

/// Lines of a colon-separated database, minus blanks and comments.
fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(|l| l.split(':').collect())
}

/// `name:password:uid:gid:gecos:home:shell`; lines with a malformed uid or gid are skipped
/// rather than read as 0, so a corrupt line can never turn into root.
fn parse_passwd(text: &str) -> Vec<PasswdEntry<'_>> {
    records(text)
        .filter_map(|f| {
            Some(PasswdEntry {
                name: f.first().copied().filter(|n| !n.is_empty())?,
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).copied().unwrap_or(""),
            })
        })
        .collect()
}

/// `name:password:gid:member,member`.
fn parse_group(text: &str) -> Vec<GroupEntry<'_>> {
    records(text)
        .filter_map(|f| {
            Some(GroupEntry {
                name: f.first().copied().filter(|n| !n.is_empty())?,
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| m.split(',').map(str::trim).filter(|m| !m.is_empty()).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin

app:x:1000:1000:App User:/home/app:/bin/sh
broken:x:notanumber:0::/:/bin/sh
app:x:1001:1001:duplicate:/dup:/bin/sh
nohome:x:1002:1002::::
";
    const GROUP: &str = "\
root:x:0:
wheel:x:10:root,app
app:x:1000:
staff:x:50: app , other
docker:x:999:app
dupe:x:50:app
";

    fn ids(uid: u32, gid: u32, groups: &[u32]) -> UserIds {
        UserIds { uid, gid, groups: groups.to_vec() }
    }

    fn resolve(spec: &str) -> Result<ResolvedUser, SandboxError> {
        resolve_user(spec, Some(PASSWD), Some(GROUP))
    }

    #[test]
    fn empty_spec_is_root_with_its_passwd_entry() {
        let r = resolve("").unwrap();
        assert_eq!(r.ids, ids(0, 0, &[10]));
        assert_eq!(r.home, "/root");
        assert_eq!(r.name.as_deref(), Some("root"));
    }

    #[test]
    fn empty_spec_without_files_is_bare_root() {
        let r = resolve_user("", None, None).unwrap();
        assert_eq!(r, ResolvedUser { ids: UserIds::root(), home: "/".into(), name: None });
    }

    #[test]
    fn name_gets_primary_gid_home_and_member_groups() {
        let r = resolve("app").unwrap();
        // staff's member list has spaces around names; gid 50 appears twice and is kept once.
        assert_eq!(r.ids, ids(1000, 1000, &[10, 50, 999]));
        assert_eq!(r.home, "/home/app");
        assert_eq!(r.name.as_deref(), Some("app"));
    }

    #[test]
    fn unknown_name_is_an_error_with_dockers_message() {
        let e = resolve("ghost").unwrap_err();
        assert_eq!(e.to_string(), "unable to find user ghost: no matching entries in passwd file");
        let e = resolve_user("app", None, None).unwrap_err();
        assert_eq!(e.to_string(), "unable to find user app: no matching entries in passwd file");
    }

    #[test]
    fn numeric_uid_matching_an_entry_uses_it() {
        let r = resolve("1000").unwrap();
        assert_eq!(r.ids, ids(1000, 1000, &[10, 50, 999]));
        assert_eq!(r.name.as_deref(), Some("app"));
    }

    #[test]
    fn unknown_numeric_uid_gets_gid_zero_and_slash_home() {
        let r = resolve("4242").unwrap();
        assert_eq!(r, ResolvedUser { ids: ids(4242, 0, &[]), home: "/".into(), name: None });
        let r = resolve_user("4242", None, None).unwrap();
        assert_eq!(r.ids, ids(4242, 0, &[]));
    }

    #[test]
    fn explicit_group_replaces_gid_and_drops_supplementary_groups() {
        assert_eq!(resolve("app:staff").unwrap().ids, ids(1000, 50, &[]));
        assert_eq!(resolve("app:777").unwrap().ids, ids(1000, 777, &[]));
        assert_eq!(resolve("4242:docker").unwrap().ids, ids(4242, 999, &[]));
        assert_eq!(resolve("4242:4343").unwrap().ids, ids(4242, 4343, &[]));
        assert_eq!(resolve_user("0:5", None, None).unwrap().ids, ids(0, 5, &[]));
    }

    #[test]
    fn empty_group_part_means_no_explicit_group() {
        assert_eq!(resolve("app:").unwrap().ids, ids(1000, 1000, &[10, 50, 999]));
    }

    #[test]
    fn unknown_group_name_is_an_error() {
        let e = resolve("app:nogroup").unwrap_err();
        assert_eq!(e.to_string(), "unable to find group nogroup: no matching entries in group file");
        assert!(matches!(resolve_user("app:staff", Some(PASSWD), None), Err(SandboxError::UnknownGroup { .. })));
    }

    #[test]
    fn first_matching_line_wins() {
        let r = resolve("app").unwrap();
        assert_eq!(r.home, "/home/app");
        assert_eq!(resolve("1001").unwrap().home, "/dup");
    }

    #[test]
    fn malformed_lines_are_skipped_not_read_as_root() {
        assert!(matches!(resolve("broken"), Err(SandboxError::UnknownUser { .. })));
    }

    #[test]
    fn missing_home_defaults_to_slash() {
        assert_eq!(resolve("nohome").unwrap().home, "/");
    }

    #[test]
    fn ids_out_of_range_are_rejected() {
        assert!(matches!(resolve("2147483648"), Err(SandboxError::IdOutOfRange { .. })));
        assert!(matches!(resolve("app:99999999999999999999999"), Err(SandboxError::IdOutOfRange { .. })));
        assert_eq!(resolve("2147483647").unwrap().ids.uid, 2147483647);
    }

    #[test]
    fn uid_gid_with_root_needs_no_passwd_for_run() {
        // BuildKit's fast path: both parts numbers or `root`.
        let r = resolve_user("root:root", None, None).unwrap();
        assert_eq!(r, ResolvedUser { ids: ids(0, 0, &[]), home: "/".into(), name: None });
        assert_eq!(resolve_user("root:50", None, None).unwrap().ids, ids(0, 50, &[]));
        assert_eq!(resolve_user("1000:root", None, None).unwrap().ids, ids(1000, 0, &[]));
        // With a passwd entry for the uid, HOME still comes from it; no supplementary groups.
        let r = resolve("1000:1000").unwrap();
        assert_eq!((r.ids, r.home.as_str()), (ids(1000, 1000, &[]), "/home/app"));
        // `root` alone (or with a group name) is a name: it needs /etc/passwd, as in BuildKit.
        assert!(matches!(resolve_user("root", None, None), Err(SandboxError::UnknownUser { .. })));
        assert!(matches!(resolve_user("root:staff", None, None), Err(SandboxError::UnknownUser { .. })));
    }

    fn owner(spec: &str, passwd: Option<&str>, group: Option<&str>) -> (u32, u32, Vec<String>) {
        let o = file_owner(spec, passwd, group).unwrap();
        (o.uid, o.gid, o.unknown.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn file_owners_follow_buildkit() {
        let known = |spec| owner(spec, Some(PASSWD), Some(GROUP));
        // Names: uid and primary gid from passwd; a group replaces the gid.
        assert_eq!(known("app"), (1000, 1000, vec![]));
        assert_eq!(known("daemon"), (1, 1, vec![]));
        assert_eq!(known("app:staff"), (1000, 50, vec![]));
        assert_eq!(known("app:"), (1000, 1000, vec![]));
        // Numbers and `root`: no lookup, and the gid is the same number (a RUN would get 0).
        assert_eq!(known("9999"), (9999, 9999, vec![]));
        assert_eq!(owner("9999", None, None), (9999, 9999, vec![]));
        assert_eq!(owner("root", None, None), (0, 0, vec![]));
        assert_eq!(owner("9999:50", None, None), (9999, 50, vec![]));
        assert_eq!(owner("app:root", Some(PASSWD), None), (1000, 0, vec![]));
        // A user whose primary group differs from its uid keeps that group.
        assert_eq!(owner("svc", Some("svc:x:2000:50::/:/bin/sh\n"), None), (2000, 50, vec![]));
        // Unknown names are reported with what BuildKit would do instead: user 0:0, group kept.
        let (u, g, unknown) = owner("ghost", None, None);
        assert_eq!((u, g), (0, 0));
        assert_eq!(unknown, ["unable to find user ghost: no matching entries in passwd file"]);
        let (u, g, unknown) = known("app:nogroup");
        assert_eq!((u, g), (1000, 1000));
        assert_eq!(unknown, ["unable to find group nogroup: no matching entries in group file"]);
        assert!(matches!(file_owner("2147483648", None, None), Err(SandboxError::IdOutOfRange { .. })));
    }

    #[test]
    fn signed_numbers_are_names() {
        assert!(matches!(resolve("-1"), Err(SandboxError::UnknownUser { .. })));
    }
}
