//! The inputs of `inject` and `inject --policy`: files or standard input, read whole, and
//! split into YAML documents without parsing them.

use std::io::Read;

/// One YAML document of an input, as text, with the input line it starts on.
#[derive(Debug, PartialEq, Eq)]
pub struct Document<'a> {
    pub text: &'a str,
    pub first_line: usize,
}

/// Splits a YAML stream at `---` lines. A line that starts with `---` at column 0 can
/// only be a document marker (content inside a block scalar is indented), so no YAML
/// parse is needed to find the documents. A `...` line ends a document.
pub fn split_documents(input: &str) -> Vec<Document<'_>> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut first_line = 1;
    let mut offset = 0;
    for (line_no, line) in input.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_marker = bare == "---" || bare.starts_with("--- ") || bare == "...";
        if is_marker {
            documents.push(Document {
                text: &input[start..offset],
                first_line,
            });
            if bare.starts_with("--- ") {
                // Content on the marker line itself (`--- !tag` or a flow value) belongs
                // to the next document; keep it by starting the document at it.
                start = offset + "--- ".len();
                first_line = line_no + 1;
            } else {
                start = offset + line.len();
                first_line = line_no + 2;
            }
        }
        offset += line.len();
    }
    documents.push(Document {
        text: &input[start..],
        first_line,
    });
    documents.retain(|d| !d.text.is_empty());
    documents
}

/// Why the inputs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// `-f -` appears twice.
    #[error("-f - is given more than once; standard input can be read once")]
    StdinTwice,
    /// A file, or standard input (`<stdin>`), cannot be read.
    #[error("cannot read {}", if .name == STDIN { "standard input" } else { .name.as_str() })]
    Read {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

/// How standard input is named in messages.
const STDIN: &str = "<stdin>";

/// Reads every input (`-` is standard input, read once).
pub fn read_inputs(files: &[String]) -> Result<Vec<(String, String)>, InputError> {
    let mut inputs = Vec::with_capacity(files.len());
    let mut stdin_read = false;
    for file in files {
        let (name, read) = if file == "-" {
            if stdin_read {
                return Err(InputError::StdinTwice);
            }
            stdin_read = true;
            let mut text = String::new();
            let read = std::io::stdin().read_to_string(&mut text).map(|_| text);
            (STDIN, read)
        } else {
            (file.as_str(), std::fs::read_to_string(file))
        };
        let text = read.map_err(|source| InputError::Read {
            name: name.to_owned(),
            source,
        })?;
        inputs.push((name.to_owned(), text));
    }
    Ok(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_markers_only() {
        let input = "# head\n---\na: 1\n---\nb: |\n  ---\n  x\n...\n--- c: 3\n";
        let docs = split_documents(input);
        let texts: Vec<(&str, usize)> = docs.iter().map(|d| (d.text, d.first_line)).collect();
        assert_eq!(
            texts,
            [
                ("# head\n", 1),
                ("a: 1\n", 3),
                ("b: |\n  ---\n  x\n", 5),
                ("c: 3\n", 9)
            ]
        );
    }
}
