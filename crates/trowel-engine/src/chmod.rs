//! A `COPY`/`ADD --chmod` value, as BuildKit reads it: either an octal mode, which replaces every
//! copied entry's permission bits, or chmod(1)'s symbolic notation (`+x`, `u=rwX,go=rX`, `g=u`,
//! `a+rX,go-w`), which changes each entry's own mode — so one value can make directories 0755 and
//! files 0644 while keeping an executable executable.
//!
//! BuildKit parses symbolic values with `tonistiigi/dchapes-mode`, a Go port of BSD's
//! `setmode(3)`, with a umask of 0 and `X` as Linux reads it (after `+` or `=`, execute where the
//! entry is a directory or was executable by anyone; after `-`, plain `x`; moby/buildkit#5835).
//! This is a reimplementation of those semantics, quirks included, because a value that means one
//! thing to `docker build` and another to trowel would make the same Dockerfile build a different
//! image. The BSD rules that differ from GNU chmod: `s` and `t` are ignored for `o` alone, `=`
//! without `t` keeps the sticky bit, and an operation whose permissions include `t` but whose
//! `who` is empty applies to the sticky bit only (`+rwt` sets just `t`). The unit tests pin each
//! against what the `dchapes-mode` BuildKit vendors gives.

use std::fmt;

/// The permission bits a mode value may touch.
const ALL: u32 = 0o7777;
/// What `a` (or an empty `who` with `=`) selects: everything but the sticky bit.
const STANDARD: u32 = 0o6777;
const STICKY: u32 = 0o1000;
const SET_IDS: u32 = 0o6000;
const EXEC: u32 = 0o111;
const OTHER: u32 = 0o007;

/// A parsed `--chmod` value.
#[derive(Clone, PartialEq, Eq)]
pub enum Chmod {
    /// Every entry gets these bits (the special ones included), whatever its own mode.
    Octal(u32),
    /// Each entry's mode is changed by these operations, in order.
    Symbolic(Vec<Op>),
}

/// One step of a symbolic mode, applied to the bits as the steps before it left them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    Clear(u32),
    Set(u32),
    /// `+X`, `=X`: these bits, when the entry is a directory or had any execute bit to begin
    /// with.
    SetIfExecutable(u32),
    /// `g=u`, `o+g`, `go-u`: one class's `rwx` (as it is at this step) given to, added to or
    /// taken from the classes at `targets` (shifts 6, 3, 0).
    Copy {
        from_shift: u32,
        targets: [bool; 3],
        how: CopyHow,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CopyHow {
    Add,
    Remove,
    Assign,
}

impl fmt::Debug for Chmod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Chmod::Octal(m) => write!(f, "Octal({m:o})"),
            Chmod::Symbolic(ops) => f.debug_tuple("Symbolic").field(ops).finish(),
        }
    }
}

impl Chmod {
    /// Parses a value the way BuildKit's Dockerfile frontend does: digits are octal (at most
    /// `7777`), anything else is symbolic.
    pub fn parse(value: &str) -> Result<Chmod, String> {
        let first = value.bytes().next().ok_or_else(|| "empty --chmod value".to_string())?;
        if first.is_ascii_digit() {
            let octal = value.bytes().all(|b| (b'0'..=b'7').contains(&b));
            return match u32::from_str_radix(value, 8) {
                Ok(m) if octal && m <= ALL => Ok(Chmod::Octal(m)),
                _ => Err(format!("invalid --chmod value {value:?}: an octal mode must be between 0 and 7777")),
            };
        }
        parse_symbolic(value.as_bytes()).map(Chmod::Symbolic).map_err(|at| {
            format!(
                "invalid --chmod value {value:?} (at {:?}): expected an octal mode such as 0755 or a symbolic one such as u=rwX,go=rX",
                &value[at..]
            )
        })
    }

    /// The octal mode, if this is one: what the directories a copy creates for its destination
    /// get (BuildKit gives them 0755 with a symbolic value).
    pub fn octal(&self) -> Option<u32> {
        match self {
            Chmod::Octal(m) => Some(*m),
            Chmod::Symbolic(_) => None,
        }
    }

    /// The mode of a directory the copy makes itself (a missing parent, or the destination a
    /// directory's contents go into), as BuildKit makes it: an octal mode's permission bits
    /// only — fsutil's `MkdirAll(…, os.FileMode(mode))` passes a raw mode as a Go `FileMode`,
    /// whose setuid, setgid and sticky flags are other bits, so `--chmod=4755` makes such a
    /// directory 0755. A symbolic mode gives none (`None`).
    pub fn made_dir_mode(&self) -> Option<u32> {
        self.octal().map(|m| m & 0o777)
    }

    /// The mode an entry whose own mode is `mode` gets. The file-type bits above `0o7777` are
    /// kept; `is_dir` matters to `X` only.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let ops = match self {
            Chmod::Octal(m) => return (mode & !ALL) | m,
            Chmod::Symbolic(ops) => ops,
        };
        let orig = mode & ALL;
        let mut m = orig;
        for op in ops {
            match *op {
                Op::Clear(b) => m &= !b,
                Op::Set(b) => m |= b,
                Op::SetIfExecutable(b) => {
                    if is_dir || orig & EXEC != 0 {
                        m |= b
                    }
                }
                Op::Copy { from_shift, targets, how } => {
                    let value = (m >> from_shift) & 0o7;
                    let clear = match how {
                        CopyHow::Add => 0,
                        CopyHow::Remove => value,
                        CopyHow::Assign => 0o7,
                    };
                    let set = if how == CopyHow::Remove { 0 } else { value };
                    for (shift, _) in [6, 3, 0].into_iter().zip(targets).filter(|(_, on)| *on) {
                        m = (m & !(clear << shift)) | (set << shift);
                    }
                }
            }
        }
        (mode & !ALL) | m
    }
}

/// Parses `clause[,clause…]`, each `[ugoa]*` then one or more `op[perms]`. An error is the
/// byte offset where the value stopped making sense.
fn parse_symbolic(s: &[u8]) -> Result<Vec<Op>, usize> {
    let mut ops = Vec::new();
    let mut i = 0;
    loop {
        // `who`: the bits a clause may touch; 0 is none named, which means all of them.
        let mut who = 0;
        while let Some(b) = s.get(i) {
            who |= match b {
                b'a' => STANDARD,
                b'u' => 0o4700,
                b'g' => 0o2070,
                b'o' => OTHER,
                _ => break,
            };
            i += 1;
        }
        loop {
            let op = *s.get(i).ok_or(i)?;
            if !matches!(op, b'+' | b'-' | b'=') {
                return Err(i);
            }
            i += 1;
            // `t` widens `who` for this operation only.
            let mut who = who;
            let mut perm = 0;
            let mut exec_if = 0;
            let mut assigned = false;
            while let Some(&b) = s.get(i) {
                match b {
                    b'r' => perm |= 0o444,
                    b'w' => perm |= 0o222,
                    b'x' => perm |= EXEC,
                    b'X' if op == b'-' => perm |= EXEC,
                    b'X' => exec_if = EXEC,
                    b's' if who == 0 || who & !OTHER != 0 => perm |= SET_IDS,
                    b't' if who == 0 || who & !OTHER != 0 => {
                        who |= STICKY;
                        perm |= STICKY;
                    }
                    b's' | b't' => {}
                    b'u' | b'g' | b'o' => {
                        if perm != 0 {
                            push(&mut ops, op, who, perm);
                            perm = 0;
                        }
                        assigned |= op == b'=';
                        if exec_if != 0 {
                            ops.push(Op::SetIfExecutable(select(who, exec_if)));
                            exec_if = 0;
                        }
                        let from_shift = match b {
                            b'u' => 6,
                            b'g' => 3,
                            _ => 0,
                        };
                        let targets =
                            if who == 0 { [true; 3] } else { [who & 0o400 != 0, who & 0o040 != 0, who & 0o004 != 0] };
                        let how = match op {
                            b'+' => CopyHow::Add,
                            b'-' => CopyHow::Remove,
                            _ => CopyHow::Assign,
                        };
                        ops.push(Op::Copy { from_shift, targets, how });
                    }
                    _ => break,
                }
                i += 1;
            }
            if perm != 0 || (op == b'=' && !assigned) {
                push(&mut ops, op, who, perm);
            }
            if exec_if != 0 {
                ops.push(Op::SetIfExecutable(select(who, exec_if)));
            }
            match s.get(i) {
                None => return Ok(ops),
                Some(b',') => {
                    i += 1;
                    break;
                }
                Some(_) => {}
            }
        }
    }
}

/// The bits of `perm` a clause's `who` selects (all of them when none was named).
fn select(who: u32, perm: u32) -> u32 {
    if who == 0 { perm } else { who & perm }
}

fn push(ops: &mut Vec<Op>, op: u8, who: u32, perm: u32) {
    match op {
        b'+' => ops.push(Op::Set(select(who, perm))),
        b'-' => ops.push(Op::Clear(select(who, perm))),
        _ => {
            ops.push(Op::Clear(if who == 0 { STANDARD } else { who }));
            ops.push(Op::Set(select(who, perm)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(value: &str, mode: u32, is_dir: bool) -> u32 {
        Chmod::parse(value).unwrap_or_else(|e| panic!("{value}: {e}")).apply(mode, is_dir)
    }

    #[test]
    fn octal_replaces_the_bits() {
        assert_eq!(apply("755", 0o100600, false), 0o100755);
        assert_eq!(apply("0640", 0o104777, false), 0o100640);
        assert_eq!(apply("4755", 0o040700, true), 0o044755);
        assert_eq!(apply("000755", 0o600, false), 0o755);
        assert_eq!(Chmod::parse("0755").unwrap().octal(), Some(0o755));
        assert_eq!(Chmod::parse("u+x").unwrap().octal(), None);
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in ["", "999", "17777", "0o755", "8", "1x", "u", "a,", "u+x,", "q+x", "u+x,,g+r", "-1", "u+q"] {
            assert!(Chmod::parse(bad).is_err(), "{bad:?} accepted");
        }
        let e = Chmod::parse("u+rwx,g+q").unwrap_err();
        assert!(e.contains("\"u+rwx,g+q\" (at \"q\")") && e.contains("u=rwX,go=rX"), "{e}");
        assert!(Chmod::parse("999").unwrap_err().contains("between 0 and 7777"));
    }

    // Expected values below are what `Set.Apply` of the dchapes-mode BuildKit vendors gives.
    #[test]
    fn common_symbolic_values() {
        // Directories 0755 and files 0644, an executable staying executable.
        assert_eq!(apply("u=rwX,go=rX", 0o600, false), 0o644);
        assert_eq!(apply("u=rwX,go=rX", 0o700, true), 0o755);
        assert_eq!(apply("u=rwX,go=rX", 0o700, false), 0o755);
        assert_eq!(apply("a+rX,go-w", 0o666, false), 0o644);
        assert_eq!(apply("a+rX,go-w", 0o770, true), 0o755);
        assert_eq!(apply("+x", 0o644, false), 0o755);
        assert_eq!(apply("u+x", 0o644, false), 0o744);
        assert_eq!(apply("g=u", 0o750, false), 0o770);
        assert_eq!(apply("go=u-w", 0o755, false), 0o755);
        assert_eq!(apply("go-u", 0o677, false), 0o611);
        assert_eq!(apply("o=g,g=u", 0o751, false), 0o775);
        assert_eq!(apply("u=rw,g=r,o=", 0o777, false), 0o640);
        assert_eq!(apply("a=", 0o1777, true), 0o1000);
        assert_eq!(apply("u+r-w", 0o200, false), 0o400);
    }

    #[test]
    fn bsd_quirks_as_buildkit_has_them() {
        // X after `=` as after `+`; after `-` it is `x`.
        assert_eq!(apply("a=X", 0o755, false), 0o111);
        assert_eq!(apply("a=X", 0o644, false), 0o000);
        assert_eq!(apply("a-X", 0o755, false), 0o644);
        // s and t for `o` alone are ignored; for `u`, `g` or no `who` they count.
        assert_eq!(apply("o+s", 0o644, false), 0o644);
        assert_eq!(apply("o+t", 0o644, false), 0o644);
        assert_eq!(apply("u+s", 0o755, false), 0o4755);
        assert_eq!(apply("g+s", 0o755, true), 0o2755);
        assert_eq!(apply("+s", 0o755, false), 0o6755);
        assert_eq!(apply("+t", 0o755, true), 0o1755);
        // `=` keeps the sticky bit unless `t` is named.
        assert_eq!(apply("a=rx", 0o1777, true), 0o1555);
        assert_eq!(apply("=rx", 0o1777, true), 0o1555);
        assert_eq!(apply("u=rwxt", 0o1777, true), 0o1777);
        // An empty `who` with `t` touches the sticky bit alone.
        assert_eq!(apply("+rwt", 0o000, false), 0o1000);
        // X looks at the mode before the value, not as the clauses before it left it.
        assert_eq!(apply("a-x,a+X", 0o755, false), 0o755);
        assert_eq!(apply("a+x,a-x,a+X", 0o644, false), 0o644);
    }

    #[test]
    fn file_type_bits_are_kept() {
        assert_eq!(apply("go-rwx", 0o040755, true), 0o040700);
        assert_eq!(apply("0644", 0o120777, false), 0o120644);
    }
}
