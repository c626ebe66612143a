//! Twisted's endpoint description mini-language: colon-separated fields,
//! positional first then `key=value`, `\` escaping the next character
//! (`endpoints._tokenize` and `_parse`).

use super::error::EndpointError;

/// A description split into its fields.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Fields {
    /// The endpoint type (`tcp`, `unix`, ...), lower-cased.
    pub(crate) kind: String,
    /// Positional fields after the type.
    pub(crate) args: Vec<String>,
    /// `key=value` fields, in order.
    pub(crate) kwargs: Vec<(String, String)>,
}

/// Splits `description` as Twisted's `_parse` does: `:` ends a field, the
/// first `=` in a field splits its key from its value (later ones belong to
/// the value), and `\` takes the next character literally.
pub(crate) fn split(description: &str) -> Result<Fields, EndpointError> {
    let mut fields: Vec<Vec<String>> = Vec::new();
    let mut field: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut chars = description.chars();
    while let Some(c) = chars.next() {
        match c {
            ':' => {
                field.push(std::mem::take(&mut current));
                fields.push(std::mem::take(&mut field));
            }
            '=' if field.is_empty() => field.push(std::mem::take(&mut current)),
            '\\' => match chars.next() {
                Some(escaped) => current.push(escaped),
                None => {
                    return Err(EndpointError::DanglingEscape {
                        description: description.to_string(),
                    })
                }
            },
            c => current.push(c),
        }
    }
    field.push(current);
    fields.push(field);

    let mut out = Fields::default();
    for (i, mut field) in fields.into_iter().enumerate() {
        if field.len() == 1 {
            let value = field.pop().unwrap_or_default();
            if i == 0 {
                out.kind = value.to_ascii_lowercase();
            } else {
                out.args.push(value);
            }
            continue;
        }
        let value = field.pop().unwrap_or_default();
        let key = field.pop().unwrap_or_default();
        if i == 0 {
            return Err(EndpointError::MissingType {
                description: description.to_string(),
            });
        }
        if out.kwargs.iter().any(|(k, _)| *k == key) {
            return Err(EndpointError::Repeated { field: key });
        }
        out.kwargs.push((key, value));
    }
    if out.kind.is_empty() {
        return Err(EndpointError::MissingType {
            description: description.to_string(),
        });
    }
    Ok(out)
}

/// Hands the fields of one endpoint type out by name, and reports what is
/// missing, malformed or left over.
pub(crate) struct Take {
    kind: &'static str,
    args: std::collections::VecDeque<String>,
    kwargs: Vec<(String, String)>,
}

impl Take {
    pub(crate) fn new(kind: &'static str, fields: Fields) -> Take {
        Take {
            kind,
            args: fields.args.into(),
            kwargs: fields.kwargs,
        }
    }

    /// The field `name`, by keyword or else as the next positional field.
    pub(crate) fn next(&mut self, name: &str) -> Option<String> {
        self.keyword(name).or_else(|| self.args.pop_front())
    }

    /// The field `name` given as `name=value` only.
    pub(crate) fn keyword(&mut self, name: &str) -> Option<String> {
        let at = self.kwargs.iter().position(|(k, _)| k == name)?;
        Some(self.kwargs.remove(at).1)
    }

    /// Whether `name` was given as a keyword.
    pub(crate) fn has_keyword(&self, name: &str) -> bool {
        self.kwargs.iter().any(|(k, _)| k == name)
    }

    pub(crate) fn required(&mut self, name: &'static str) -> Result<String, EndpointError> {
        self.next(name).ok_or(EndpointError::Missing {
            kind: self.kind,
            field: name,
        })
    }

    /// Refuses fields nobody took.
    pub(crate) fn finish(self) -> Result<(), EndpointError> {
        if let Some((key, _)) = self.kwargs.into_iter().next() {
            return Err(EndpointError::UnknownField {
                kind: self.kind,
                field: key,
            });
        }
        if !self.args.is_empty() {
            return Err(EndpointError::TooManyFields {
                kind: self.kind,
                extra: self.args.into(),
            });
        }
        Ok(())
    }
}

pub(crate) fn port(field: &'static str, value: &str) -> Result<u16, EndpointError> {
    value.parse().map_err(|_| EndpointError::BadValue {
        field,
        value: value.to_string(),
        expected: "a port number from 0 to 65535",
    })
}

pub(crate) fn number(field: &'static str, value: &str) -> Result<u32, EndpointError> {
    value.parse().map_err(|_| EndpointError::BadValue {
        field,
        value: value.to_string(),
        expected: "a whole number",
    })
}

/// Twisted's booleans in descriptions: `1`/`0`, `true`/`false`, `yes`/`no`.
pub(crate) fn boolean(field: &'static str, value: &str) -> Result<bool, EndpointError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(EndpointError::BadValue {
            field,
            value: value.to_string(),
            expected: "1 or 0 (true or false)",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn twisted_tokenizer_cases() {
        // Table from Twisted's test_endpoints `ServerStringTests`/`_parse` tests.
        let f = split("tcp:80:interface=127.0.0.1").unwrap();
        assert_eq!(f.kind, "tcp");
        assert_eq!(f.args, s(&["80"]));
        assert_eq!(f.kwargs, [("interface".into(), "127.0.0.1".into())]);
        // Escaped colons and equals stay in the value; a later `=` is the value's.
        let f = split(r"unix:/var/foo\:bar:key=a=b\:c").unwrap();
        assert_eq!(f.args, s(&["/var/foo:bar"]));
        assert_eq!(f.kwargs, [("key".into(), "a=b:c".into())]);
        // An escaped `=` is not a key separator.
        let f = split(r"unix:a\=b").unwrap();
        assert_eq!(f.args, s(&["a=b"]));
        let f = split("tcp:").unwrap();
        assert_eq!(f.args, s(&[""]));
    }

    #[test]
    fn malformed_descriptions_say_why() {
        assert!(matches!(
            split(r"tcp:80\"),
            Err(EndpointError::DanglingEscape { .. })
        ));
        assert!(matches!(
            split("=tcp:80"),
            Err(EndpointError::MissingType { .. })
        ));
        assert!(matches!(split(""), Err(EndpointError::MissingType { .. })));
        assert!(matches!(
            split("tcp:port=1:port=2"),
            Err(EndpointError::Repeated { .. })
        ));
    }
}
