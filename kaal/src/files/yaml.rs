//! A small YAML tree that remembers where every node came from.
//!
//! Built from the events of `saphyr-parser`, so every value carries the line it was written
//! on, mapping keys keep their order and duplicates can be reported. Scalars stay text until
//! the file readers type them, which is what lets `${VAR}` expansion happen before typing.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A node and the position (1-based line and column) it starts at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub value: Value,
    pub line: usize,
    pub col: usize,
}

/// What a node holds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// A scalar as written. `plain` is false for quoted and block scalars and for `!!str`,
    /// which are always strings.
    Scalar { text: String, plain: bool },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping in file order (duplicates kept, for the readers to report).
    Map(Vec<(Node, Node)>),
}

/// A scalar typed the way YAML 1.2's core schema types plain scalars.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Typed<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float,
    Str(&'a str),
}

impl Node {
    /// The scalar typed by the core schema; `None` for collections.
    pub fn typed(&self) -> Option<Typed<'_>> {
        match &self.value {
            Value::Scalar { text, plain: false } => Some(Typed::Str(text)),
            Value::Scalar { text, plain: true } => Some(type_plain(text)),
            _ => None,
        }
    }

    /// The text of a scalar of any type (`5`, `true`, `abc`); `None` for null and collections.
    pub fn scalar_text(&self) -> Option<&str> {
        match (&self.value, self.typed()) {
            (_, Some(Typed::Null)) => None,
            (Value::Scalar { text, .. }, _) => Some(text),
            _ => None,
        }
    }

    /// Whether this is a null scalar (`~`, `null`, or nothing at all).
    pub fn is_null(&self) -> bool {
        matches!(self.typed(), Some(Typed::Null))
    }

    /// The entries of a mapping.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items of a sequence.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// "a mapping", "a list", "the string \"x\"", ... for messages.
    pub fn describe(&self) -> String {
        match (&self.value, self.typed()) {
            (Value::Map(_), _) => "a mapping".to_string(),
            (Value::Seq(_), _) => "a list".to_string(),
            (_, Some(Typed::Null)) => "nothing (null)".to_string(),
            (_, Some(Typed::Bool(b))) => format!("the boolean {b}"),
            (Value::Scalar { text, .. }, Some(Typed::Int(_) | Typed::Float)) => {
                format!("the number {text}")
            }
            (Value::Scalar { text, .. }, _) => format!("the string {text:?}"),
        }
    }

    /// Converts to JSON (mapping keys become their text).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.scalar_text().unwrap_or("").to_string(), v.to_json()))
                    .collect(),
            ),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Scalar { text, .. } => match self.typed() {
                Some(Typed::Null) => J::Null,
                Some(Typed::Bool(b)) => J::Bool(b),
                Some(Typed::Int(i)) => J::from(i),
                Some(Typed::Float) => text
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map_or_else(|| J::String(text.clone()), J::Number),
                _ => J::String(text.clone()),
            },
        }
    }
}

/// Types a plain scalar's text by YAML 1.2's core schema.
pub(crate) fn type_plain(text: &str) -> Typed<'_> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => Typed::Null,
        "true" | "True" | "TRUE" => Typed::Bool(true),
        "false" | "False" | "FALSE" => Typed::Bool(false),
        _ => {
            let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                match text.parse::<i64>() {
                    Ok(i) => Typed::Int(i),
                    Err(_) => Typed::Float,
                }
            } else if looks_like_float(text) {
                Typed::Float
            } else {
                Typed::Str(text)
            }
        }
    }
}

fn looks_like_float(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    matches!(lower.as_str(), ".inf" | "-.inf" | "+.inf" | ".nan")
        || (text.bytes().any(|b| b.is_ascii_digit())
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
            && text.parse::<f64>().is_ok())
}

/// A syntax error: message and 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

enum Frame {
    Seq {
        items: Vec<Node>,
        span: Span,
        anchor: usize,
    },
    Map {
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        span: Span,
        anchor: usize,
    },
}

fn at(span: &Span) -> (usize, usize) {
    (span.start.line(), span.start.col() + 1)
}

/// How deeply lists and mappings may nest. Neither file needs more than a handful of levels;
/// the limit keeps the recursive walks over the tree (drop, clone, conversion to JSON) far
/// from the end of a thread's stack, whatever the input.
pub(crate) const MAX_DEPTH: usize = 100;

/// How many nodes aliases may copy in one file, in total. An alias is resolved by copying
/// its anchor's node, so aliases of aliases grow exponentially ("billion laughs"); this
/// bounds the memory and time a file can cost while leaving room for sharing blocks.
pub(crate) const MAX_ALIAS_NODES: usize = 100_000;

/// The number of nodes in `node`'s tree (itself included).
fn count_nodes(node: &Node) -> usize {
    match &node.value {
        Value::Scalar { .. } => 1,
        Value::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count_nodes(k) + count_nodes(v))
                .sum::<usize>()
        }
    }
}

/// Where the tab is that a saphyr error about a tab is about. saphyr marks the start of
/// the scalar or whitespace it was scanning, which can be lines above the tab: the first tab
/// after `line`:`col` on that line, or in the leading whitespace of a following line with
/// only blank lines between.
fn tab_near(text: &str, line: usize, col: usize) -> Option<(usize, usize)> {
    for (index, content) in text.split('\n').enumerate().skip(line.checked_sub(1)?) {
        if index + 1 == line {
            let tab = content
                .chars()
                .enumerate()
                .skip(col.saturating_sub(1))
                .find(|(_, c)| *c == '\t');
            if let Some((at, _)) = tab {
                return Some((line, at + 1));
            }
            continue;
        }
        let lead = content.chars().take_while(|c| c.is_whitespace());
        if let Some(at) = lead.clone().position(|c| c == '\t') {
            return Some((index + 1, at + 1));
        }
        if !content.trim().is_empty() {
            return None;
        }
    }
    None
}

/// Parses the first (and only) document of `text`; `Ok(None)` for an empty file.
///
/// Lists and mappings nested deeper than [`MAX_DEPTH`], and aliases copying more than
/// [`MAX_ALIAS_NODES`] nodes in total, are errors at the line where the limit is crossed.
pub(crate) fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut stack: Vec<Frame> = Vec::new();
    // Anchor id (unique per definition) -> the anchored node and its size in nodes.
    let mut anchors: HashMap<usize, (Node, usize)> = HashMap::new();
    let mut alias_nodes = 0usize;
    let mut root: Option<Node> = None;
    let mut documents = 0;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|err| {
            let (mut line, mut col) = (err.marker().line(), err.marker().col() + 1);
            let mut message = err.info().to_string();
            if message == "recursion limit exceeded" {
                // saphyr's own limit on flow collections, met before ours when it scans
                // ahead.
                message = format!(
                    "lists and mappings nested more than {MAX_DEPTH} levels deep; flatten the file"
                );
            } else if message.contains("tab") {
                // saphyr may mark where the whitespace before the tab started, at the end of
                // the line above it: point at the tab itself.
                if let Some(at) = tab_near(text, line, col) {
                    (line, col) = at;
                }
            } else if text
                .split('\n')
                .nth(line.saturating_sub(1))
                .is_some_and(|content| content.contains('\t'))
            {
                // Tabs are the usual cause of errors that do not say so (`key:<tab>value`
                // is "':' must be followed by a valid YAML whitespace").
                message.push_str(" (this line has a tab: indent and separate with spaces)");
            }
            // saphyr counts a lone carriage return as a line break, so its line can lie past
            // the file's last `\n` line: point at the end of the text then.
            let last_line = text.split('\n').count();
            if line > last_line {
                line = last_line;
                col = text
                    .split('\n')
                    .next_back()
                    .map_or(0, |l| l.chars().count())
                    + 1;
            }
            SyntaxError { line, col, message }
        })?;
        let (line, col) = at(&span);
        let complete = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError {
                        line,
                        col,
                        message: "a second YAML document (`---`); put everything in one".into(),
                    });
                }
                None
            }
            Event::Scalar(text, style, anchor, tag) => {
                let core_str = tag
                    .as_ref()
                    .is_some_and(|t| t.is_yaml_core_schema() && t.suffix == "str");
                let plain = style == ScalarStyle::Plain && !core_str;
                let node = Node {
                    value: Value::Scalar {
                        text: text.into_owned(),
                        plain,
                    },
                    line,
                    col,
                };
                if anchor > 0 {
                    anchors.insert(anchor, (node.clone(), 1));
                }
                Some(node)
            }
            Event::Alias(id) => {
                let (node, size) = anchors.get(&id).ok_or_else(|| SyntaxError {
                    line,
                    col,
                    message: "alias to an unknown anchor".into(),
                })?;
                alias_nodes = alias_nodes.saturating_add(*size);
                if alias_nodes > MAX_ALIAS_NODES {
                    return Err(SyntaxError {
                        line,
                        col,
                        message: format!(
                            "aliases (`*name`) expand to more than {MAX_ALIAS_NODES} nodes in total; write the values out or share smaller blocks"
                        ),
                    });
                }
                Some(node.clone())
            }
            Event::SequenceStart(..) | Event::MappingStart(..) if stack.len() >= MAX_DEPTH => {
                return Err(SyntaxError {
                    line,
                    col,
                    message: format!(
                        "lists and mappings nested more than {MAX_DEPTH} levels deep; flatten the file"
                    ),
                });
            }
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq {
                    items: Vec::new(),
                    span,
                    anchor,
                });
                None
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map {
                    entries: Vec::new(),
                    key: None,
                    span,
                    anchor,
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match stack.pop() {
                    Some(Frame::Seq {
                        items,
                        span,
                        anchor,
                    }) => {
                        let (line, col) = at(&span);
                        (
                            Node {
                                value: Value::Seq(items),
                                line,
                                col,
                            },
                            anchor,
                        )
                    }
                    Some(Frame::Map {
                        entries,
                        span,
                        anchor,
                        ..
                    }) => {
                        let (line, col) = at(&span);
                        (
                            Node {
                                value: Value::Map(entries),
                                line,
                                col,
                            },
                            anchor,
                        )
                    }
                    None => {
                        return Err(SyntaxError {
                            line,
                            col,
                            message: "unbalanced collection end".into(),
                        })
                    }
                };
                if anchor > 0 {
                    anchors.insert(anchor, (node.clone(), count_nodes(&node)));
                }
                Some(node)
            }
            _ => None,
        };
        if let Some(node) = complete {
            match stack.last_mut() {
                Some(Frame::Seq { items, .. }) => items.push(node),
                Some(Frame::Map { entries, key, .. }) => match key.take() {
                    None => *key = Some(node),
                    Some(k) => entries.push((k, node)),
                },
                None => root = Some(node),
            }
        }
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_remember_their_lines_and_types() {
        let root = parse("a: 1\nb:\n  - \"x\"\n  - true\nc: ~\n")
            .unwrap()
            .unwrap();
        let map = root.as_map().unwrap();
        assert_eq!(map[0].0.scalar_text(), Some("a"));
        assert_eq!(map[0].1.typed(), Some(Typed::Int(1)));
        assert_eq!(map[1].1.line, 3);
        let seq = map[1].1.as_seq().unwrap();
        assert_eq!(seq[0].typed(), Some(Typed::Str("x")));
        assert_eq!(seq[1].typed(), Some(Typed::Bool(true)));
        assert_eq!(seq[1].line, 4);
        assert!(map[2].1.is_null());
    }

    #[test]
    fn quoted_numbers_stay_strings() {
        let root = parse("a: '5'\nb: !!str 6\n").unwrap().unwrap();
        let map = root.as_map().unwrap();
        assert_eq!(map[0].1.typed(), Some(Typed::Str("5")));
        assert_eq!(map[1].1.typed(), Some(Typed::Str("6")));
    }

    #[test]
    fn an_error_never_points_past_the_last_line_of_the_file() {
        // YAML also breaks lines at a lone carriage return; editors and kaal's messages count
        // `\n` lines, so saphyr's line could lie past the file's end.
        for text in ["a: 1\rb: 2\rc: [x", "defaults:\r  k: 1\r  j: {"] {
            let err = parse(text).unwrap_err();
            assert!(err.line <= text.split('\n').count(), "{text:?}: {err:?}");
        }
    }

    #[test]
    fn syntax_errors_carry_the_line() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.line >= 2, "{err:?}");
    }

    #[test]
    fn empty_text_is_no_document() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# only a comment\n").unwrap(), None);
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_an_error_with_its_line() {
        let ok = format!(
            "a: {}{}\n",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(parse(&ok).is_ok());
        let deep = format!(
            "a: 1\nb: {}{}\n",
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        let err = parse(&deep).unwrap_err();
        assert_eq!(err.line, 2, "{err:?}");
        assert!(err.message.contains("nested more than"), "{err:?}");
        let deeper = format!("a: {}{}\n", "[".repeat(1000), "]".repeat(1000));
        let err = parse(&deeper).unwrap_err();
        assert!(err.message.contains("nested more than"), "{err:?}");
    }

    #[test]
    fn aliases_that_multiply_are_cut_off() {
        let mut text = String::from("l0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let alias = format!("*a{}", i - 1);
            text.push_str(&format!("l{i}: &a{i} [{}]\n", vec![alias; 10].join(", ")));
        }
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("aliases"), "{err:?}");
        assert!((5..=9).contains(&err.line), "{err:?}");
    }

    #[test]
    fn a_tab_in_the_indentation_is_reported_on_its_own_line() {
        let err = parse("a:\n  b: true\n\tc: 1\n").unwrap_err();
        assert_eq!((err.line, err.col), (3, 1), "{err:?}");
        let err = parse("a:\n  b: true\n\n  \n\tc: 1\n").unwrap_err();
        assert_eq!((err.line, err.col), (5, 1), "{err:?}");
        assert!(err.message.contains("tab"), "{err:?}");
        let err = parse("a:\n  b:\tc\n").unwrap_err();
        assert_eq!(err.line, 2, "{err:?}");
        assert!(err.message.contains("this line has a tab"), "{err:?}");
    }

    #[test]
    fn aliases_are_resolved() {
        let root = parse("a: &x [1, 2]\nb: *x\n").unwrap().unwrap();
        let map = root.as_map().unwrap();
        assert_eq!(map[1].1.as_seq().unwrap().len(), 2);
    }
}
