//! `${VAR}` and `${VAR:-default}` expansion of the values of both files.

use crate::files::yaml::{Node, Value};

/// Expands `${VAR}` (an error when `VAR` is unset) and `${VAR:-default}` (the default when
/// `VAR` is unset or empty, as in the shell). `$${` writes a literal `${`; any other `$` is
/// kept as it is. Variable names are letters, digits and `_`, not starting with a digit. A
/// default is plain text: `${A:-${B}}` is an error rather than the text `${B}`.
pub(crate) fn expand(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
            continue;
        }
        let Some(body) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let end = body.find('}').ok_or_else(|| {
            format!("unclosed \"${{\" in {text:?}; write ${{VAR}} or ${{VAR:-default}}")
        })?;
        let inner = &body[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        if !valid_name(name) {
            return Err(format!(
                "\"${{{inner}}}\" in {text:?}: {name:?} is not a variable name (letters, digits and _)"
            ));
        }
        if default.is_some_and(|d| d.contains("${")) {
            // `${A:-${B}}` would otherwise end at the first `}` and leave `${B}` as text.
            return Err(format!(
                "nested \"${{\" in the default of ${{{name}:-...}} in {text:?}: a default is plain text; set {name} or write the value"
            ));
        }
        let value = lookup(name);
        match (value, default) {
            (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set; set it or write ${{{name}:-default}}"
                ))
            }
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `node` (a job of the scheduler file) with `${VAR}` expanded in every scalar value;
/// mapping keys stay as written. Each value that cannot be expanded is left as it is and
/// reported in `failures` as `(line, "FIELD: reason")`, `FIELD` being the job field it is in.
pub(crate) fn expand_values(
    node: &Node,
    lookup: &dyn Fn(&str) -> Option<String>,
    failures: &mut Vec<(usize, String)>,
) -> Node {
    match &node.value {
        Value::Map(entries) => Node {
            value: Value::Map(
                entries
                    .iter()
                    .map(|(key, value)| {
                        let field = key.scalar_text().unwrap_or("value").to_string();
                        let mut inner = Vec::new();
                        let value = expand_tree(value, lookup, &mut inner);
                        failures.extend(
                            inner
                                .into_iter()
                                .map(|(line, message)| (line, format!("{field}: {message}"))),
                        );
                        (key.clone(), value)
                    })
                    .collect(),
            ),
            ..node.clone()
        },
        _ => expand_tree(node, lookup, failures),
    }
}

fn expand_tree(
    node: &Node,
    lookup: &dyn Fn(&str) -> Option<String>,
    failures: &mut Vec<(usize, String)>,
) -> Node {
    let value = match &node.value {
        Value::Scalar { text, plain } => match expand(text, lookup) {
            Ok(expanded) => Value::Scalar {
                text: expanded,
                plain: *plain,
            },
            Err(message) => {
                failures.push((node.line, message));
                node.value.clone()
            }
        },
        Value::Seq(items) => Value::Seq(
            items
                .iter()
                .map(|item| expand_tree(item, lookup, failures))
                .collect(),
        ),
        Value::Map(entries) => Value::Map(
            entries
                .iter()
                .map(|(key, value)| (key.clone(), expand_tree(value, lookup, failures)))
                .collect(),
        ),
    };
    Node {
        value,
        line: node.line,
        col: node.col,
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/k".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn variables_and_defaults_expand() {
        assert_eq!(expand("${HOME}/db", &env).unwrap(), "/home/k/db");
        assert_eq!(expand("${NOPE:-5}", &env).unwrap(), "5");
        assert_eq!(expand("${EMPTY:-x}", &env).unwrap(), "x");
        assert_eq!(expand("a $b $${c}", &env).unwrap(), "a $b ${c}");
    }

    #[test]
    fn unset_variables_and_bad_syntax_are_errors() {
        assert!(expand("${NOPE}", &env)
            .unwrap_err()
            .contains("NOPE is not set"));
        assert!(expand("${HOME", &env).unwrap_err().contains("unclosed"));
        assert!(expand("${1X}", &env)
            .unwrap_err()
            .contains("not a variable name"));
        assert!(expand("${NOPE:-${HOME}}", &env)
            .unwrap_err()
            .contains("nested \"${\" in the default of ${NOPE:-...}"));
    }
}
