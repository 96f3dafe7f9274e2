//! The parsed form of a Dockerfile: raw, unexpanded instructions with their line spans.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::DockerfileError;

/// An instruction keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Keyword {
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    Stopsignal,
    User,
    Volume,
    Workdir,
}

impl Keyword {
    /// Every keyword trowel knows, in alphabetical order.
    pub const ALL: [Keyword; 18] = [
        Keyword::Add,
        Keyword::Arg,
        Keyword::Cmd,
        Keyword::Copy,
        Keyword::Entrypoint,
        Keyword::Env,
        Keyword::Expose,
        Keyword::From,
        Keyword::Healthcheck,
        Keyword::Label,
        Keyword::Maintainer,
        Keyword::Onbuild,
        Keyword::Run,
        Keyword::Shell,
        Keyword::Stopsignal,
        Keyword::User,
        Keyword::Volume,
        Keyword::Workdir,
    ];

    /// Upper case, as Dockerfiles conventionally write it (`RUN`).
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Add => "ADD",
            Keyword::Arg => "ARG",
            Keyword::Cmd => "CMD",
            Keyword::Copy => "COPY",
            Keyword::Entrypoint => "ENTRYPOINT",
            Keyword::Env => "ENV",
            Keyword::Expose => "EXPOSE",
            Keyword::From => "FROM",
            Keyword::Healthcheck => "HEALTHCHECK",
            Keyword::Label => "LABEL",
            Keyword::Maintainer => "MAINTAINER",
            Keyword::Onbuild => "ONBUILD",
            Keyword::Run => "RUN",
            Keyword::Shell => "SHELL",
            Keyword::Stopsignal => "STOPSIGNAL",
            Keyword::User => "USER",
            Keyword::Volume => "VOLUME",
            Keyword::Workdir => "WORKDIR",
        }
    }

    /// The keyword `word` is (in any case), if it is one.
    pub fn parse(word: &str) -> Option<Keyword> {
        Keyword::ALL.into_iter().find(|k| k.as_str().eq_ignore_ascii_case(word))
    }
}

impl std::fmt::Display for Keyword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dockerfile {
    /// The path as given to [`parse`](super::parse), used in errors.
    pub path: PathBuf,
    /// The full original text (the debugger shows it).
    pub text: String,
    /// The escape character from `# escape=` (default `\`).
    pub escape: char,
    /// The `# syntax=` directive, recorded but not used for building.
    pub syntax: Option<String>,
    /// `ARG` instructions before the first `FROM` (all of kind [`InstructionKind::Arg`]).
    pub global_args: Vec<Instruction>,
    /// The build stages, in file order.
    pub stages: Vec<Stage>,
}

impl Dockerfile {
    /// The stage called `name` (case-insensitive).
    pub fn stage_by_name(&self, name: &str) -> Option<&Stage> {
        let name = name.to_ascii_lowercase();
        self.stages.iter().rfind(|s| s.name.as_deref() == Some(name.as_str()))
    }

    /// All instructions in file order: global ARGs, then each stage's FROM and body.
    pub fn instructions(&self) -> impl Iterator<Item = &Instruction> {
        self.global_args
            .iter()
            .chain(self.stages.iter().flat_map(|s| std::iter::once(&s.from).chain(s.instructions.iter())))
    }

    /// The instruction whose span covers the 1-based `line` (for breakpoints set on a line).
    pub fn instruction_at_line(&self, line: usize) -> Option<&Instruction> {
        self.instructions().find(|i| i.line <= line && line <= i.end_line)
    }
}

/// One build stage: a `FROM` and the instructions up to the next `FROM`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// 0-based position in the file (what `COPY --from=<n>` refers to).
    pub index: usize,
    /// The `AS` name, lower-cased (Docker matches stage names case-insensitively).
    pub name: Option<String>,
    /// The `FROM` instruction (kind [`InstructionKind::From`]).
    pub from: Instruction,
    /// The instructions after `FROM`.
    pub instructions: Vec<Instruction>,
}

/// One instruction, raw: no variable has been expanded yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instruction {
    /// The Dockerfile this instruction came from (for error messages).
    pub path: PathBuf,
    /// 1-based first line of the instruction.
    pub line: usize,
    /// 1-based last line, inclusive, counting continuation lines and heredoc bodies.
    pub end_line: usize,
    /// The instruction on one line: its physical lines joined, continuations and comment lines
    /// removed, heredoc bodies left out. This is how errors quote it.
    #[serde(default)]
    pub logical: String,
    /// The original text of the instruction, heredoc bodies included (for display and cache keys).
    /// For an `ONBUILD` trigger this is the trigger expression as stored in an image config.
    pub source: String,
    /// What the instruction says.
    pub kind: InstructionKind,
    /// How it was written, where that differs from what it says (the build never reads it;
    /// build checks do).
    #[serde(default)]
    pub written: AsWritten,
}

/// What the text of an instruction shows beyond its meaning: BuildKit's build checks
/// (`dockerfile::checks`) judge the casing of keywords, the legacy `ENV key value` form, empty
/// continuation lines and the comments above an instruction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsWritten {
    /// The keyword as written (`FROM`, `from`, `Run`…).
    pub keyword: String,
    /// FROM: the `AS` word as written.
    pub as_word: Option<String>,
    /// ENV or LABEL in the legacy `KEY value with spaces` form (no `=`).
    pub legacy_key_value: bool,
    /// A blank line inside the instruction's continuation lines: the line BuildKit reports it
    /// at (the last line of the continuation).
    pub empty_continuation: Option<usize>,
    /// The comment lines since the previous instruction, `#` removed and trimmed (BuildKit's
    /// `PrevComment`): where per-instruction `# check=` options and descriptions are.
    pub comments: Vec<String>,
}

impl Instruction {
    /// Which instruction this is (what its kind says).
    pub fn keyword(&self) -> Keyword {
        self.kind.keyword()
    }

    /// The first physical line of the instruction, trimmed (how errors name it).
    pub fn first_line(&self) -> &str {
        self.source.lines().next().unwrap_or("").trim()
    }

    /// The whole instruction on one line (see `logical`), for messages.
    pub fn quoted(&self) -> String {
        let l = self.logical.trim();
        one_line(if l.is_empty() { self.first_line() } else { l })
    }

    /// An error attributed to this instruction.
    pub fn error(&self, reason: impl Into<String>) -> DockerfileError {
        DockerfileError::at(&self.path, self.line, Some(&self.quoted()), reason)
    }

    /// The Dockerfile path this instruction came from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// An instruction as messages quote it: runs of blanks (where continuation lines were joined)
/// shown as one space.
pub(crate) fn one_line(s: &str) -> String {
    s.split([' ', '\t']).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

/// The typed content of an instruction. Words are raw: quotes, escapes and `$VARS` are still
/// there; [`Instruction::expand`] resolves them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InstructionKind {
    /// `FROM [--platform=p] image [AS alias]`; `alias` as written.
    From {
        image: String,
        platform: Option<String>,
        alias: Option<String>,
    },
    /// `RUN`; for heredoc forms `command` is the command line (e.g. `cat <<EOF >x`) and the
    /// bodies are in `heredocs`, in marker order.
    Run {
        flags: Vec<Flag>,
        command: CommandForm,
        heredocs: Vec<Heredoc>,
    },
    Cmd(CommandForm),
    Entrypoint(CommandForm),
    /// `SHELL ["executable", "param"…]` (JSON form only, as Docker requires).
    Shell(Vec<String>),
    Copy(CopyArgs),
    Add(CopyArgs),
    /// `ENV` pairs; the legacy `ENV key value with spaces` form gives one pair.
    Env(Vec<(String, String)>),
    /// `ARG` names with optional defaults.
    Arg(Vec<(String, Option<String>)>),
    Label(Vec<(String, String)>),
    Expose(Vec<String>),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    Stopsignal(String),
    /// `HEALTHCHECK [flags] CMD …`; `command` is `None` for `HEALTHCHECK NONE`.
    Healthcheck {
        flags: Vec<Flag>,
        command: Option<CommandForm>,
    },
    /// `ONBUILD <trigger>`, the trigger parsed.
    Onbuild(Box<Instruction>),
    Maintainer(String),
}

impl InstructionKind {
    pub fn keyword(&self) -> Keyword {
        match self {
            InstructionKind::From { .. } => Keyword::From,
            InstructionKind::Run { .. } => Keyword::Run,
            InstructionKind::Cmd(_) => Keyword::Cmd,
            InstructionKind::Entrypoint(_) => Keyword::Entrypoint,
            InstructionKind::Shell(_) => Keyword::Shell,
            InstructionKind::Copy(_) => Keyword::Copy,
            InstructionKind::Add(_) => Keyword::Add,
            InstructionKind::Env(_) => Keyword::Env,
            InstructionKind::Arg(_) => Keyword::Arg,
            InstructionKind::Label(_) => Keyword::Label,
            InstructionKind::Expose(_) => Keyword::Expose,
            InstructionKind::Volume(_) => Keyword::Volume,
            InstructionKind::User(_) => Keyword::User,
            InstructionKind::Workdir(_) => Keyword::Workdir,
            InstructionKind::Stopsignal(_) => Keyword::Stopsignal,
            InstructionKind::Healthcheck { .. } => Keyword::Healthcheck,
            InstructionKind::Onbuild(_) => Keyword::Onbuild,
            InstructionKind::Maintainer(_) => Keyword::Maintainer,
        }
    }
}

/// Shell form or exec (JSON array) form of a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CommandForm {
    /// The command text with line continuations and comment lines removed.
    Shell(String),
    /// The JSON array elements.
    Exec(Vec<String>),
}

/// A `--name[=value]` flag. Quotes around the value have been removed (as BuildKit does);
/// variables have not been expanded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    /// The name without the leading `--`.
    pub name: String,
    /// `None` for a bare `--flag`.
    pub value: Option<String>,
}

/// A here-document attached to `RUN`, `COPY` or `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heredoc {
    /// The delimiter word with quotes removed (`EOF` for `<<"EOF"`); COPY uses it as file name.
    pub delimiter: String,
    /// The body exactly as written: every line with its line ending, leading tabs kept, the
    /// terminator line excluded.
    pub content: String,
    /// `false` when the delimiter was quoted: the body must not be expanded.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from every line of the body.
    pub strip_tabs: bool,
}

impl Heredoc {
    /// The body with leading tabs stripped when the marker was `<<-`.
    pub fn body(&self) -> String {
        if !self.strip_tabs {
            return self.content.clone();
        }
        let mut out = String::with_capacity(self.content.len());
        for line in self.content.split_inclusive('\n') {
            out.push_str(line.trim_start_matches('\t'));
        }
        out
    }
}

/// Arguments of `COPY` and `ADD`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopyArgs {
    pub flags: Vec<Flag>,
    pub sources: Vec<CopySource>,
    pub dest: String,
}

/// One source of `COPY`/`ADD`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CopySource {
    /// A path in the context (or stage/image), or a URL for `ADD`.
    Path(String),
    /// An inline file.
    Heredoc(Heredoc),
}
