//! The one place where errors become Pinpoint's error responses: the status,
//! the `X-Amzn-ErrorType` header and the `{"Message", "RequestID"}` body.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_actors::ServiceError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    BadRequest,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    TooManyRequests,
    InternalServerError,
}

impl ErrorType {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::BadRequest => StatusCode::BAD_REQUEST,
            ErrorType::Forbidden => StatusCode::FORBIDDEN,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
            ErrorType::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorType::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorType::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorType::InternalServerError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            ErrorType::BadRequest => "BadRequestException",
            ErrorType::Forbidden => "ForbiddenException",
            ErrorType::NotFound => "NotFoundException",
            ErrorType::MethodNotAllowed => "MethodNotAllowedException",
            ErrorType::PayloadTooLarge => "PayloadTooLargeException",
            ErrorType::TooManyRequests => "TooManyRequestsException",
            ErrorType::InternalServerError => "InternalServerErrorException",
        }
    }
}

/// An API error; the request id is filled in by the request middleware.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ErrorType,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorType::BadRequest, message)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let kind = match &e {
            ServiceError::BadRequest(_) => ErrorType::BadRequest,
            ServiceError::NotFound(_) => ErrorType::NotFound,
            ServiceError::PayloadTooLarge(_) => ErrorType::PayloadTooLarge,
            ServiceError::TooManyRequests(_) => ErrorType::TooManyRequests,
            ServiceError::Internal(_) => ErrorType::InternalServerError,
        };
        if kind == ErrorType::InternalServerError {
            tracing::error!(error = %e, "internal error");
        }
        Self {
            kind,
            message: e.to_string(),
        }
    }
}

/// Marker the request middleware looks for to add the request id.
#[derive(Debug, Clone)]
pub struct ErrorBody(pub ApiError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = self.kind.status().into_response();
        r.headers_mut().insert(
            "x-amzn-errortype",
            HeaderValue::from_static(self.kind.code()),
        );
        r.extensions_mut().insert(ErrorBody(self));
        r
    }
}

/// Renders the body of an error response for a request id.
pub fn render(err: &ApiError, request_id: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "Message": err.message, "RequestID": request_id }))
        .expect("error body serializes")
}
