//! One error type for every handler, mapped to HTTP in one place: 4xx with the message for
//! the caller's mistakes, 500 for ours (details are logged, the caller gets a short text).

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

/// An error answered to the caller.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("authentication failed")]
    Unauthorized,
    #[error("permission denied: {0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(msg: impl std::fmt::Display) -> Self {
        Self::BadRequest(msg.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The answer sent to the caller.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let status = self.status();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("{self}");
        }
        let body = serde_json::to_vec(&protocol::types::ErrorResponse {
            error: self.to_string(),
        })
        .unwrap_or_default();
        Response::builder()
            .status(status)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
    }
}

impl From<datastore::names::NameError> for ApiError {
    fn from(err: datastore::names::NameError) -> Self {
        Self::BadRequest(err.to_string())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// `{"data": value}` with status 200.
pub fn json_response<T: serde::Serialize>(value: &T) -> ApiResult<Response<Full<Bytes>>> {
    let body = serde_json::to_vec(&protocol::types::DataResponse { data: value })
        .map_err(|e| ApiError::Internal(e.into()))?;
    Response::builder()
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| ApiError::Internal(e.into()))
}

/// Raw bytes with status 200.
pub fn bytes_response(data: Bytes) -> ApiResult<Response<Full<Bytes>>> {
    Response::builder()
        .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
        .body(Full::new(data))
        .map_err(|e| ApiError::Internal(e.into()))
}
