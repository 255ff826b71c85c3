//! The bench's one error type.

use std::fmt;

#[derive(Debug)]
pub enum Error {
    /// Socket or file I/O.
    Io(std::io::Error),
    /// The server's bytes do not make sense (or break the client's rules): the
    /// connection cannot go on.
    Protocol(String),
    /// Logon failed.
    Auth(String),
    /// A request was answered with an error status.
    Status { command: u16, status: u32 },
    /// Anything else (setup, a server that would not start, a client that failed).
    Other(String),
}

impl Error {
    pub fn proto(m: impl Into<String>) -> Self {
        Error::Protocol(m.into())
    }
    pub fn auth(m: impl Into<String>) -> Self {
        Error::Auth(m.into())
    }
    pub fn status(command: u16, status: u32) -> Self {
        Error::Status { command, status }
    }
    pub fn other(m: impl Into<String>) -> Self {
        Error::Other(m.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O: {e}"),
            Error::Protocol(m) => write!(f, "protocol: {m}"),
            Error::Auth(m) => write!(f, "logon: {m}"),
            Error::Status { command, status } => {
                write!(
                    f,
                    "command 0x{command:02x} failed with NTSTATUS 0x{status:08x}"
                )
            }
            Error::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<duet_auth::AuthError> for Error {
    fn from(e: duet_auth::AuthError) -> Self {
        Error::Auth(e.to_string())
    }
}
