//! kaniko's deprecated flag spellings. They still work (a kaniko job must run unchanged), and, as
//! kaniko does, each use prints a warning naming the flag to use instead. clap cannot say which
//! of a flag's aliases was given, so the command line is read here, once, before parsing.

/// kaniko executor's deprecated spellings, and the warning kaniko prints for each (its words).
const EXECUTOR: &[(&str, &str)] = &[
    ("--whitelist-var-run", "Flag --whitelist-var-run has been deprecated, Please use ignore-var-run instead."),
    ("--customPlatform", "Flag --customPlatform is deprecated. Use: --custom-platform"),
    ("--snapshotMode", "Flag --snapshotMode is deprecated. Use: --snapshot-mode"),
    ("--tarPath", "Flag --tarPath is deprecated. Use: --tar-path"),
];

/// The warnings for the deprecated flags in `args` (as `normalize_args` returns them: the
/// subcommand first). Only `build` and `debug` take the executor's flags; the warmer's
/// `--customPlatform` is its only spelling in kaniko, so it is not deprecated there.
pub fn deprecation_warnings(args: &[String]) -> Vec<&'static str> {
    if !matches!(args.get(1).map(String::as_str), Some("build" | "debug")) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for a in args.iter().skip(2).take_while(|a| a.as_str() != "--") {
        let name = a.split_once('=').map_or(a.as_str(), |(n, _)| n);
        if let Some((_, warning)) = EXECUTOR.iter().find(|(flag, _)| *flag == name)
            && !out.contains(warning)
        {
            out.push(*warning);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn deprecated_spellings_warn_once_each() {
        let w = deprecation_warnings(&args(&[
            "trowel",
            "build",
            "--whitelist-var-run=false",
            "--customPlatform",
            "linux/arm64",
            "--tarPath=/x.tar",
            "--whitelist-var-run",
        ]));
        assert_eq!(
            w,
            [
                "Flag --whitelist-var-run has been deprecated, Please use ignore-var-run instead.",
                "Flag --customPlatform is deprecated. Use: --custom-platform",
                "Flag --tarPath is deprecated. Use: --tar-path",
            ]
        );
        assert!(
            deprecation_warnings(&args(&["trowel", "build", "--ignore-var-run=false", "--tar-path", "x"])).is_empty()
        );
        assert!(deprecation_warnings(&args(&["trowel", "warm", "--customPlatform", "linux/arm64"])).is_empty());
    }
}
