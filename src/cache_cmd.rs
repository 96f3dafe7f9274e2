//! `trowel cache prune` and `trowel cache check`, and the prune `build` and `warm` run at their
//! end with `--cache-dir-max-size`: the engine's `cache::prune` with what it did printed for
//! people, one line per entry, sizes as everywhere else in trowel.

use std::path::Path;
use std::time::SystemTime;

use trowel_engine::cache::prune::{self, Outcome, Policy};

use crate::cli::{CacheArgs, CacheCommand};
use crate::units::bytes;

pub fn main(args: &CacheArgs) -> i32 {
    match &args.command {
        CacheCommand::Prune(a) => {
            if a.max_size.is_none() && a.max_age.is_none() {
                eprintln!("error: trowel cache prune needs --max-size, --max-age or both");
                return 2;
            }
            let policy = Policy { max_size: a.max_size, max_age: a.max_age, dry_run: a.dry_run, wait_for_blobs: true };
            match prune::prune(&a.cache_dir, &policy) {
                Ok(o) => {
                    print!("{}", render(&a.cache_dir, &o, a.dry_run));
                    0
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    2
                }
            }
        }
        CacheCommand::Check(a) => match prune::check(&a.cache_dir, a.dry_run) {
            Ok(findings) => {
                for f in &findings {
                    let what = if f.removed { "removed" } else { "kept" };
                    println!("{}: {} ({what})", rel(&a.cache_dir, &f.path), f.problem);
                }
                let corrupt = findings.iter().filter(|f| f.corrupt).count();
                if corrupt == 0 {
                    println!("{}: every entry intact", a.cache_dir.display());
                    0
                } else {
                    let noun = if corrupt == 1 { "entry" } else { "entries" };
                    println!("{corrupt} corrupt {noun} found");
                    1
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                2
            }
        },
    }
}

/// The prune a build or warm runs at its end (`--cache-dir-max-size`): never waits for other
/// builds, and its failure only warns (the build itself succeeded).
pub fn after_build(cache_dir: &Path, max_size: u64) -> Result<String, String> {
    let policy = Policy { max_size: Some(max_size), max_age: None, dry_run: false, wait_for_blobs: false };
    let o = prune::prune(cache_dir, &policy).map_err(|e| e.to_string())?;
    let n = o.removed.len();
    let mut s = format!(
        "cache dir {}: {} after removing {n} {} and blobs ({} freed)",
        cache_dir.display(),
        bytes(o.after),
        if n == 1 { "entry" } else { "entries" },
        bytes(o.before.saturating_sub(o.after))
    );
    if let Some(why) = &o.blobs_skipped {
        s.push_str(&format!("; blobs not collected: {why}"));
    }
    Ok(s)
}

fn rel(base: &Path, p: &Path) -> String {
    p.strip_prefix(base).unwrap_or(p).display().to_string()
}

fn ago(t: SystemTime) -> String {
    let s = t.elapsed().map(|d| d.as_secs()).unwrap_or(0);
    match s {
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s if s < 172_800 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

/// One line per entry removed (or, in a dry run, that would be), then the totals.
pub fn render(cache_dir: &Path, o: &Outcome, dry_run: bool) -> String {
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut s = String::new();
    for r in &o.removed {
        let kind = r.kind.map_or("blob", |k| k.name());
        let used = r.last_use.map(|t| format!(", last used {}", ago(t))).unwrap_or_default();
        s.push_str(&format!("{verb} {kind} {} ({}{used})\n", rel(cache_dir, &r.path), bytes(r.bytes)));
    }
    for i in &o.in_use {
        s.push_str(&format!(
            "kept {} {} (in use by a running build, or used since the prune began)\n",
            i.kind.name(),
            rel(cache_dir, &i.path)
        ));
    }
    for l in &o.leftovers {
        s.push_str(&format!("{verb} leftover {}\n", rel(cache_dir, l)));
    }
    if let Some(why) = &o.blobs_skipped {
        s.push_str(&format!("blobs not collected: {why}\n"));
    }
    let after = if dry_run { "would be left" } else { "left" };
    s.push_str(&format!(
        "{}: {} before, {} {after} ({} freed)\n",
        cache_dir.display(),
        bytes(o.before),
        bytes(o.after),
        bytes(o.before.saturating_sub(o.after))
    ));
    s
}
