//! Keyset pagination (`docs/api-guide.md`, "Conventions"): `?limit=` (1-500, default 100) and `?cursor=`.
//!
//! A cursor is the opaque position of the last item of a page. Pages walk a strictly decreasing
//! sequence column, so items inserted meanwhile never shift a page or repeat an item.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::body::Validator;

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 500;

/// Documents `limit` and `cursor` for every list's `params(...)`; [`PageRequest::parse`] reads
/// them.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documents the query; the handlers validate it parameter by parameter.
pub struct PageParams {
    /// 1-500, default 100
    limit: Option<i64>,
    /// `next_cursor` of the previous page
    cursor: Option<String>,
}

/// A page request: how many items, and after which position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: i64,
    /// The position of the last item of the previous page: lists that walk newest first
    /// continue below it, lists in file order (reconciliation items) above it.
    pub cursor: Option<i64>,
}

impl PageRequest {
    /// Reads `limit` and `cursor`, recording errors in `v` under their parameter names.
    pub fn parse(query: &HashMap<String, String>, v: &mut Validator) -> PageRequest {
        let limit = match query.get("limit") {
            None => DEFAULT_LIMIT,
            Some(text) => match text.parse::<i64>() {
                Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => limit,
                _ => {
                    v.error(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    );
                    DEFAULT_LIMIT
                }
            },
        };
        let cursor = query.get("cursor").and_then(|cursor| {
            let position = decode_cursor(cursor);
            if position.is_none() {
                v.error("cursor", "is not a cursor this service issued");
            }
            position
        });
        PageRequest { limit, cursor }
    }
}

pub fn encode_cursor(position: i64) -> String {
    URL_SAFE_NO_PAD.encode(position.to_be_bytes())
}

fn decode_cursor(cursor: &str) -> Option<i64> {
    let bytes: [u8; 8] = URL_SAFE_NO_PAD.decode(cursor).ok()?.try_into().ok()?;
    let position = i64::from_be_bytes(bytes);
    (position > 0).then_some(position)
}

/// One page of a list: `{"items": [...], "next_cursor": "..." | null}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in the list's order; the extra row
    /// only tells that another page follows.
    pub fn from_rows(mut rows: Vec<T>, limit: i64, position: impl Fn(&T) -> i64) -> Page<T> {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|last| encode_cursor(position(last)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_is_path_safe() {
        let cursor = encode_cursor(123_456_789);
        assert!(cursor
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(decode_cursor(&cursor), Some(123_456_789));
    }

    #[test]
    fn foreign_cursors_and_limits_out_of_range_are_errors() {
        for (name, value) in [
            ("cursor", "abc"),
            ("cursor", "AAAAAAAAAAA"),
            ("limit", "0"),
            ("limit", "501"),
            ("limit", "x"),
        ] {
            let mut v = Validator::new();
            let query = HashMap::from([(name.to_owned(), value.to_owned())]);
            PageRequest::parse(&query, &mut v);
            assert!(v.finish().is_err(), "{name}={value}");
        }
    }

    #[test]
    fn a_full_page_has_a_next_cursor_and_a_short_one_has_none() {
        let page = Page::from_rows(vec![5, 4, 3], 2, |n| *n);
        assert_eq!(page.items, vec![5, 4]);
        assert_eq!(page.next_cursor, Some(encode_cursor(4)));
        let last = Page::from_rows(vec![2, 1], 2, |n| *n);
        assert_eq!(last.next_cursor, None);
    }
}
