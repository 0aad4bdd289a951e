//! RFC 8785 (JCS) canonical JSON. The bytes [`to_canonical_bytes`] returns are
//! the bytes written to provenance.json and the bytes hashed into report_data.
//!
//! Serialization is done by `serde_json_canonicalizer` (checked below against
//! the RFC's own examples); this module adds Kettle's integers-only rule.

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

/// Largest integer magnitude an IEEE-754 double (JCS's number model) holds exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why a value could not be turned into Kettle canonical JSON.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum JcsError {
    /// A float was found; Kettle output carries integers only so the bytes are exact.
    #[error("floating-point number {value} at {path}: provenance must use integers only (encode fractional values as strings)")]
    Float {
        /// JSON Pointer (RFC 6901) to the offending value.
        path: String,
        /// The number as serde_json printed it.
        value: String,
    },
    /// An integer beyond ±(2^53-1) would be silently rounded by JCS's double model.
    #[error("integer {value} at {path} is beyond ±(2^53-1) and cannot be represented exactly in canonical JSON: encode it as a string")]
    IntegerOutOfRange {
        /// JSON Pointer (RFC 6901) to the offending value.
        path: String,
        /// The integer.
        value: String,
    },
    /// The value could not be serialized or the input was not valid JSON.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
}

/// Canonical (RFC 8785) bytes of `value`, refusing floats and unsafe integers anywhere in it.
pub fn to_canonical_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, JcsError> {
    let tree = serde_json::to_value(value)?;
    check_integers_only(&tree, &mut String::new())?;
    Ok(serde_json_canonicalizer::to_vec(&tree)?)
}

/// Canonicalizes arbitrary JSON text per RFC 8785 (floats allowed, formatted as ES6 does).
pub fn canonicalize_json(bytes: &[u8]) -> Result<Vec<u8>, JcsError> {
    let tree: Value = serde_json::from_slice(bytes)?;
    Ok(serde_json_canonicalizer::to_vec(&tree)?)
}

/// True if `bytes` are valid JSON already in RFC 8785 canonical form.
///
/// Duplicate keys, whitespace, escapes JCS would not write, or non-canonical
/// numbers all make this false (re-canonicalizing changes the bytes).
pub fn is_canonical(bytes: &[u8]) -> bool {
    matches!(canonicalize_json(bytes), Ok(canon) if canon == bytes)
}

/// Walks `value` and fails on the first float or out-of-range integer, naming where.
fn check_integers_only(value: &Value, path: &mut String) -> Result<(), JcsError> {
    match value {
        Value::Number(n) => {
            let exact = if let Some(u) = n.as_u64() {
                u <= MAX_SAFE_INTEGER
            } else if let Some(i) = n.as_i64() {
                i.unsigned_abs() <= MAX_SAFE_INTEGER
            } else {
                return Err(JcsError::Float {
                    path: pointer(path),
                    value: n.to_string(),
                });
            };
            if exact {
                Ok(())
            } else {
                Err(JcsError::IntegerOutOfRange {
                    path: pointer(path),
                    value: n.to_string(),
                })
            }
        }
        Value::Array(items) => items.iter().enumerate().try_for_each(|(i, item)| {
            let len = path.len();
            path.push('/');
            path.push_str(&i.to_string());
            let r = check_integers_only(item, path);
            path.truncate(len);
            r
        }),
        Value::Object(map) => map.iter().try_for_each(|(key, item)| {
            let len = path.len();
            path.push('/');
            path.push_str(&key.replace('~', "~0").replace('/', "~1"));
            let r = check_integers_only(item, path);
            path.truncate(len);
            r
        }),
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
    }
}

/// The root pointer is "" in RFC 6901; print it as "/" so messages stay readable.
fn pointer(path: &str) -> String {
    if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(text: &str) -> String {
        String::from_utf8(canonicalize_json(text.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn rfc8785_sorting_example_orders_by_utf16_code_units() {
        // RFC 8785 section 3.2.3, plus U+00EA; the emoji's surrogate pair (D83D)
        // sorts before U+FB33 although its code point is larger.
        let input = r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh",
            "1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis","\u00ea":"e"}"#;
        let keys_in_order = [
            "\r",
            "1",
            "\u{80}",
            "\u{ea}",
            "\u{f6}",
            "\u{20ac}",
            "\u{1f600}",
            "\u{fb33}",
        ];
        let out = canon(input);
        let mut expected = String::from("{");
        let values = [
            "Carriage Return",
            "One",
            "Control",
            "e",
            "Latin Small Letter O With Diaeresis",
            "Euro Sign",
            "Emoji: Grinning Face",
            "Hebrew Letter Dalet With Dagesh",
        ];
        for (i, (k, v)) in keys_in_order.iter().zip(values).enumerate() {
            if i > 0 {
                expected.push(',');
            }
            let k = if *k == "\r" {
                "\\r".to_string()
            } else {
                k.to_string()
            };
            expected.push_str(&format!("\"{k}\":\"{v}\""));
        }
        expected.push('}');
        assert_eq!(out, expected);
    }

    #[test]
    fn rfc8785_section_3_2_2_example() {
        // RFC 8785 section 3.2.2: input and its canonical output, byte for byte.
        let input = r#"{
            "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
            "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
            "literals": [null, true, false]
        }"#;
        let expected = "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
        assert_eq!(canon(input), expected);
    }

    #[test]
    fn string_escapes() {
        let all_controls: String = (0u8..0x20).map(char::from).collect();
        let out = String::from_utf8(
            to_canonical_bytes(&json!([all_controls, "/é€😀\"\\\u{7f}"])).unwrap(),
        )
        .unwrap();
        let mut expected = String::from("[\"");
        for b in 0u8..0x20 {
            expected.push_str(&match b {
                0x08 => "\\b".into(),
                0x09 => "\\t".into(),
                0x0a => "\\n".into(),
                0x0c => "\\f".into(),
                0x0d => "\\r".into(),
                _ => format!("\\u{b:04x}"),
            });
        }
        // Solidus, DEL and non-ASCII stay literal.
        expected.push_str("\",\"/é€😀\\\"\\\\\u{7f}\"]");
        assert_eq!(out, expected);
        assert!(out.contains("\\u001f") && !out.contains("\\u001F"));
    }

    #[test]
    fn es6_number_forms() {
        assert_eq!(canon("[1e30, 1E+30, 1e21, 1e20, 100, -0, 0.0, 1.0, 1e-7, 0.000001, 5e-324, 9007199254740993]"),
            "[1e+30,1e+30,1e+21,100000000000000000000,100,0,0,1,1e-7,0.000001,5e-324,9007199254740992]");
    }

    #[test]
    fn nested_objects_and_arrays_are_sorted_recursively() {
        let v = json!({"b": [{"z": 1, "a": {"y": [], "x": {}}}], "a": {"d": null, "c": true}});
        assert_eq!(
            String::from_utf8(to_canonical_bytes(&v).unwrap()).unwrap(),
            r#"{"a":{"c":true,"d":null},"b":[{"a":{"x":{},"y":[]},"z":1}]}"#
        );
    }

    #[test]
    fn floats_are_rejected_with_their_location() {
        let err = to_canonical_bytes(&json!({"a": [1, {"b/c": 1.5}]})).unwrap_err();
        match &err {
            JcsError::Float { path, value } => {
                assert_eq!(path, "/a/1/b~1c");
                assert_eq!(value, "1.5");
            }
            other => panic!("expected Float, got {other:?}"),
        }
        assert!(err.to_string().contains("integers only"));
        // An integral float is still a float in our output.
        assert!(matches!(
            to_canonical_bytes(&json!(2.0)),
            Err(JcsError::Float { .. })
        ));
    }

    #[test]
    fn integers_that_a_double_cannot_hold_are_rejected() {
        assert_eq!(
            to_canonical_bytes(&json!(MAX_SAFE_INTEGER)).unwrap(),
            b"9007199254740991"
        );
        assert_eq!(
            to_canonical_bytes(&json!(-(MAX_SAFE_INTEGER as i64))).unwrap(),
            b"-9007199254740991"
        );
        assert!(matches!(
            to_canonical_bytes(&json!(MAX_SAFE_INTEGER + 1)),
            Err(JcsError::IntegerOutOfRange { .. })
        ));
        assert!(matches!(
            to_canonical_bytes(&json!(i64::MIN)),
            Err(JcsError::IntegerOutOfRange { .. })
        ));
    }

    #[test]
    fn is_canonical_accepts_only_exact_canonical_bytes() {
        assert!(is_canonical(br#"{"a":1,"b":[true,null,"x"]}"#));
        assert!(is_canonical(b"{}"));
        assert!(!is_canonical(br#"{"b":1,"a":2}"#), "unsorted keys");
        assert!(!is_canonical(br#"{"a": 1}"#), "whitespace");
        assert!(!is_canonical(b"{\"a\":1}\n"), "trailing newline");
        assert!(!is_canonical(br#"{"a":1.0}"#), "non-canonical number");
        assert!(!is_canonical(br#"{"a":"\u0041"}"#), "needless escape");
        assert!(!is_canonical(br#"{"a":"\/"}"#), "escaped solidus");
        assert!(!is_canonical(br#"{"a":1,"a":1}"#), "duplicate key");
        assert!(!is_canonical(br#"{"a":"\ud800"}"#), "lone surrogate");
        assert!(!is_canonical(b"{\"a\":\"\xff\"}"), "invalid UTF-8");
        assert!(!is_canonical(b"{"), "truncated");
    }
}
