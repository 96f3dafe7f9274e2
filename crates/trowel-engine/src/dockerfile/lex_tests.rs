use std::collections::BTreeMap;

use super::*;

fn vars() -> BTreeMap<String, String> {
    [
        ("HOME", "/root"),
        ("NAME", "trowel"),
        ("EMPTY", ""),
        ("SPACED", "  one two  "),
        ("PATHS", "/usr/local/lib/libfoo.so.1.2"),
        ("GREEK", "αβγ"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn word(input: &str) -> String {
    Lexer::new('\\').process_word(input, &vars()).unwrap_or_else(|e| panic!("{input:?}: {e}"))
}

fn word_err(input: &str) -> String {
    Lexer::new('\\').process_word(input, &vars()).expect_err(input)
}

fn words(input: &str) -> Vec<String> {
    Lexer::new('\\').process_words(input, &vars()).unwrap_or_else(|e| panic!("{input:?}: {e}"))
}

#[test]
fn plain_and_braced_references() {
    assert_eq!(word("$HOME/bin"), "/root/bin");
    assert_eq!(word("${HOME}bin"), "/rootbin");
    assert_eq!(word("a$NAME.b"), "atrowel.b");
    assert_eq!(word("$UNSET-x"), "-x");
    assert_eq!(word("${UNSET}"), "");
    assert_eq!(word("${GREEK}!"), "αβγ!");
}

#[test]
fn dollar_without_name_is_literal() {
    assert_eq!(word("cost: 5$"), "cost: 5$");
    assert_eq!(word("$.x"), "$.x");
    assert_eq!(word("$ x"), "$ x");
}

#[test]
fn positional_and_special_parameters_are_empty() {
    assert_eq!(word("a$1b"), "ab");
    assert_eq!(word("a$12b"), "ab");
    assert_eq!(word("$@x$*y$#z$?"), "xyz");
    assert_eq!(word("$$"), "");
    assert_eq!(word("${0:-zero}"), "zero");
    assert_eq!(word("${#}"), "");
    assert_eq!(word("${#:-n}"), "n");
}

#[test]
fn default_and_alternative_values() {
    assert_eq!(word("${UNSET:-dflt}"), "dflt");
    assert_eq!(word("${EMPTY:-dflt}"), "dflt");
    assert_eq!(word("${NAME:-dflt}"), "trowel");
    assert_eq!(word("${UNSET-dflt}"), "dflt");
    assert_eq!(word("${EMPTY-dflt}"), "");
    assert_eq!(word("${NAME:+alt}"), "alt");
    assert_eq!(word("${EMPTY:+alt}"), "");
    assert_eq!(word("${EMPTY+alt}"), "alt");
    assert_eq!(word("${UNSET+alt}"), "");
    assert_eq!(word("${UNSET:-${NAME}-x}"), "trowel-x");
    assert_eq!(word("${UNSET:-${ALSO:-deep}}"), "deep");
    assert_eq!(word("${NAME:+${HOME}:}"), "/root:");
    assert_eq!(word("${UNSET:-a b}"), "a b");
    assert_eq!(word("${UNSET:-\\$HOME}"), "$HOME");
    assert_eq!(word("${UNSET:-\\}}"), "}");
    assert_eq!(word("${NAME}}"), "trowel}");
}

#[test]
fn required_values() {
    assert_eq!(word("${NAME?}"), "trowel");
    assert_eq!(word("${EMPTY?}"), "");
    assert_eq!(word("${NAME:?}"), "trowel");
    assert!(word_err("${UNSET?}").contains("UNSET: is not allowed to be unset"));
    assert!(word_err("${EMPTY:?}").contains("EMPTY: is not allowed to be empty"));
    assert!(word_err("${UNSET:?set it with $NAME}").contains("UNSET: set it with trowel"));
}

#[test]
fn length() {
    assert_eq!(word("${#NAME}"), "6");
    assert_eq!(word("${#GREEK}"), "3");
    assert_eq!(word("${#UNSET}"), "0");
    assert!(word_err("${#NAME:-x}").contains("bad substitution"));
}

#[test]
fn prefix_and_suffix_removal() {
    assert_eq!(word("${PATHS#*/}"), "usr/local/lib/libfoo.so.1.2");
    assert_eq!(word("${PATHS##*/}"), "libfoo.so.1.2");
    assert_eq!(word("${PATHS%.*}"), "/usr/local/lib/libfoo.so.1");
    assert_eq!(word("${PATHS%%.*}"), "/usr/local/lib/libfoo");
    assert_eq!(word("${PATHS#/usr}"), "/local/lib/libfoo.so.1.2");
    assert_eq!(word("${PATHS#nomatch}"), "/usr/local/lib/libfoo.so.1.2");
    assert_eq!(word("${NAME#?}"), "rowel");
    assert_eq!(word("${NAME%?}"), "trowe");
    assert_eq!(word("${NAME#*}"), "trowel");
    assert_eq!(word("${NAME##*}"), "");
    assert_eq!(word("${NAME%}"), "trowel");
    assert_eq!(word("${UNSET%x}"), "");
    assert!(word_err("${NAME:#x}").contains("unsupported modifier (:#)"));
    assert!(word_err("${NAME:%x}").contains("unsupported modifier (:%)"));
}

#[test]
fn escaped_pattern_characters() {
    let v: BTreeMap<String, String> =
        [("STARS".to_string(), "ab**".to_string()), ("Q".to_string(), "??x".to_string())].into();
    let lex = Lexer::new('\\');
    assert_eq!(lex.process_word("${STARS%%\\**}", &v).unwrap(), "ab");
    assert_eq!(lex.process_word("${Q#\\?}", &v).unwrap(), "?x");
    assert!(lex.process_word("${Q#\\x}", &v).unwrap_err().contains("invalid escape"));
}

#[test]
fn replacement() {
    assert_eq!(word("${PATHS/lib/LIB}"), "/usr/local/LIB/libfoo.so.1.2");
    assert_eq!(word("${PATHS//lib/LIB}"), "/usr/local/LIB/LIBfoo.so.1.2");
    assert_eq!(word("${PATHS//\\//:}"), ":usr:local:lib:libfoo.so.1.2");
    assert_eq!(word("${PATHS/*\\//}"), "libfoo.so.1.2");
    assert_eq!(word("${NAME/?/T}"), "Trowel");
    assert_eq!(word("${NAME/x/y}"), "trowel");
    assert_eq!(word("${NAME///}"), "trowel");
    assert_eq!(word("${NAME/$EMPTY/>}"), ">trowel");
    assert_eq!(word("${NAME//$EMPTY/-}"), "-t-r-o-w-e-l-");
    assert_eq!(word("${UNSET/a/b}"), "");
    assert!(word_err("${NAME/x}").contains("missing '/' in ${}"));
    assert!(word_err("${NAME//}").contains("missing"));
}

#[test]
fn replace_all_skips_empty_match_after_match() {
    let v: BTreeMap<String, String> = [("V".to_string(), "baaac".to_string())].into();
    let lex = Lexer::new('\\');
    // `*` is a glob: `a*` is "a and anything after it".
    assert_eq!(lex.process_word("${V//a*/X}", &v).unwrap(), "bX");
    // The whole value matches, then the empty match at the end touches it and is skipped.
    assert_eq!(lex.process_word("${V//*/X}", &v).unwrap(), "X");
    assert_eq!(lex.process_word("${V/a/X}", &v).unwrap(), "bXaac");
}

#[test]
fn syntax_errors() {
    assert!(word_err("${}").contains("bad substitution"));
    assert!(word_err("${:-x}").contains("bad substitution"));
    assert!(word_err("${{x}").contains("bad substitution"));
    assert!(word_err("${NAME").contains("missing '}'"));
    assert!(word_err("${NAME:-x").contains("missing '}'"));
    assert!(word_err("${NAME:=x}").contains("unsupported modifier (:=)"));
    assert!(word_err("${NAME.x}").contains("unsupported modifier (.)"));
    assert!(word_err("${NAME:-x ${y}").contains("missing '}'"));
    assert_eq!(word_err("${NAME"), "failed to process \"${NAME\": syntax error: missing '}'");
}

#[test]
fn single_quotes_are_literal() {
    assert_eq!(word("'$HOME'"), "$HOME");
    assert_eq!(word("'a\\tb'"), "a\\tb");
    assert_eq!(word("x'${NAME}'y"), "x${NAME}y");
    assert_eq!(word("'\"quoted\"'"), "\"quoted\"");
    assert!(word_err("'open").contains("single-quote"));
    assert_eq!(word("'a\\'"), "a\\");
}

#[test]
fn double_quotes_expand() {
    assert_eq!(word("\"$HOME\""), "/root");
    assert_eq!(word("\"it's $NAME\""), "it's trowel");
    assert_eq!(word("\"a\\\"b\""), "a\"b");
    assert_eq!(word("\"a\\$HOME\""), "a$HOME");
    assert_eq!(word("\"a\\\\b\""), "a\\b");
    assert_eq!(word("\"a\\tb\""), "a\\tb");
    assert_eq!(word("\"'$NAME'\""), "'trowel'");
    assert!(word_err("\"open").contains("double-quote"));
    assert!(word_err("\"a\\\"").contains("double-quote"));
}

#[test]
fn escapes_outside_quotes() {
    assert_eq!(word("\\$HOME"), "$HOME");
    assert_eq!(word("\\\\$HOME"), "\\/root");
    assert_eq!(word("a\\tb"), "atb");
    assert_eq!(word("it\\'s"), "it's");
    assert_eq!(word("trailing\\"), "trailing");
    assert_eq!(word("\\${NAME}"), "${NAME}");
}

#[test]
fn backtick_escape() {
    let lex = Lexer::new('`');
    let v = vars();
    assert_eq!(lex.process_word("`$HOME", &v).unwrap(), "$HOME");
    assert_eq!(lex.process_word("C:\\dir\\$NAME", &v).unwrap(), "C:\\dir\\trowel");
    assert_eq!(lex.process_word("\"a`\"b\"", &v).unwrap(), "a\"b");
    assert_eq!(lex.process_word("a``b", &v).unwrap(), "a`b");
}

#[test]
fn word_splitting() {
    assert_eq!(words("a b  c"), ["a", "b", "c"]);
    assert_eq!(words("x$SPACED"), ["x", "one", "two"]);
    assert_eq!(words("x\"$SPACED\"y"), ["x  one two  y"]);
    assert_eq!(words("'a b' c"), ["a b", "c"]);
    assert_eq!(words("a\\ b"), ["a b"]);
    assert_eq!(words("a \"\" b"), ["a", "b"]);
    assert_eq!(words("$EMPTY"), Vec::<String>::new());
    assert_eq!(words("80/tcp ${UNSET:-443}"), ["80/tcp", "443"]);
    assert_eq!(words("cat << EOF"), ["cat", "<< EOF"]);
    assert_eq!(words("a<b c"), ["a<b", "c"]);
}

#[test]
fn raw_modes() {
    let lex = Lexer { raw_quotes: true, raw_escapes: true, skip_unset_env: true, ..Lexer::new('\\') };
    let none: BTreeMap<String, String> = BTreeMap::new();
    assert_eq!(
        lex.process_words("cat <<\"EOF\" 'a b' \\x $V ${W:-d}", &none).unwrap(),
        ["cat", "<<\"EOF\"", "'a b'", "\\x", "$V", "${W:-d}"]
    );
    let quoteless = Lexer { skip_process_quotes: true, ..Lexer::new('\\') };
    assert_eq!(
        quoteless.process_word("say \"$NAME\" '$NAME' \\$NAME", &vars()).unwrap(),
        "say \"trowel\" 'trowel' $NAME"
    );
}

#[test]
fn closures_as_vars() {
    let f = |name: &str| (name == "X").then(|| "42".to_string());
    assert_eq!(Lexer::new('\\').process_word("${X}-${Y:-n}", &f).unwrap(), "42-n");
}

#[test]
fn wildcards_stop_at_newlines() {
    let v: BTreeMap<String, String> = [("V".to_string(), "a1\nb2\nc3".to_string())].into();
    let lex = Lexer::new('\\');
    assert_eq!(lex.process_word("${V#*\n}", &v).unwrap(), "b2\nc3");
    assert_eq!(lex.process_word("${V##*1}", &v).unwrap(), "\nb2\nc3");
    assert_eq!(lex.process_word("${V%\n*}", &v).unwrap(), "a1\nb2");
    // The longest suffix "newline, then anything" cannot reach across the second newline.
    assert_eq!(lex.process_word("${V%%\n*}", &v).unwrap(), "a1\nb2");
    assert_eq!(lex.process_word("${V//?2/X}", &v).unwrap(), "a1\nX\nc3");
    assert_eq!(lex.process_word("${V//*/-}", &v).unwrap(), "-\n-\n-");
    assert_eq!(lex.process_word("${V/a*c/X}", &v).unwrap(), "a1\nb2\nc3");
}

#[test]
fn leftmost_then_longest() {
    let v: BTreeMap<String, String> = [("V".to_string(), "xaXbYbZ".to_string())].into();
    let lex = Lexer::new('\\');
    assert_eq!(lex.process_word("${V/a*b/-}", &v).unwrap(), "x-Z");
    assert_eq!(lex.process_word("${V//b?/-}", &v).unwrap(), "xaX--");
    assert_eq!(lex.process_word("${V//[/-}", &v).unwrap(), "xaXbYbZ");
}

#[test]
fn long_values_stay_fast() {
    let long = "a".repeat(200_000);
    let v: BTreeMap<String, String> = [("V".to_string(), long.clone())].into();
    let lex = Lexer::new('\\');
    let started = std::time::Instant::now();
    assert_eq!(lex.process_word("${V//a*b/x}", &v).unwrap(), long);
    assert_eq!(lex.process_word("${V%%*b}", &v).unwrap(), long);
    assert_eq!(lex.process_word("${V#*a}", &v).unwrap().len(), 199_999);
    assert_eq!(lex.process_word("${V//a/b}", &v).unwrap(), "b".repeat(200_000));
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
}

#[test]
fn deep_nesting_is_refused() {
    let ok = format!("{}x{}", "${U:-".repeat(60), "}".repeat(60));
    assert_eq!(word(&ok), "x");
    let deep = format!("{}x{}", "${U:-".repeat(100_000), "}".repeat(100_000));
    assert!(word_err(&deep).contains("nested more than 64 deep"));
}
