//! `P/volumes`: shared `emptyDir` volumes, `name:path[:Memory][:sizeLimit]`,
//! comma-separated.

use super::Parser;
use super::error::quoted;
use crate::engine::names::is_dns1123_label;

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

/// Why one entry of `P/volumes` is not a volume.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    /// An empty entry, as in `a:/a,`.
    #[error("the entry is empty")]
    Empty,
    /// A name without `:path`.
    #[error("a mount path is missing")]
    NoPath,
    /// More than `name:path:medium:size`.
    #[error("it has too many ':'-separated fields")]
    TooManyFields,
    /// A name that is not a DNS-1123 label.
    #[error(
        "{0:?} is not a valid volume name (lowercase letters, digits and '-', at most 63 characters)"
    )]
    Name(String),
    /// A relative mount path.
    #[error("mount path {0:?} is not absolute")]
    Relative(String),
    /// `/` itself.
    #[error("mounting over / is not allowed")]
    Root,
    /// A `..` segment.
    #[error("mount path {0:?} contains '..'")]
    DotDot(String),
    /// `Memory` after the size, or twice.
    #[error("Memory is given after the size or twice; write name:path:Memory:size")]
    MemoryOrder,
    /// `memory`, `MEMORY`, …
    #[error("medium {0:?} is spelt Memory")]
    MemorySpelling(String),
    /// A field that is neither the medium nor a size.
    #[error("{0:?} is neither Memory nor a size such as 64Mi")]
    Extra(String),
}

/// A mount path as Kubernetes compares it: without trailing slashes, so `/data/` and
/// `/data` clash.
pub fn normalized_mount_path(path: &str) -> &str {
    path.trim_end_matches('/')
}

impl Parser<'_> {
    pub(super) fn volumes(&mut self, key: &str, value: &str) {
        for item in value.split(',').map(str::trim) {
            match parse_volume(item) {
                Ok(volume) => self.add_volume(key, value, volume),
                Err(why) => self.fail(
                    key,
                    value,
                    format!(
                        "volume {}: {why}; expected name:path[:Memory][:sizeLimit], comma-separated",
                        quoted(item, 60)
                    ),
                ),
            }
        }
    }

    fn add_volume(&mut self, key: &str, value: &str, volume: VolumeDirective) {
        let path = normalized_mount_path(&volume.mount_path);
        let clash = self
            .directives
            .volumes
            .iter()
            .find(|v| v.name == volume.name || normalized_mount_path(&v.mount_path) == path);
        match clash {
            Some(other) if other.name == volume.name => self.fail(
                key,
                value,
                format!("declares volume {:?} twice", volume.name),
            ),
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
}

fn parse_volume(item: &str) -> Result<VolumeDirective, VolumeError> {
    if item.is_empty() {
        return Err(VolumeError::Empty);
    }
    let parts: Vec<&str> = item.split(':').collect();
    if parts.len() < 2 {
        return Err(VolumeError::NoPath);
    }
    if parts.len() > 4 {
        return Err(VolumeError::TooManyFields);
    }
    let name = parts[0];
    if !is_dns1123_label(name) {
        return Err(VolumeError::Name(name.to_owned()));
    }
    let path = parts[1];
    if !path.starts_with('/') {
        return Err(VolumeError::Relative(path.to_owned()));
    }
    if normalized_mount_path(path).is_empty() {
        return Err(VolumeError::Root);
    }
    if path.split('/').any(|segment| segment == "..") {
        return Err(VolumeError::DotDot(path.to_owned()));
    }
    let (medium, size_limit) = medium_and_size(&parts[2..])?;
    Ok(VolumeDirective {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        medium,
        size_limit,
    })
}

/// The optional `Memory` and size fields, in that order.
fn medium_and_size(extras: &[&str]) -> Result<(Option<String>, Option<String>), VolumeError> {
    let mut medium = None;
    let mut size_limit = None;
    for extra in extras {
        if *extra == "Memory" && medium.is_none() && size_limit.is_none() {
            medium = Some("Memory".to_owned());
        } else if *extra == "Memory" {
            return Err(VolumeError::MemoryOrder);
        } else if extra.eq_ignore_ascii_case("memory") {
            return Err(VolumeError::MemorySpelling((*extra).to_owned()));
        } else if is_quantity(extra) && size_limit.is_none() {
            size_limit = Some((*extra).to_owned());
        } else {
            return Err(VolumeError::Extra((*extra).to_owned()));
        }
    }
    Ok((medium, size_limit))
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
