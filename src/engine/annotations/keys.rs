//! The annotation keys: the one list of known keys, full key names under a prefix, and
//! the one "did you mean" rule.

/// A fixed key under the prefix. Run steps (`run.NAME`, `run.NAME.ATTRIBUTE`) are the
/// only other keys; see [`RunAttribute`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    WaitFor,
    WaitTimeout,
    WaitInterval,
    Steps,
    Volumes,
    Position,
    Inject,
    Status,
}

impl Key {
    /// Every fixed key, in the order messages list them.
    pub const ALL: [Key; 8] = [
        Key::WaitFor,
        Key::WaitTimeout,
        Key::WaitInterval,
        Key::Steps,
        Key::Volumes,
        Key::Position,
        Key::Inject,
        Key::Status,
    ];

    /// What follows `P/`.
    pub fn suffix(self) -> &'static str {
        match self {
            Key::WaitFor => "wait-for",
            Key::WaitTimeout => "wait-timeout",
            Key::WaitInterval => "wait-interval",
            Key::Steps => "steps",
            Key::Volumes => "volumes",
            Key::Position => "position",
            Key::Inject => "inject",
            Key::Status => "status",
        }
    }

    pub fn from_suffix(suffix: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|key| key.suffix() == suffix)
    }
}

/// What starts the suffix of a run step's keys.
pub const RUN_PREFIX: &str = "run.";

/// `P/run.NAME.ATTRIBUTE`: what a run step may set besides its command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RunAttribute {
    /// The image to run the step in.
    Image,
    /// The app container to copy image, env and mounts from.
    Container,
}

impl RunAttribute {
    pub const ALL: [RunAttribute; 2] = [RunAttribute::Image, RunAttribute::Container];

    pub fn name(self) -> &'static str {
        match self {
            RunAttribute::Image => "image",
            RunAttribute::Container => "container",
        }
    }

    pub fn from_name(name: &str) -> Option<RunAttribute> {
        RunAttribute::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// Every key form, as written after `P/`: the fixed keys, then the run step forms.
pub fn known_suffixes() -> Vec<String> {
    let fixed = Key::ALL.iter().map(|key| key.suffix().to_owned());
    let run = std::iter::once(format!("{RUN_PREFIX}NAME")).chain(
        RunAttribute::ALL
            .iter()
            .map(|a| format!("{RUN_PREFIX}NAME.{}", a.name())),
    );
    fixed.chain(run).collect()
}

/// Full annotation keys under one prefix.
#[derive(Clone, Copy, Debug)]
pub struct Keys<'a> {
    prefix: &'a str,
}

impl<'a> Keys<'a> {
    pub fn new(prefix: &'a str) -> Self {
        Keys { prefix }
    }

    pub fn prefix(&self) -> &'a str {
        self.prefix
    }

    /// `P/SUFFIX`, for any suffix (a suggestion may name a misspelt one's fix).
    pub fn suffixed(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.prefix)
    }

    pub fn key(&self, key: Key) -> String {
        self.suffixed(key.suffix())
    }

    /// Whether `key` lives under this prefix (`P/anything`).
    pub fn owns(&self, key: &str) -> bool {
        key.split_once('/')
            .is_some_and(|(prefix, _)| prefix == self.prefix)
    }

    /// Whether `key` is `P/` and the suffix of `which`, without writing that key out.
    pub fn is(&self, key: &str, which: Key) -> bool {
        key.split_once('/')
            .is_some_and(|(prefix, suffix)| prefix == self.prefix && suffix == which.suffix())
    }

    /// `P/status`.
    pub fn status(&self) -> String {
        self.key(Key::Status)
    }

    /// `P/run.NAME`.
    pub fn run(&self, step: &str) -> String {
        self.suffixed(&format!("{RUN_PREFIX}{step}"))
    }

    /// `P/run.NAME.ATTRIBUTE`.
    pub fn run_attribute(&self, step: &str, attribute: RunAttribute) -> String {
        self.suffixed(&format!("{RUN_PREFIX}{step}.{}", attribute.name()))
    }
}

/// How many edits (Damerau-Levenshtein: insert, delete, substitute, swap two
/// neighbours) a word may be from a known one to count as a typo of it.
pub const MAX_TYPOS: usize = 2;

/// The candidate `word` is most likely a typo of: the nearest within [`MAX_TYPOS`]
/// edits, ties broken by the candidate's spelling so the answer never depends on order.
pub fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::damerau_levenshtein(word, candidate), candidate))
        .filter(|(distance, _)| *distance <= MAX_TYPOS)
        .min()
        .map(|(_, candidate)| candidate)
}
