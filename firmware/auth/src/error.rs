//! The crate's one error type.
//!
//! Owns: the ways an authentication exchange or a cryptographic check can fail.
//! Must never: carry secrets (keys, hashes, passwords) in a variant or its message;
//! a `LogonFailure` names the user only, never why the proof failed.

/// Everything that can go wrong in `duet-auth`.
///
/// The caller maps these to NTSTATUS codes (e.g. `LogonFailure` and `Anonymous` to
/// STATUS_LOGON_FAILURE, `Malformed` to STATUS_INVALID_PARAMETER).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The peer sent bytes that do not parse; the text says which structure.
    #[error("malformed security token: {0}")]
    Malformed(&'static str),
    /// An anonymous (NULL session) logon: empty user name and empty NT response.
    #[error("anonymous logon refused")]
    Anonymous,
    /// Unknown user, wrong password, or a MIC / mechListMIC that does not verify.
    #[error("logon failure for user {user:?}")]
    LogonFailure {
        /// The user name as the client sent it.
        user: String,
    },
    /// Well-formed but not something this server does (NTLMv1, a mechanism other than NTLMSSP, ...).
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// An SMB3 encrypted (transform) message failed to authenticate or decrypt.
    #[error("encrypted message failed its integrity check")]
    Integrity,
    /// A key of the wrong length was handed to a cipher.
    #[error("key is {got} bytes, the cipher needs {expected}")]
    KeyLength {
        /// Length the cipher needs.
        expected: usize,
        /// Length given.
        got: usize,
    },
}
