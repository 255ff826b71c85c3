//! `duet-auth`: authentication and message protection for duet's SMB2/3 server.
//!
//! Owns: the SESSION_SETUP security exchange (SPNEGO wrapping NTLMv2, [`Acceptor`]),
//! the server's SPNEGO hint for the NEGOTIATE response ([`spnego_negotiate_token`]),
//! SMB2/3 key derivation ([`SessionKeys`], [`kdf`]), signing ([`Signer`]), the 3.1.1
//! preauth integrity hash ([`PreauthHash`]) and SMB3 encryption ([`TransformCipher`]).
//! Must never: do I/O, read the clock, draw random numbers (time, challenges and nonces
//! come in as arguments), store credentials (the caller's `lookup` supplies NT hashes),
//! or panic on bytes from the network.

mod acceptor;
mod crypto;
mod der;
mod error;
mod ghash;
pub mod ntlm;
mod rc4;
pub mod spnego;
mod transform;

pub use acceptor::{Acceptor, Authenticated, ServerIdentity, Step};
pub use crypto::{kdf, kdf_256, PreauthHash, SessionKeys, Signer, SigningAlgorithm};
pub use error::AuthError;
pub use ntlm::nt_hash;
pub use spnego::spnego_negotiate_token;
pub use transform::{
    CipherId, TransformCipher, TransformHeader, TRANSFORM_HEADER_LEN, TRANSFORM_PROTOCOL_ID,
};

#[cfg(test)]
mod tests {
    /// The SMB layer shares signers and ciphers between tasks and moves acceptors.
    #[test]
    fn shared_types_are_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<crate::Signer>();
        send_sync::<crate::TransformCipher>();
        send_sync::<crate::Acceptor>();
        send_sync::<crate::PreauthHash>();
        send_sync::<crate::AuthError>();
    }
}
