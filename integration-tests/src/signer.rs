//! A bank's side of the wire: its signing key, and requests to paygate's bank endpoints signed
//! with it (or with any `Paygate-Signature` values a test wants to try).

use reqwest::header::HeaderValue;
use reqwest::Response;
use serde_json::Value;

use crate::clock::now_s;
use crate::TestApp;

/// One signing key of a bank, as `POST /v1/banks` or `POST /v1/banks/{code}/keys` answered it.
#[derive(Debug, Clone)]
pub struct Signer {
    pub bank: String,
    pub kid: String,
    pub secret: String,
}

impl Signer {
    pub fn from_answer(bank: &str, answer: &Value) -> Signer {
        Signer {
            bank: bank.to_owned(),
            kid: answer["key_id"].as_str().expect("key_id").to_owned(),
            secret: answer["secret"].as_str().expect("secret").to_owned(),
        }
    }

    /// The `Paygate-Signature` value for `body` at unix time `t`.
    pub fn signature(&self, t: i64, body: &[u8]) -> String {
        paygate::signature::sign(self.secret.as_bytes(), &self.kid, t, body)
    }
}

/// `value` as a header value.
pub fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).expect("a valid header value")
}

impl TestApp {
    /// Creates a bank through the API and returns its first signing key.
    pub async fn new_bank(&self, code: &str) -> Signer {
        Signer::from_answer(code, &self.create_bank(code).await)
    }

    /// POSTs `body` (exactly these bytes) to `path` with one `Paygate-Signature` header per
    /// value.
    pub async fn post_raw(
        &self,
        path: &str,
        signatures: &[HeaderValue],
        body: Vec<u8>,
    ) -> Response {
        let request = self.raw_request(path, signatures, body);
        request.send().await.expect("POST to a bank endpoint")
    }

    /// The request `post_raw` sends, not yet sent (it can be sent from another task).
    pub fn raw_request(
        &self,
        path: &str,
        signatures: &[HeaderValue],
        body: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        let mut request = self.post(path).header("Content-Type", "application/json").body(body);
        for value in signatures {
            request = request.header("Paygate-Signature", value.clone());
        }
        request
    }

    /// POSTs `body` to `/v1/banks/<bank>/<endpoint>`, signed now by `signer`.
    pub async fn post_signed(&self, signer: &Signer, endpoint: &str, body: &Value) -> Response {
        let bytes = serde_json::to_vec(body).expect("JSON");
        self.post_signed_ago(signer, endpoint, 0, bytes).await
    }

    /// POSTs `bytes` to `/v1/banks/<bank>/<endpoint>`, signed by `signer` `age_s` seconds ago.
    pub async fn post_signed_ago(
        &self,
        signer: &Signer,
        endpoint: &str,
        age_s: i64,
        bytes: Vec<u8>,
    ) -> Response {
        let signature = signer.signature(now_s() - age_s, &bytes);
        let path = format!("/v1/banks/{}/{endpoint}", signer.bank);
        self.post_raw(&path, &[header(&signature)], bytes).await
    }
}
