//! The HTTP side of authentication: the [`Principal`] extractor, the middleware that looks a
//! request's key up before its body is read, and how an [`AuthError`] is answered. This is the
//! only file of `auth` that knows HTTP.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;

use super::{authenticate, AuthError, Principal, Role};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::AppState;

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::AgencyDisabled(_) => ApiError::Refused {
                code: ErrorCode::AgencyDisabled,
                detail: err.to_string(),
            },
            AuthError::Db(err) => err.into(),
        }
    }
}

impl Principal {
    /// 403 `forbidden` unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

/// The longest `Authorization` value worth hashing; real keys are 47 characters.
const MAX_API_KEY_CHARS: usize = 128;

/// The bearer key of a request, if it carries one worth looking up.
fn bearer_key(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|key| !key.is_empty() && key.len() <= MAX_API_KEY_CHARS)
        .map(str::to_owned)
}

/// Looks `key` up: the caller, or why it is refused.
async fn principal_for(state: &AppState, key: &str) -> Result<Principal, ApiError> {
    let client = state.pool.get().await?;
    authenticate(&client, key)
        .await?
        .ok_or(ApiError::Unauthenticated)
}

/// The outcome of [`AuthenticateFirst`], waiting in the request's extensions for the handler.
struct Authenticated(Result<Principal, ApiError>);

/// The request's id as the telemetry middleware settled it (and answers it in `X-Request-Id`),
/// left in the request's extensions so that the [`Principal`] carries it to the audit trail.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let early = req.extensions_mut().remove::<Authenticated>();
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .map(|RequestId(id)| id.clone());
        let key = bearer_key(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let outcome = match early {
                Some(Authenticated(outcome)) => outcome,
                None => {
                    let key = key.ok_or(ApiError::Unauthenticated)?;
                    let state = state.expect("AppState is registered on the app");
                    principal_for(&state, &key).await
                }
            };
            outcome.map(|principal| Principal {
                request_id,
                ..principal
            })
        })
    }
}

/// Authenticates a request's bearer key before the handler's arguments are extracted.
///
/// A handler's arguments are extracted side by side, so without this a body that fails to
/// parse (ready at once) would answer before the key's database lookup (which takes a round
/// trip) could: a malformed body sent with an unknown key, or with a disabled agency's key,
/// would answer 400 instead of 401 or 403. Done here, the outcome is ready before any body is
/// read, and the [`Principal`] extractor answers first. Only `/v1/` requests that carry a
/// bearer key are looked up; the others are passed on untouched.
pub struct AuthenticateFirst;

impl<S, B> Transform<S, ServiceRequest> for AuthenticateFirst
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = AuthenticateFirstService<S>;
    type InitError = ();
    type Future = std::future::Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(AuthenticateFirstService {
            service: Rc::new(service),
        }))
    }
}

pub struct AuthenticateFirstService<S> {
    service: Rc<S>,
}

impl<S, B> Service<ServiceRequest> for AuthenticateFirstService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        Box::pin(async move {
            let key = req
                .path()
                .starts_with("/v1/")
                .then(|| bearer_key(req.request()))
                .flatten();
            let state = req.app_data::<web::Data<AppState>>().cloned();
            if let (Some(key), Some(state)) = (key, state) {
                let outcome = principal_for(&state, &key).await;
                req.extensions_mut().insert(Authenticated(outcome));
            }
            service.call(req).await
        })
    }
}
