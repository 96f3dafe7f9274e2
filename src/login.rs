//! `trowel login` and `trowel logout`: `docker login`/`docker logout` for the Docker config
//! trowel's builds read, so a CI job (or a debug pod) can log in once and build without a
//! credential helper. The kaniko fork's `executor login` does the same, without the check.
//!
//! What is said on the terminal is Docker's (the `--password` warning, `Login Succeeded`,
//! `Removing login credentials for …`), never the password: it is read from `-p` or standard
//! input, sent to the registry once for the check, and written only into the config file (or
//! handed to its credential helper).

use std::io::{IsTerminal, Read};

use trowel_engine::registry::{self, LoginCheck, Registry};

use crate::cli::{LoginArgs, LogoutArgs};

/// Docker's warning, word for word: users and linters know it.
const PASSWORD_FLAG_WARNING: &str = "WARNING! Using --password via the CLI is insecure. Use --password-stdin.";

/// Exit codes: 0 saved, 1 refused or failed, 2 bad flags.
pub fn login(args: &LoginArgs) -> i32 {
    let Some(username) = args.username.as_deref().filter(|u| !u.is_empty()) else {
        eprintln!("error: a username is required: -u USER (trowel login does not prompt)");
        return 2;
    };
    let password = if args.password_stdin {
        if std::io::stdin().is_terminal() {
            eprintln!(
                "error: --password-stdin reads the password from standard input, which is a terminal: pipe it in"
            );
            return 2;
        }
        let mut raw = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut raw) {
            eprintln!("error: reading the password from standard input: {e}");
            return 1;
        }
        let p = raw.strip_suffix('\n').unwrap_or(&raw);
        p.strip_suffix('\r').unwrap_or(p).to_string()
    } else if let Some(p) = &args.password {
        eprintln!("{PASSWORD_FLAG_WARNING}");
        p.clone()
    } else {
        eprintln!("error: no password: pipe it to --password-stdin (or give -p)");
        return 2;
    };
    if password.is_empty() {
        eprintln!("error: the password is empty");
        return 2;
    }
    let opts = match args.registry_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let checked =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string()).and_then(|rt| {
            let registry = Registry::new(opts).map_err(|e| e.to_string())?;
            rt.block_on(registry.check_login(&args.server, username, &password)).map_err(|e| e.to_string())
        });
    match checked {
        Ok(LoginCheck::Accepted) => {}
        Ok(LoginCheck::NotRequired) => {
            eprintln!("note: {} lets everyone in: the credentials could not be checked", args.server);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    }
    match registry::store_login(args.docker_config.as_deref(), &args.server, username, &password) {
        Ok(entry) => {
            match &entry.helper {
                Some(h) => eprintln!("credentials for {} saved in docker-credential-{h}", entry.key),
                None => eprintln!("credentials for {} saved in {}", entry.key, entry.path.display()),
            }
            if registry::shadowed_by_docker_auth_config(&args.server) {
                eprintln!(
                    "warning: {} has credentials for {}: builds use them, not the ones saved now (unset it to use these)",
                    registry::DOCKER_AUTH_CONFIG,
                    entry.key
                );
            }
            println!("Login Succeeded");
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

pub fn logout(args: &LogoutArgs) -> i32 {
    match registry::forget_login(args.docker_config.as_deref(), &args.server) {
        Ok(Some(entry)) => {
            println!("Removing login credentials for {}", entry.key);
            0
        }
        Ok(None) => {
            println!("Not logged in to {}", registry::auth_key(&args.server));
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
