//! Reading paygate's answers: JSON bodies with an expected status, and the metrics text.

use reqwest::Response;
use serde_json::Value;

use crate::TestApp;

/// The JSON body of `response`, which must have `status` (the body is shown when it has not).
pub async fn json_with(response: Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().await.expect("an answer");
    assert_eq!(actual, status, "{text}");
    serde_json::from_str(&text).expect("a JSON answer")
}

/// The JSON body of `response`, which must be 200.
pub async fn json_200(response: Response) -> Value {
    json_with(response, 200).await
}

/// Asserts that `value` is an object with exactly the members `expected`, in any order.
pub fn assert_members(value: &Value, expected: &[&str]) {
    let object = value.as_object().unwrap_or_else(|| panic!("an object: {value}"));
    let mut names: Vec<&str> = object.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut expected = expected.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected, "{value}");
}

/// The `Content-Type` of `response`, empty when it has none.
pub fn content_type(response: &Response) -> String {
    response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The value of one counter series (`name{labels}`) in a metrics text, 0 when it is absent.
pub fn counter(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

impl TestApp {
    /// The text of `GET /metrics`, which must answer 200.
    pub async fn metrics(&self) -> String {
        let response = self.get("/metrics").send().await.expect("GET /metrics");
        assert_eq!(response.status(), 200);
        response.text().await.expect("metrics text")
    }

    /// `(count, sum)` of a histogram of `GET /metrics` (`name` without its `_count`/`_sum`
    /// suffix), zeros when it has no observation yet.
    pub async fn histogram(&self, name: &str) -> (u64, f64) {
        let metrics = self.metrics().await;
        let value = |series: String| -> f64 {
            metrics
                .lines()
                .find_map(|line| line.strip_prefix(&series)?.strip_prefix(' ')?.trim().parse().ok())
                .unwrap_or(0.0)
        };
        (value(format!("{name}_count")) as u64, value(format!("{name}_sum")))
    }
}

/// Sending a request and checking its answer in one step, for the many tests whose request
/// exists only to be answered with one status.
#[allow(async_fn_in_trait)]
pub trait RequestExt {
    /// Sends the request; the answer must be a problem+json with `status` and `code`, whose
    /// body is returned.
    async fn problem(self, status: u16, code: &str) -> Value;

    /// Sends the request; the answer must have `status` and a JSON body, which is returned.
    async fn json_with(self, status: u16) -> Value;

    /// Sends the request and returns the answer's JSON body, whatever its status.
    async fn answer_json(self) -> Value;

    /// Sends the request; the answer must be a 422 `validation_failed`, whose invalid fields
    /// are returned.
    async fn invalid(self) -> Vec<String>;
}

impl RequestExt for reqwest::RequestBuilder {
    async fn problem(self, status: u16, code: &str) -> Value {
        let response = self.send().await.expect("an answer");
        crate::assert_problem(response, status, code).await
    }

    async fn json_with(self, status: u16) -> Value {
        json_with(self.send().await.expect("an answer"), status).await
    }

    async fn answer_json(self) -> Value {
        let response = self.send().await.expect("an answer");
        response.json().await.expect("a JSON answer")
    }

    async fn invalid(self) -> Vec<String> {
        invalid(self.send().await.expect("an answer")).await
    }
}

/// The invalid fields of `response`, which must be a 422 `validation_failed` problem.
pub async fn invalid(response: Response) -> Vec<String> {
    let problem = crate::assert_problem(response, 422, "validation_failed").await;
    crate::invalid_fields(&problem)
}
