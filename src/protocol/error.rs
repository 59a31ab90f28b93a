//! AMQP reply codes as one error type, with RabbitMQ's texts (`NAME - detail`).
//!
//! Soft errors close the channel, hard errors close the connection; which is
//! which follows from the code, so a layer can return one without knowing
//! where it will be reported.

use std::fmt;

/// The reply codes Warren sends (AMQP 0-9-1 section 1.2 and RabbitMQ's use of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    ContentTooLarge = 311,
    NoRoute = 312,
    NoConsumers = 313,
    ConnectionForced = 320,
    InvalidPath = 402,
    AccessRefused = 403,
    NotFound = 404,
    ResourceLocked = 405,
    PreconditionFailed = 406,
    FrameError = 501,
    SyntaxError = 502,
    CommandInvalid = 503,
    ChannelError = 504,
    UnexpectedFrame = 505,
    ResourceError = 506,
    NotAllowed = 530,
    NotImplemented = 540,
    InternalError = 541,
}

impl ErrorKind {
    pub fn code(self) -> u16 {
        self as u16
    }

    /// RabbitMQ's upper-case name, the first word of every reply text.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::ContentTooLarge => "CONTENT_TOO_LARGE",
            ErrorKind::NoRoute => "NO_ROUTE",
            ErrorKind::NoConsumers => "NO_CONSUMERS",
            ErrorKind::ConnectionForced => "CONNECTION_FORCED",
            ErrorKind::InvalidPath => "INVALID_PATH",
            ErrorKind::AccessRefused => "ACCESS_REFUSED",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::ResourceLocked => "RESOURCE_LOCKED",
            ErrorKind::PreconditionFailed => "PRECONDITION_FAILED",
            ErrorKind::FrameError => "FRAME_ERROR",
            ErrorKind::SyntaxError => "SYNTAX_ERROR",
            ErrorKind::CommandInvalid => "COMMAND_INVALID",
            ErrorKind::ChannelError => "CHANNEL_ERROR",
            ErrorKind::UnexpectedFrame => "UNEXPECTED_FRAME",
            ErrorKind::ResourceError => "RESOURCE_ERROR",
            ErrorKind::NotAllowed => "NOT_ALLOWED",
            ErrorKind::NotImplemented => "NOT_IMPLEMENTED",
            ErrorKind::InternalError => "INTERNAL_ERROR",
        }
    }

    /// Hard errors close the whole connection.
    pub fn is_hard(self) -> bool {
        self.code() >= 500 || self == ErrorKind::ConnectionForced || self == ErrorKind::InvalidPath
    }
}

/// An AMQP error reply: code, text and the method that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpError {
    pub kind: ErrorKind,
    pub text: String,
    pub class_id: u16,
    pub method_id: u16,
}

/// Reply texts are short strings: RabbitMQ cuts them at 255 bytes.
const MAX_TEXT: usize = 255;

impl AmqpError {
    pub fn new(kind: ErrorKind, detail: impl fmt::Display) -> Self {
        let mut text = format!("{} - {}", kind.name(), detail);
        if text.len() > MAX_TEXT {
            let mut end = MAX_TEXT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        AmqpError { kind, text, class_id: 0, method_id: 0 }
    }

    /// Names the method being answered, unless one was named already.
    pub fn during(mut self, class_id: u16, method_id: u16) -> Self {
        if self.class_id == 0 && self.method_id == 0 {
            self.class_id = class_id;
            self.method_id = method_id;
        }
        self
    }

    pub fn code(&self) -> u16 {
        self.kind.code()
    }

    /// The same complaint as a connection error, where there is no channel
    /// to close (channel 0, the handshake): soft errors become 501.
    pub fn on_connection(self) -> Self {
        if self.is_hard() {
            return self;
        }
        let detail = self.text.split_once(" - ").map_or(self.text.as_str(), |(_, d)| d);
        Self::frame_error(detail).during(self.class_id, self.method_id)
    }

    pub fn is_hard(&self) -> bool {
        self.kind.is_hard()
    }

    pub fn not_found(detail: impl fmt::Display) -> Self {
        Self::new(ErrorKind::NotFound, detail)
    }
    pub fn precondition_failed(detail: impl fmt::Display) -> Self {
        Self::new(ErrorKind::PreconditionFailed, detail)
    }
    pub fn access_refused(detail: impl fmt::Display) -> Self {
        Self::new(ErrorKind::AccessRefused, detail)
    }
    pub fn resource_locked(detail: impl fmt::Display) -> Self {
        Self::new(ErrorKind::ResourceLocked, detail)
    }
    pub fn not_implemented(detail: impl fmt::Display) -> Self {
        Self::new(ErrorKind::NotImplemented, detail)
    }
    pub fn command_invalid(detail: impl fmt::Display) -> Self {
        Self::new(ErrorKind::CommandInvalid, detail)
    }
    pub fn channel_error(detail: impl fmt::Display) -> Self {
        Self::new(ErrorKind::ChannelError, detail)
    }
    pub fn unexpected_frame(detail: impl fmt::Display) -> Self {
        Self::new(ErrorKind::UnexpectedFrame, detail)
    }
    pub fn frame_error(detail: impl fmt::Display) -> Self {
        Self::new(ErrorKind::FrameError, detail)
    }
    pub fn syntax_error(detail: impl fmt::Display) -> Self {
        Self::new(ErrorKind::SyntaxError, detail)
    }
    pub fn connection_forced(detail: impl fmt::Display) -> Self {
        Self::new(ErrorKind::ConnectionForced, detail)
    }
    pub fn not_allowed(detail: impl fmt::Display) -> Self {
        Self::new(ErrorKind::NotAllowed, detail)
    }
    pub fn internal(detail: impl fmt::Display) -> Self {
        Self::new(ErrorKind::InternalError, detail)
    }
}

impl fmt::Display for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.text)
    }
}

impl std::error::Error for AmqpError {}

pub type Result<T, E = AmqpError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_named_and_bounded() {
        let e = AmqpError::not_found("no queue 'q' in vhost '/'");
        assert_eq!(e.text, "NOT_FOUND - no queue 'q' in vhost '/'");
        assert!(!e.is_hard());
        let long = AmqpError::precondition_failed("é".repeat(300));
        assert!(long.text.len() <= 255);
        assert!(AmqpError::frame_error("x").is_hard());
        assert!(!AmqpError::access_refused("x").is_hard());
    }
}
