//! Every build check BuildKit's Dockerfile frontend has (moby/buildkit
//! `frontend/dockerfile/linter/ruleset.go`): its name, its description, its documentation page
//! and the words of its message, so `trowel check` says what `docker build --check` says.
//!
//! The conditions live with the pass that raises each rule (`syntax.rs`, `from.rs`,
//! `dispatch.rs`); this file is only what users read.

/// A build check.
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    /// The rule's name, as `# check=skip=` takes it (`JSONArgsRecommended`).
    pub name: &'static str,
    /// What the rule is about, in one sentence.
    pub description: &'static str,
    /// Its documentation page (BuildKit gives none for `InvalidBaseImagePlatform`).
    pub url: Option<&'static str>,
    /// Runs only when enabled with `# check=experimental=`.
    pub experimental: bool,
}

const fn rule(name: &'static str, description: &'static str, url: &'static str) -> Rule {
    Rule { name, description, url: Some(url), experimental: false }
}

pub const STAGE_NAME_CASING: Rule = rule(
    "StageNameCasing",
    "Stage names should be lowercase",
    "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/",
);
pub const FROM_AS_CASING: Rule = rule(
    "FromAsCasing",
    "The 'as' keyword should match the case of the 'from' keyword",
    "https://docs.docker.com/go/dockerfile/rule/from-as-casing/",
);
pub const NO_EMPTY_CONTINUATION: Rule = rule(
    "NoEmptyContinuation",
    "Empty continuation lines will become errors in a future release",
    "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/",
);
pub const CONSISTENT_INSTRUCTION_CASING: Rule = rule(
    "ConsistentInstructionCasing",
    "All commands within the Dockerfile should use the same casing (either upper or lower)",
    "https://docs.docker.com/go/dockerfile/rule/consistent-instruction-casing/",
);
pub const DUPLICATE_STAGE_NAME: Rule = rule(
    "DuplicateStageName",
    "Stage names should be unique",
    "https://docs.docker.com/go/dockerfile/rule/duplicate-stage-name/",
);
pub const RESERVED_STAGE_NAME: Rule = rule(
    "ReservedStageName",
    "Reserved words should not be used as stage names",
    "https://docs.docker.com/go/dockerfile/rule/reserved-stage-name/",
);
pub const JSON_ARGS_RECOMMENDED: Rule = rule(
    "JSONArgsRecommended",
    "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals",
    "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/",
);
pub const MAINTAINER_DEPRECATED: Rule = rule(
    "MaintainerDeprecated",
    "The MAINTAINER instruction is deprecated, use a label instead to define an image author",
    "https://docs.docker.com/go/dockerfile/rule/maintainer-deprecated/",
);
pub const UNDEFINED_ARG_IN_FROM: Rule = rule(
    "UndefinedArgInFrom",
    "FROM command must use declared ARGs",
    "https://docs.docker.com/go/dockerfile/rule/undefined-arg-in-from/",
);
pub const WORKDIR_RELATIVE_PATH: Rule = rule(
    "WorkdirRelativePath",
    "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes",
    "https://docs.docker.com/go/dockerfile/rule/workdir-relative-path/",
);
pub const UNDEFINED_VAR: Rule = rule(
    "UndefinedVar",
    "Variables should be defined before their use",
    "https://docs.docker.com/go/dockerfile/rule/undefined-var/",
);
pub const MULTIPLE_INSTRUCTIONS_DISALLOWED: Rule = rule(
    "MultipleInstructionsDisallowed",
    "Multiple instructions of the same type should not be used in the same stage",
    "https://docs.docker.com/go/dockerfile/rule/multiple-instructions-disallowed/",
);
pub const LEGACY_KEY_VALUE_FORMAT: Rule = rule(
    "LegacyKeyValueFormat",
    "Legacy key/value format with whitespace separator should not be used",
    "https://docs.docker.com/go/dockerfile/rule/legacy-key-value-format/",
);
pub const INVALID_BASE_IMAGE_PLATFORM: Rule = Rule {
    name: "InvalidBaseImagePlatform",
    description: "Base image platform does not match expected target platform",
    url: None,
    experimental: false,
};
pub const REDUNDANT_TARGET_PLATFORM: Rule = rule(
    "RedundantTargetPlatform",
    "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
    "https://docs.docker.com/go/dockerfile/rule/redundant-target-platform/",
);
pub const SECRETS_USED_IN_ARG_OR_ENV: Rule = rule(
    "SecretsUsedInArgOrEnv",
    "Sensitive data should not be used in the ARG or ENV commands",
    "https://docs.docker.com/go/dockerfile/rule/secrets-used-in-arg-or-env/",
);
pub const INVALID_DEFAULT_ARG_IN_FROM: Rule = rule(
    "InvalidDefaultArgInFrom",
    "Default value for global ARG results in an empty or invalid base image name",
    "https://docs.docker.com/go/dockerfile/rule/invalid-default-arg-in-from/",
);
pub const FROM_PLATFORM_FLAG_CONST_DISALLOWED: Rule = rule(
    "FromPlatformFlagConstDisallowed",
    "FROM --platform flag should not use a constant value",
    "https://docs.docker.com/go/dockerfile/rule/from-platform-flag-const-disallowed/",
);
pub const COPY_IGNORED_FILE: Rule = rule(
    "CopyIgnoredFile",
    "Attempting to Copy file that is excluded by .dockerignore",
    "https://docs.docker.com/go/dockerfile/rule/copy-ignored-file/",
);
pub const INVALID_DEFINITION_DESCRIPTION: Rule = Rule {
    name: "InvalidDefinitionDescription",
    description: "Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment.",
    url: Some("https://docs.docker.com/go/dockerfile/rule/invalid-definition-description/"),
    experimental: true,
};
pub const EXPOSE_PROTO_CASING: Rule = rule(
    "ExposeProtoCasing",
    "Protocol in EXPOSE instruction should be lowercase",
    "https://docs.docker.com/go/dockerfile/rule/expose-proto-casing/",
);
pub const EXPOSE_INVALID_FORMAT: Rule = rule(
    "ExposeInvalidFormat",
    "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release",
    "https://docs.docker.com/go/dockerfile/rule/expose-invalid-format/",
);

/// Every rule, in BuildKit's order.
pub const ALL: [&Rule; 22] = [
    &STAGE_NAME_CASING,
    &FROM_AS_CASING,
    &NO_EMPTY_CONTINUATION,
    &CONSISTENT_INSTRUCTION_CASING,
    &DUPLICATE_STAGE_NAME,
    &RESERVED_STAGE_NAME,
    &JSON_ARGS_RECOMMENDED,
    &MAINTAINER_DEPRECATED,
    &UNDEFINED_ARG_IN_FROM,
    &WORKDIR_RELATIVE_PATH,
    &UNDEFINED_VAR,
    &MULTIPLE_INSTRUCTIONS_DISALLOWED,
    &LEGACY_KEY_VALUE_FORMAT,
    &INVALID_BASE_IMAGE_PLATFORM,
    &REDUNDANT_TARGET_PLATFORM,
    &SECRETS_USED_IN_ARG_OR_ENV,
    &INVALID_DEFAULT_ARG_IN_FROM,
    &FROM_PLATFORM_FLAG_CONST_DISALLOWED,
    &COPY_IGNORED_FILE,
    &INVALID_DEFINITION_DESCRIPTION,
    &EXPOSE_PROTO_CASING,
    &EXPOSE_INVALID_FORMAT,
];

/// The rule called `name` (exactly: `# check=skip=` names are case-sensitive in BuildKit).
pub fn by_name(name: &str) -> Option<&'static Rule> {
    ALL.into_iter().find(|r| r.name == name)
}

// The messages, worded as BuildKit words them (Go's `%q` is written out as `quote`).

pub fn stage_name_casing(stage: &str) -> String {
    format!("Stage name '{stage}' should be lowercase")
}

pub fn from_as_casing(from: &str, as_word: &str) -> String {
    format!("'{as_word}' and '{from}' keywords' casing do not match")
}

pub fn no_empty_continuation() -> String {
    "Empty continuation line".to_string()
}

pub fn consistent_instruction_casing(command: &str, majority: &str) -> String {
    format!("Command '{command}' should match the case of the command majority ({majority})")
}

pub fn duplicate_stage_name(stage: &str) -> String {
    format!("Duplicate stage name {}, stage names should be unique", quote(stage))
}

pub fn reserved_stage_name(stage: &str) -> String {
    format!("Stage name should not use the same name as reserved stage {}", quote(stage))
}

pub fn json_args_recommended(keyword: &str) -> String {
    format!("JSON arguments recommended for {keyword} to prevent unintended behavior related to OS signals")
}

pub fn maintainer_deprecated() -> String {
    "Maintainer instruction is deprecated in favor of using label".to_string()
}

pub fn undefined_arg_in_from(arg: &str, suggestion: Option<&str>) -> String {
    let mut out = format!("FROM argument '{arg}' is not declared");
    if let Some(s) = suggestion {
        out.push_str(&format!(" (did you mean {s}?)"));
    }
    out
}

pub fn workdir_relative_path(workdir: &str) -> String {
    format!("Relative workdir {} can have unexpected results if the base image changes", quote(workdir))
}

pub fn undefined_var(var: &str, suggestion: Option<&str>) -> String {
    let mut out = format!("Usage of undefined variable '${var}'");
    if let Some(s) = suggestion {
        out.push_str(&format!(" (did you mean ${s}?)"));
    }
    out
}

pub fn multiple_instructions_disallowed(keyword: &str) -> String {
    format!(
        "Multiple {keyword} instructions should not be used in the same stage because only the last one will be used"
    )
}

pub fn legacy_key_value_format(keyword: &str) -> String {
    format!("\"{keyword} key=value\" should be used instead of legacy \"{keyword} key value\" format")
}

pub fn invalid_base_image_platform(image: &str, expected: &str, actual: &str) -> String {
    format!(
        "Base image {image} was pulled with platform {}, expected {} for current build",
        quote(actual),
        quote(expected)
    )
}

pub fn redundant_target_platform(platform: &str) -> String {
    format!("Setting platform to predefined {platform} in FROM is redundant as this is the default behavior")
}

pub fn secrets_used_in_arg_or_env(instruction: &str, key: &str) -> String {
    format!("Do not use ARG or ENV instructions for sensitive data ({instruction} {})", quote(key))
}

pub fn invalid_default_arg_in_from(base: &str) -> String {
    format!("Default value for ARG {base} results in empty or invalid base image name")
}

pub fn from_platform_flag_const_disallowed(platform: &str) -> String {
    format!("FROM --platform flag should not use constant value {}", quote(platform))
}

pub fn copy_ignored_file(command: &str, file: &str) -> String {
    format!("Attempting to {command} file {} that is excluded by .dockerignore", quote(file))
}

pub fn invalid_definition_description(instruction: &str, name: &str) -> String {
    format!("Comment for {instruction} should follow the format: `# {name} <description>`")
}

pub fn expose_proto_casing(port: &str) -> String {
    format!("Defined protocol '{port}' in EXPOSE instruction should be lowercase")
}

pub fn expose_invalid_format(port: &str) -> String {
    format!("EXPOSE instruction should not define an IP address or host-port mapping, found '{port}'")
}

/// Go's `%q`: a double-quoted string with Go escapes (printable Unicode stays as it is).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_has_its_page_but_the_platform_one() {
        assert_eq!(ALL.len(), 22);
        for r in ALL {
            match r.url {
                Some(u) => assert!(u.starts_with("https://docs.docker.com/go/dockerfile/rule/"), "{}", r.name),
                None => assert_eq!(r.name, "InvalidBaseImagePlatform"),
            }
            assert_eq!(by_name(r.name), Some(r));
        }
        assert_eq!(by_name("jsonargsrecommended"), None);
        assert_eq!(ALL.iter().filter(|r| r.experimental).count(), 1);
    }

    #[test]
    fn go_quoting() {
        assert_eq!(quote("b"), "\"b\"");
        assert_eq!(quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(quote("é\x01"), "\"é\\x01\"");
        assert_eq!(duplicate_stage_name("b"), "Duplicate stage name \"b\", stage names should be unique");
        assert_eq!(
            undefined_var("DIR_ASSET", Some("DIR_ASSETS")),
            "Usage of undefined variable '$DIR_ASSET' (did you mean $DIR_ASSETS?)"
        );
    }
}
