//! Variables as BuildKit's dispatcher holds them while it walks a stage, and expansion that
//! records what it looked up (BuildKit's `ProcessWordWithMatches`): which names were set, which
//! were not (UndefinedVar, UndefinedArgInFrom), and whether anything read came from the base
//! image, so a check made before the base is known can leave out what depends on it.

use std::cell::RefCell;

use super::super::expand::Vars;
use super::super::lex::Lexer;

/// Who set a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// The base image (its ENV, or the default PATH BuildKit adds when it has none).
    Base,
    /// The Dockerfile; `tainted` when the value was expanded from something the base set.
    Dockerfile { tainted: bool },
}

/// A stage's environment: ordered as BuildKit's `EnvList` orders its keys (a key set again
/// moves to the end), which decides the suggestion when two names are equally close.
#[derive(Debug, Clone, Default)]
pub(super) struct Env {
    vars: Vec<(String, String, Origin)>,
}

impl Env {
    pub fn set(&mut self, key: &str, value: &str, origin: Origin) {
        self.vars.retain(|(k, _, _)| k != key);
        self.vars.push((key.to_string(), value.to_string(), origin));
    }

    pub fn get(&self, key: &str) -> Option<(&str, Origin)> {
        self.vars.iter().find(|(k, _, _)| k == key).map(|(_, v, o)| (v.as_str(), *o))
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.vars.iter().map(|(k, _, _)| k.as_str())
    }
}

/// What an expansion looked up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Lookups {
    /// Names that were set, in the order first read.
    pub matched: Vec<String>,
    /// Names that were not, in the order first read.
    pub unmatched: Vec<String>,
    /// Something read was set by the base image, derived from it, or not set at all (which a
    /// base image could change).
    pub base_sensitive: bool,
}

struct Recorder<'a> {
    env: &'a Env,
    log: RefCell<Lookups>,
}

impl Vars for Recorder<'_> {
    fn get(&self, name: &str) -> Option<String> {
        let mut log = self.log.borrow_mut();
        match self.env.get(name) {
            Some((value, origin)) => {
                if !log.matched.iter().any(|m| m == name) {
                    log.matched.push(name.to_string());
                }
                log.base_sensitive |= origin != Origin::Dockerfile { tainted: false };
                Some(value.to_string())
            }
            None => {
                if !log.unmatched.iter().any(|m| m == name) {
                    log.unmatched.push(name.to_string());
                }
                log.base_sensitive = true;
                None
            }
        }
    }
}

fn run<T>(env: &Env, f: impl FnOnce(&dyn Vars) -> Result<T, String>) -> (Result<T, String>, Lookups) {
    let rec = Recorder { env, log: RefCell::new(Lookups::default()) };
    let out = f(&rec);
    (out, rec.log.into_inner())
}

/// Expands one word (BuildKit's `ProcessWord`).
pub(super) fn word(word: &str, escape: char, env: &Env) -> (Result<String, String>, Lookups) {
    run(env, |v| Lexer::new(escape).process_word(word, v))
}

/// Expands and splits into words (BuildKit's `ProcessWords`, as EXPOSE uses it).
pub(super) fn words(word: &str, escape: char, env: &Env) -> (Result<Vec<String>, String>, Lookups) {
    run(env, |v| Lexer::new(escape).process_words(word, v))
}

/// Expands a COPY/ADD heredoc body: quotes are plain text and the escape is always `\`.
pub(super) fn heredoc(body: &str, env: &Env) -> (Result<String, String>, Lookups) {
    run(env, |v| Lexer { skip_process_quotes: true, ..Lexer::new('\\') }.process_word(body, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, Origin)]) -> Env {
        let mut e = Env::default();
        for (k, o) in pairs {
            e.set(k, &format!("<{k}>"), *o);
        }
        e
    }

    #[test]
    fn records_what_was_set_and_what_was_not() {
        let e = env(&[("A", Origin::Dockerfile { tainted: false })]);
        let (r, l) = word("$A-${B:-x}-${A}", '\\', &e);
        assert_eq!(r.unwrap(), "<A>-x-<A>");
        assert_eq!((l.matched, l.unmatched, l.base_sensitive), (vec!["A".to_string()], vec!["B".to_string()], true));
        let (_, l) = word("'$NOT' \\$NOR $A", '\\', &e);
        assert_eq!((l.unmatched.len(), l.base_sensitive), (0, false));
    }

    #[test]
    fn the_base_image_makes_an_expansion_sensitive() {
        let e = env(&[
            ("HOME", Origin::Base),
            ("APP", Origin::Dockerfile { tainted: true }),
            ("V", Origin::Dockerfile { tainted: false }),
        ]);
        assert!(word("$HOME", '\\', &e).1.base_sensitive);
        assert!(word("$APP", '\\', &e).1.base_sensitive);
        assert!(!word("$V", '\\', &e).1.base_sensitive);
        assert_eq!(words("$V 80/tcp", '\\', &e).0.unwrap(), ["<V>", "80/tcp"]);
        let (r, l) = heredoc("\"$V\" ${X}\n", &e);
        assert_eq!(r.unwrap(), "\"<V>\" \n");
        assert_eq!(l.unmatched, ["X"]);
    }

    #[test]
    fn a_key_set_again_moves_to_the_end() {
        let mut e = env(&[("A", Origin::Base), ("B", Origin::Base)]);
        e.set("A", "1", Origin::Dockerfile { tainted: false });
        assert_eq!(e.keys().collect::<Vec<_>>(), ["B", "A"]);
        assert_eq!(e.get("A"), Some(("1", Origin::Dockerfile { tainted: false })));
    }
}
