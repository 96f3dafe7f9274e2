//! `USER` resolution the way Docker (runc's `GetExecUser`) does it.
//!
//! The engine reads the image's `/etc/passwd` and `/etc/group` (if present) and calls
//! [`resolve_user`] with the `USER` value in effect; the resulting [`UserIds`] go into the
//! [`RunSpec`](super::RunSpec) and the home directory into `$HOME` when the image sets none.
//!
//! Rules:
//! - `""` means root: uid 0, and whatever `/etc/passwd` says about uid 0 (name, gid, home).
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
    // runc splits on every ':' and uses the first two fields.
    let mut fields = spec.split(':');
    let user_arg = fields.next().unwrap_or("");
    let group_arg = fields.next().unwrap_or("");

    let numeric_uid = parse_id(user_arg, spec)?;
    let users = passwd.map(parse_passwd).unwrap_or_default();
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
    fn signed_numbers_are_names() {
        assert!(matches!(resolve("-1"), Err(SandboxError::UnknownUser { .. })));
    }
}
