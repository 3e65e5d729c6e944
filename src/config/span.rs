//! Positions in the config text: byte offsets from the TOML parser become
//! 1-based `line:column`, and [`Findings`] collects problems (or warnings)
//! with their offsets so that they can be reported all at once, in file order.

use super::ConfigProblem;
use std::ops::Range;
use std::path::Path;

/// A byte range in the config text, as the TOML parser reports it.
pub(crate) type Span = Range<usize>;

/// Where every line starts, to turn byte offsets into `line:column`.
pub(super) struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset of the first character of each line; `starts[0] == 0`.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Indexes `text`.
    pub(super) fn new(text: &'a str) -> LineIndex<'a> {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    /// The 1-based line and column of a byte offset. Columns count characters,
    /// not bytes, because that is what editors show.
    pub(super) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = self.floor_char_boundary(offset.min(self.text.len()));
        let line = self.starts.partition_point(|&start| start <= offset);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let column = self.text[start..offset].chars().count() + 1;
        (line, column)
    }

    /// `line:column` of a byte offset, for messages that point elsewhere
    /// (e.g. "first used at line 3, column 8").
    pub(super) fn describe(&self, offset: usize) -> String {
        let (line, column) = self.position(offset);
        format!("line {line}, column {column}")
    }

    /// The largest char boundary not after `offset` (spans from the parser
    /// are always on boundaries; this only guards against a bad offset).
    fn floor_char_boundary(&self, mut offset: usize) -> usize {
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }
}

/// Messages tied to a position in the config text.
#[derive(Default)]
pub(super) struct Findings {
    items: Vec<(usize, String)>,
}

impl Findings {
    /// Records `message` at the start of `span`.
    pub(super) fn push(&mut self, span: &Span, message: impl Into<String>) {
        self.items.push((span.start, message.into()));
    }

    /// Whether nothing was recorded.
    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Every message with its `line:column`, in file order. The sort is
    /// stable so that two findings at one position keep the order in which
    /// validation found them.
    pub(super) fn render(mut self, file: &Path, lines: &LineIndex<'_>) -> Vec<ConfigProblem> {
        self.items.sort_by_key(|(offset, _)| *offset);
        self.items
            .into_iter()
            .map(|(offset, message)| ConfigProblem {
                file: file.to_path_buf(),
                position: Some(lines.position(offset)),
                message,
            })
            .collect()
    }
}

/// The known key closest to `key` within edit distance 2, to suggest it for a
/// misspelt key.
pub(super) fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over characters; keys are short, so the plain
/// two-row dynamic programme is plenty.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            let best = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
            current.push(best);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let lines = LineIndex::new("a = 1\né = \"x\"\n");
        assert_eq!(lines.position(0), (1, 1));
        assert_eq!(lines.position(4), (1, 5));
        assert_eq!(lines.position(6), (2, 1));
        // `é` is two bytes but one column: the `=` after it is column 3.
        assert_eq!(lines.position(9), (2, 3));
        assert_eq!(lines.position(1000), (3, 1));
    }

    #[test]
    fn suggestions_stay_within_distance_two() {
        let known = ["schedule", "name", "kind"];
        assert_eq!(closest("shedule", &known), Some("schedule"));
        assert_eq!(closest("knd", &known), Some("kind"));
        assert_eq!(closest("colour", &known), None);
    }
}
