//! A pushed batch of JSON lines (node samples, services' status): every non-empty line must
//! parse as its type and pass its checks; a refusal is 400 naming the line (`line`) and, where
//! there is one, the field (`field`). Times are held to the server's clock.

use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// How far ahead of the server's clock a pushed time may be (clock skew).
pub const MAX_AHEAD_SECONDS: f64 = 300.0;

/// Why one line is refused.
pub(crate) struct Refusal {
    pub message: String,
    pub field: Option<&'static str>,
}

impl From<atlas_spec::RecordError> for Refusal {
    fn from(e: atlas_spec::RecordError) -> Refusal {
        Refusal {
            message: e.to_string(),
            field: Some(e.field()),
        }
    }
}

/// A `time` at most [`MAX_AHEAD_SECONDS`] after `now`.
pub(crate) fn not_ahead(time: f64, now: f64) -> Result<(), Refusal> {
    if time > now + MAX_AHEAD_SECONDS {
        let ahead = time - now;
        return Err(Refusal {
            message: format!("`time` is {ahead:.0} s ahead of the server's clock (at most {MAX_AHEAD_SECONDS:.0})"),
            field: Some("time"),
        });
    }
    Ok(())
}

/// The lines of `body` as `T`s (`what` names one in a refusal: `a node sample`), at most
/// `max_lines` of them, each passing `check`.
pub(crate) fn parse<T: DeserializeOwned>(
    body: &[u8],
    what: &str,
    max_lines: usize,
    check: impl Fn(&T) -> Result<(), Refusal>,
) -> Result<Vec<T>, ApiError> {
    let bad_request = |message: String| ApiError::new(StatusCode::BAD_REQUEST, message);
    let text = std::str::from_utf8(body)
        .map_err(|e| bad_request(format!("the body is not UTF-8: {e}")))?;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    if lines.len() > max_lines {
        return Err(bad_request(format!(
            "{} lines in one push, more than the {max_lines} allowed",
            lines.len()
        )));
    }
    let refuse = |i: usize, r: Refusal| {
        let error = bad_request(format!("line {}: {}", i + 1, r.message)).with("line", i + 1);
        match r.field {
            Some(field) => error.with("field", field),
            None => error,
        }
    };
    lines
        .into_iter()
        .map(|(i, line)| {
            let value: T = serde_json::from_str(line).map_err(|e| {
                let message = format!("not {what}: {e}");
                refuse(
                    i,
                    Refusal {
                        message,
                        field: None,
                    },
                )
            })?;
            check(&value).map_err(|r| refuse(i, r))?;
            Ok(value)
        })
        .collect()
}
