//! The annotation contract: turns a pod's annotations into typed [`Directives`], or into
//! [`AnnotationError`]s that name the key, the value and what was expected.
//!
//! Parsing knows nothing of the pod's containers; checks that need them (an unknown
//! container, a clashing name) belong to planning.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::engine::duration;
use crate::engine::names::is_dns1123_label;
use crate::engine::status::Status;
use crate::engine::target::WaitTarget;

/// A mistake in one annotation, worded like a compiler error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnotationError {
    /// The full annotation key (`init.example/wait-for`).
    pub key: String,
    /// The offending value, or the key itself when the key is the mistake.
    pub value: String,
    /// What is wrong and what was expected.
    pub message: String,
    /// A likely fix, such as the key that was probably meant.
    pub suggestion: Option<String>,
}

impl AnnotationError {
    pub fn new(
        key: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        AnnotationError {
            key: key.into(),
            value: value.into(),
            message: message.into(),
            suggestion: None,
        }
    }

    fn suggest(mut self, suggestion: impl Into<String>) -> Self {
        self.suggestion = Some(suggestion.into());
        self
    }
}

impl fmt::Display for AnnotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "annotation {}: {}: {}",
            self.key,
            quoted(&self.value, 120),
            self.message
        )?;
        if let Some(suggestion) = &self.suggestion {
            write!(f, " ({suggestion})")?;
        }
        Ok(())
    }
}

/// A shared `emptyDir` volume requested with `P/volumes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeDirective {
    pub name: String,
    pub mount_path: String,
    /// `Some("Memory")` for a tmpfs-backed volume.
    pub medium: Option<String>,
    /// A Kubernetes quantity such as `64Mi`.
    pub size_limit: Option<String>,
}

/// `P/run.NAME` and its modifiers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDirective {
    pub name: String,
    /// The command line split into argv, never through a shell.
    pub argv: Vec<String>,
    pub image: Option<String>,
    /// The app container to copy image, env and mounts from.
    pub container: Option<String>,
}

/// Where the injected block goes among the pod's own init containers.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Position {
    /// After the last native sidecar, or at the front.
    #[default]
    First,
    Last,
    Before(String),
    After(String),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::First => f.write_str("first"),
            Position::Last => f.write_str("last"),
            Position::Before(name) => write!(f, "before:{name}"),
            Position::After(name) => write!(f, "after:{name}"),
        }
    }
}

/// Everything a pod asked for through annotations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Directives {
    /// Targets in written order, duplicates removed.
    pub waits: Vec<WaitTarget>,
    pub wait_timeout: Option<Duration>,
    pub wait_interval: Option<Duration>,
    /// Run steps keyed by NAME (so iteration is lexical order).
    pub runs: BTreeMap<String, RunDirective>,
    /// `P/steps`, when given.
    pub steps: Option<Vec<String>>,
    pub volumes: Vec<VolumeDirective>,
    pub position: Position,
    /// `P/inject: "false"`.
    pub opted_out: bool,
    /// What an earlier pass injected.
    pub status: Option<Status>,
    /// Things worth telling the user that do not stop injection.
    pub warnings: Vec<String>,
}

impl Directives {
    /// Whether the pod asks for anything to be injected.
    pub fn requests_injection(&self) -> bool {
        !self.waits.is_empty() || !self.runs.is_empty() || !self.volumes.is_empty()
    }

    /// The run steps in execution order: `P/steps` order, else lexical order of NAME.
    pub fn ordered_runs(&self) -> Vec<&RunDirective> {
        match &self.steps {
            Some(order) => order
                .iter()
                .filter_map(|name| self.runs.get(name))
                .collect(),
            None => self.runs.values().collect(),
        }
    }
}

const FIXED_KEYS: [&str; 8] = [
    "wait-for",
    "wait-timeout",
    "wait-interval",
    "steps",
    "volumes",
    "position",
    "inject",
    "status",
];
const RUN_ATTRIBUTES: [&str; 2] = ["image", "container"];

/// Parses every annotation under `prefix/`. All mistakes are reported, not just the first.
pub fn parse(
    annotations: &BTreeMap<String, String>,
    prefix: &str,
) -> Result<Directives, Vec<AnnotationError>> {
    let mut parser = Parser {
        prefix,
        directives: Directives::default(),
        errors: Vec::new(),
        run_images: BTreeMap::new(),
        run_containers: BTreeMap::new(),
    };
    for (key, value) in annotations {
        match key.split_once('/') {
            Some((p, suffix)) if p == prefix => parser.entry(key, suffix, value),
            Some((p, suffix)) => parser.check_near_miss_prefix(key, p, suffix, value),
            None => {}
        }
    }
    parser.finish()
}

struct Parser<'a> {
    prefix: &'a str,
    directives: Directives,
    errors: Vec<AnnotationError>,
    run_images: BTreeMap<String, (String, String)>,
    run_containers: BTreeMap<String, (String, String)>,
}

impl Parser<'_> {
    fn key(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.prefix)
    }

    fn fail(&mut self, key: &str, value: &str, message: impl Into<String>) {
        self.errors.push(AnnotationError::new(key, value, message));
    }

    fn entry(&mut self, key: &str, suffix: &str, value: &str) {
        match suffix {
            "wait-for" => self.wait_for(key, value),
            "wait-timeout" => self.directives.wait_timeout = self.duration(key, value),
            "wait-interval" => self.directives.wait_interval = self.duration(key, value),
            "steps" => self.steps(key, value),
            "volumes" => self.volumes(key, value),
            "position" => self.position(key, value),
            "inject" => match value.trim() {
                "false" => self.directives.opted_out = true,
                "true" => {}
                _ => self.fail(key, value, "expected \"true\" or \"false\""),
            },
            "status" => match Status::parse(value) {
                Ok(status) => self.directives.status = Some(status),
                Err(err) => self.errors.push(
                    AnnotationError::new(
                        key,
                        value,
                        format!("is not a status written by init-injector ({err})"),
                    )
                    .suggest("this key is written by the webhook; remove it from the manifest"),
                ),
            },
            _ => match suffix.strip_prefix("run.") {
                Some(rest) => self.run(key, rest, value),
                None => self.unknown_key(key, suffix, value),
            },
        }
    }

    fn unknown_key(&mut self, key: &str, suffix: &str, value: &str) {
        let mut error = AnnotationError::new(key, value, "is not an init-injector annotation");
        let candidates = FIXED_KEYS.iter().map(|k| k.to_string()).chain(
            RUN_ATTRIBUTES
                .iter()
                .map(|attr| format!("run.NAME.{attr}"))
                .chain(["run.NAME".to_owned()]),
        );
        let best = candidates
            .map(|candidate| (strsim::damerau_levenshtein(suffix, &candidate), candidate))
            .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 4))
            .min();
        error = match best {
            Some((_, candidate)) => {
                error.suggest(format!("did you mean {}?", self.key(&candidate)))
            }
            None => error.suggest(format!(
                "known keys: {}, run.NAME, run.NAME.image, run.NAME.container",
                FIXED_KEYS.join(", ")
            )),
        };
        self.errors.push(error);
    }

    /// A key under a prefix one or two typos away from ours, whose rest is one of our
    /// keys, is almost certainly meant for us: ignoring it would inject nothing silently.
    fn check_near_miss_prefix(&mut self, key: &str, prefix: &str, suffix: &str, value: &str) {
        let ours = FIXED_KEYS.contains(&suffix) || suffix.starts_with("run.");
        if ours && strsim::damerau_levenshtein(prefix, self.prefix) <= 2 {
            self.errors.push(
                AnnotationError::new(
                    key,
                    value,
                    format!(
                        "the prefix {prefix:?} looks like a misspelling of {:?}",
                        self.prefix
                    ),
                )
                .suggest(format!("did you mean {}?", self.key(suffix))),
            );
        }
    }

    fn duration(&mut self, key: &str, value: &str) -> Option<Duration> {
        match duration::parse_positive(value) {
            Ok(d) => Some(d),
            Err(err) => {
                self.fail(key, value, err.to_string());
                None
            }
        }
    }

    fn wait_for(&mut self, key: &str, value: &str) {
        for (index, item) in value.split(',').enumerate() {
            let item = item.trim();
            match WaitTarget::parse(item) {
                Ok(target) if self.directives.waits.contains(&target) => {
                    self.directives.warnings.push(format!(
                        "annotation {key}: target {item:?} is listed more than once; waiting for it once"
                    ));
                }
                Ok(target) => self.directives.waits.push(target),
                Err(why) => {
                    let expected = if why.names_expected_form() {
                        ""
                    } else {
                        "; expected comma-separated host:port, tcp://host:port, http://… or https://…"
                    };
                    let target = quoted(item, 60);
                    self.fail(
                        key,
                        value,
                        format!("target {} ({target}): {why}{expected}", index + 1),
                    )
                }
            }
        }
    }

    fn steps(&mut self, key: &str, value: &str) {
        let mut order = Vec::new();
        for item in value.split(',').map(str::trim) {
            if item.is_empty() {
                self.fail(
                    key,
                    value,
                    "has an empty step name; expected comma-separated step names",
                );
            } else if order.iter().any(|seen| seen == item) {
                self.fail(key, value, format!("names step {item:?} twice"));
            } else {
                order.push(item.to_owned());
            }
        }
        self.directives.steps = Some(order);
    }

    fn volumes(&mut self, key: &str, value: &str) {
        for item in value.split(',').map(str::trim) {
            match parse_volume(item) {
                Ok(volume) => {
                    let clash = self.directives.volumes.iter().find(|v| {
                        v.name == volume.name || same_path(&v.mount_path, &volume.mount_path)
                    });
                    match clash {
                        Some(other) if other.name == volume.name => {
                            self.fail(key, value, format!("declares volume {:?} twice", volume.name))
                        }
                        Some(other) => self.fail(
                            key,
                            value,
                            format!(
                                "volumes {:?} and {:?} are both mounted at {}",
                                other.name, volume.name, volume.mount_path
                            ),
                        ),
                        None => self.directives.volumes.push(volume),
                    }
                }
                Err(why) => self.fail(
                    key,
                    value,
                    format!("volume {}: {why}; expected name:path[:Memory][:sizeLimit], comma-separated", quoted(item, 60)),
                ),
            }
        }
    }

    fn position(&mut self, key: &str, value: &str) {
        let trimmed = value.trim();
        let anchored = |rest: &str| -> Option<String> {
            let rest = rest.trim();
            (!rest.is_empty()).then(|| rest.to_owned())
        };
        let position = match trimmed {
            "first" => Some(Position::First),
            "last" => Some(Position::Last),
            _ => match trimmed.split_once(':') {
                Some(("before", rest)) => anchored(rest).map(Position::Before),
                Some(("after", rest)) => anchored(rest).map(Position::After),
                _ => None,
            },
        };
        match position {
            Some(position) => self.directives.position = position,
            None => self.fail(
                key,
                value,
                "expected first, last, before:NAME or after:NAME (NAME: one of the pod's own init containers)",
            ),
        }
    }

    fn run(&mut self, key: &str, rest: &str, value: &str) {
        let (name, attribute) = match rest.split_once('.') {
            Some((name, attribute)) => (name, Some(attribute)),
            None => (rest, None),
        };
        if !is_dns1123_label(name) {
            self.fail(
                key,
                value,
                format!(
                    "step name {name:?} is not a valid container name; expected lowercase letters, digits and '-', at most 63 characters"
                ),
            );
            return;
        }
        let entry = (key.to_owned(), value.trim().to_owned());
        match attribute {
            None => match shlex::split(value) {
                None => self.fail(
                    key,
                    value,
                    "has an unterminated quote or a trailing backslash",
                ),
                Some(argv) if argv.is_empty() => {
                    self.fail(key, value, "is empty; expected a command line")
                }
                Some(argv) => {
                    self.directives.runs.insert(
                        name.to_owned(),
                        RunDirective {
                            name: name.to_owned(),
                            argv,
                            image: None,
                            container: None,
                        },
                    );
                }
            },
            Some("image") => {
                if entry.1.is_empty() || entry.1.chars().any(char::is_whitespace) {
                    self.fail(key, value, "expected an image reference without spaces");
                } else {
                    self.run_images.insert(name.to_owned(), entry);
                }
            }
            Some("container") => {
                if entry.1.is_empty() {
                    self.fail(
                        key,
                        value,
                        "expected the name of one of the pod's containers",
                    );
                } else {
                    self.run_containers.insert(name.to_owned(), entry);
                }
            }
            Some(other) => {
                let mut error = AnnotationError::new(
                    key,
                    value,
                    format!("{other:?} is not a run step attribute; expected image or container"),
                );
                if let Some(best) = RUN_ATTRIBUTES
                    .iter()
                    .find(|attr| strsim::damerau_levenshtein(other, attr) <= 2)
                {
                    error = error.suggest(format!(
                        "did you mean {}?",
                        self.key(&format!("run.{name}.{best}"))
                    ));
                }
                self.errors.push(error);
            }
        }
    }

    fn finish(mut self) -> Result<Directives, Vec<AnnotationError>> {
        let attributes = std::mem::take(&mut self.run_images)
            .into_iter()
            .map(|(name, entry)| (name, entry, true))
            .chain(
                std::mem::take(&mut self.run_containers)
                    .into_iter()
                    .map(|(name, entry)| (name, entry, false)),
            );
        for (name, (key, value), is_image) in attributes {
            match self.directives.runs.get_mut(&name) {
                Some(run) if is_image => run.image = Some(value),
                Some(run) => run.container = Some(value),
                None => {
                    let missing = self.key(&format!("run.{name}"));
                    self.errors.push(AnnotationError::new(
                        &key,
                        &value,
                        format!("modifies step {name:?}, but {missing} is not set"),
                    ))
                }
            }
        }
        if let Some(order) = self.directives.steps.clone() {
            let key = self.key("steps");
            let value = order.join(",");
            for name in &order {
                if !self.directives.runs.contains_key(name) {
                    let known: Vec<&str> =
                        self.directives.runs.keys().map(String::as_str).collect();
                    let mut error = AnnotationError::new(
                        &key,
                        &value,
                        format!(
                            "names step {name:?}, which has no {} annotation",
                            self.key(&format!("run.{name}"))
                        ),
                    );
                    let best = known
                        .iter()
                        .min_by_key(|k| strsim::damerau_levenshtein(name, k));
                    if let Some(best) =
                        best.filter(|best| strsim::damerau_levenshtein(name, best) <= 2)
                    {
                        error = error.suggest(format!("did you mean {best}?"));
                    }
                    self.errors.push(error);
                }
            }
            for name in self.directives.runs.keys() {
                if !order.contains(name) {
                    self.errors.push(AnnotationError::new(
                        &key,
                        &value,
                        format!(
                            "does not list step {name:?}, which {} defines; list every step, in the order to run them",
                            self.key(&format!("run.{name}"))
                        ),
                    ));
                }
            }
        }
        if self.errors.is_empty() {
            Ok(self.directives)
        } else {
            Err(self.errors)
        }
    }
}

/// `text` in quotes, cut to `max` characters so that a huge value cannot flood a message.
fn quoted(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(max).collect();
        format!("{head:?}…")
    }
}

fn same_path(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

fn parse_volume(item: &str) -> Result<VolumeDirective, String> {
    if item.is_empty() {
        return Err("the entry is empty".to_owned());
    }
    let parts: Vec<&str> = item.split(':').collect();
    if parts.len() < 2 {
        return Err("a mount path is missing".to_owned());
    }
    if parts.len() > 4 {
        return Err("it has too many ':'-separated fields".to_owned());
    }
    let name = parts[0];
    if !is_dns1123_label(name) {
        return Err(format!(
            "{name:?} is not a valid volume name (lowercase letters, digits and '-', at most 63 characters)"
        ));
    }
    let path = parts[1];
    if !path.starts_with('/') {
        return Err(format!("mount path {path:?} is not absolute"));
    }
    if path.trim_end_matches('/').is_empty() {
        return Err("mounting over / is not allowed".to_owned());
    }
    if path.split('/').any(|segment| segment == "..") {
        return Err(format!("mount path {path:?} contains '..'"));
    }
    let mut medium = None;
    let mut size_limit = None;
    for extra in &parts[2..] {
        if *extra == "Memory" && medium.is_none() && size_limit.is_none() {
            medium = Some("Memory".to_owned());
        } else if *extra == "Memory" {
            return Err(
                "Memory is given after the size or twice; write name:path:Memory:size".to_owned(),
            );
        } else if extra.eq_ignore_ascii_case("memory") {
            return Err(format!("medium {extra:?} is spelt Memory"));
        } else if is_quantity(extra) && size_limit.is_none() {
            size_limit = Some((*extra).to_owned());
        } else {
            return Err(format!(
                "{extra:?} is neither Memory nor a size such as 64Mi"
            ));
        }
    }
    Ok(VolumeDirective {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        medium,
        size_limit,
    })
}

/// A Kubernetes quantity: digits, an optional fraction, an optional binary or decimal
/// suffix (`64Mi`, `1G`, `0.5Gi`, `1000`, `100m`).
pub fn is_quantity(text: &str) -> bool {
    const SUFFIXES: [&str; 14] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E", "",
    ];
    SUFFIXES.iter().any(|suffix| {
        text.strip_suffix(suffix).is_some_and(|number| {
            let (whole, fraction) = number.split_once('.').unwrap_or((number, "0"));
            !whole.is_empty()
                && whole.bytes().all(|b| b.is_ascii_digit())
                && !fraction.is_empty()
                && fraction.bytes().all(|b| b.is_ascii_digit())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "init.example";

    fn parse_pairs(pairs: &[(&str, &str)]) -> Result<Directives, Vec<AnnotationError>> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(&map, P)
    }

    fn one_error(pairs: &[(&str, &str)]) -> AnnotationError {
        let errors = parse_pairs(pairs).expect_err("should fail");
        assert_eq!(errors.len(), 1, "{errors:#?}");
        errors.into_iter().next().unwrap()
    }

    #[test]
    fn full_contract() {
        let d = parse_pairs(&[
            (
                "init.example/wait-for",
                "postgres:5432, redis:6379,http://api/healthz",
            ),
            ("init.example/wait-timeout", "90s"),
            ("init.example/wait-interval", "500ms"),
            ("init.example/run.02-fetch", "sh -c 'fetch --to /config'"),
            ("init.example/run.02-fetch.image", "fetcher:1.2"),
            ("init.example/run.01-migrate", "npm run migration:run"),
            ("init.example/run.01-migrate.container", "app"),
            (
                "init.example/volumes",
                "config:/config,secrets:/secrets:Memory,cache:/cache:Memory:64Mi,tmp:/tmp:1Gi",
            ),
            ("init.example/position", "after:setup"),
            ("unrelated.io/thing", "x"),
        ])
        .unwrap();
        let targets: Vec<String> = d.waits.iter().map(ToString::to_string).collect();
        assert_eq!(
            targets,
            ["postgres:5432", "redis:6379", "http://api/healthz"]
        );
        assert_eq!(d.wait_timeout, Some(Duration::from_secs(90)));
        assert_eq!(d.wait_interval, Some(Duration::from_millis(500)));
        let runs: Vec<&str> = d.ordered_runs().iter().map(|r| r.name.as_str()).collect();
        assert_eq!(runs, ["01-migrate", "02-fetch"]);
        assert_eq!(d.runs["02-fetch"].argv, ["sh", "-c", "fetch --to /config"]);
        assert_eq!(d.runs["02-fetch"].image.as_deref(), Some("fetcher:1.2"));
        assert_eq!(d.runs["01-migrate"].container.as_deref(), Some("app"));
        assert_eq!(d.volumes.len(), 4);
        assert_eq!(d.volumes[1].medium.as_deref(), Some("Memory"));
        assert_eq!(d.volumes[2].size_limit.as_deref(), Some("64Mi"));
        assert_eq!(
            d.volumes[3],
            VolumeDirective {
                name: "tmp".into(),
                mount_path: "/tmp".into(),
                medium: None,
                size_limit: Some("1Gi".into())
            }
        );
        assert_eq!(d.position, Position::After("setup".into()));
        assert!(d.requests_injection() && !d.opted_out);
    }

    #[test]
    fn steps_annotation_orders_runs() {
        let d = parse_pairs(&[
            ("init.example/run.a", "a"),
            ("init.example/run.b", "b"),
            ("init.example/steps", "b, a"),
        ])
        .unwrap();
        let runs: Vec<&str> = d.ordered_runs().iter().map(|r| r.name.as_str()).collect();
        assert_eq!(runs, ["b", "a"]);
    }

    #[test]
    fn duplicate_targets_warn_and_keep_first() {
        let d = parse_pairs(&[("init.example/wait-for", "db:1,redis:2,tcp://db:1")]).unwrap();
        assert_eq!(d.waits.len(), 2);
        assert_eq!(d.warnings.len(), 1);
        assert!(d.warnings[0].contains("more than once"), "{:?}", d.warnings);
    }

    #[test]
    fn opt_out_and_positions() {
        assert!(
            parse_pairs(&[("init.example/inject", "false")])
                .unwrap()
                .opted_out
        );
        for (value, want) in [
            ("first", Position::First),
            ("last", Position::Last),
            ("before:a", Position::Before("a".into())),
            ("after: b", Position::After("b".into())),
        ] {
            assert_eq!(
                parse_pairs(&[("init.example/position", value)])
                    .unwrap()
                    .position,
                want
            );
        }
    }

    #[test]
    fn each_mistake_names_key_value_and_expectation() {
        let cases: &[(&str, &str, &str)] = &[
            ("init.example/wait-for", "postgres:99999", "out of range"),
            (
                "init.example/wait-for",
                "postgres:5432,",
                "target 2 (\"\"): the target is empty",
            ),
            ("init.example/wait-for", "", "target is empty"),
            ("init.example/wait-timeout", "soon", "positive duration"),
            ("init.example/wait-interval", "10", "no unit"),
            ("init.example/inject", "no", "\"true\" or \"false\""),
            (
                "init.example/position",
                "middle",
                "first, last, before:NAME or after:NAME",
            ),
            ("init.example/position", "before:", "before:NAME"),
            ("init.example/volumes", "config", "mount path is missing"),
            (
                "init.example/volumes",
                "Config:/c",
                "not a valid volume name",
            ),
            ("init.example/volumes", "c:config", "not absolute"),
            ("init.example/volumes", "c:/", "over /"),
            ("init.example/volumes", "c:/a/../b", "'..'"),
            ("init.example/volumes", "c:/c:memory", "spelt Memory"),
            (
                "init.example/volumes",
                "c:/c:lots",
                "neither Memory nor a size",
            ),
            ("init.example/volumes", "c:/c:64Mi:Memory", "after the size"),
            (
                "init.example/volumes",
                "c:/c:1Gi:2Gi",
                "neither Memory nor a size",
            ),
            ("init.example/volumes", "c:/c,c:/d", "twice"),
            ("init.example/volumes", "c:/c,d:/c/", "both mounted at"),
            ("init.example/volumes", "c:/c,", "entry is empty"),
            (
                "init.example/run.Migrate",
                "x",
                "not a valid container name",
            ),
            ("init.example/run.m", "sh -c 'oops", "unterminated quote"),
            ("init.example/run.m", "  ", "expected a command line"),
            (
                "init.example/status",
                "{",
                "not a status written by init-injector",
            ),
        ];
        for (key, value, fragment) in cases {
            let error = one_error(&[(key, value)]);
            assert_eq!(error.key, *key);
            let text = error.to_string();
            assert!(text.contains(fragment), "{key}={value:?}: {text}");
            assert!(text.contains(key), "{text}");
        }
    }

    #[test]
    fn near_misses_get_suggestions() {
        let cases = [
            (
                "init.example/wiat-for",
                "did you mean init.example/wait-for?",
            ),
            ("init.example/volume", "did you mean init.example/volumes?"),
            ("init.example/step", "did you mean init.example/steps?"),
            (
                "init.exmaple/wait-for",
                "did you mean init.example/wait-for?",
            ),
            ("init.example/frobnicate", "known keys:"),
        ];
        for (key, suggestion) in cases {
            let error = one_error(&[(key, "x:1")]);
            assert_eq!(
                error
                    .suggestion
                    .as_deref()
                    .map(|s| s.starts_with(suggestion)),
                Some(true),
                "{key}: {error}"
            );
        }
        let error = one_error(&[
            ("init.example/run.m", "x"),
            ("init.example/run.m.imgae", "y"),
        ]);
        assert_eq!(
            error.suggestion.as_deref(),
            Some("did you mean init.example/run.m.image?")
        );
        // A far-away prefix is somebody else's annotation.
        assert!(parse_pairs(&[("vault.hashicorp.com/wait-for", "x")]).is_ok());
    }

    #[test]
    fn step_cross_checks() {
        let error = one_error(&[("init.example/run.migrate.image", "x")]);
        assert!(
            error
                .message
                .contains("init.example/run.migrate is not set"),
            "{error}"
        );
        let error = one_error(&[
            ("init.example/run.migrate", "x"),
            ("init.example/steps", "migrate,migarte"),
        ]);
        assert!(
            error.to_string().contains("did you mean migrate?"),
            "{error}"
        );
        let error = one_error(&[
            ("init.example/run.a", "x"),
            ("init.example/run.b", "y"),
            ("init.example/steps", "a"),
        ]);
        assert!(
            error.message.contains("does not list step \"b\""),
            "{error}"
        );
        let error = one_error(&[("init.example/run.a", "x"), ("init.example/steps", "a,a")]);
        assert!(error.message.contains("twice"), "{error}");
    }

    #[test]
    fn all_errors_are_reported() {
        let errors = parse_pairs(&[
            ("init.example/wait-for", "db"),
            ("init.example/wait-timeout", "x"),
            ("init.example/wiat-for", "y"),
        ])
        .unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:#?}");
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let value = format!("{}:1", "a".repeat(500));
        let text = one_error(&[("init.example/wait-for", &value)]).to_string();
        assert!(text.len() < 400, "{}", text.len());
        assert!(text.contains('…'));
    }

    #[test]
    fn quantities() {
        for ok in ["64Mi", "1G", "0.5Gi", "1000", "1k", "100m"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "Mi", "64mi", "1.Gi", "-1Gi", "1 Gi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
