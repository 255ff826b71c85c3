//! duet-bench's own SMB 3.1.1 client: pipelined (many requests in flight within the
//! server's credits), signed, NTLMv2 logon. Only what the workloads need.

pub mod codec;
pub mod conn;
pub mod ntlm;

pub use conn::{Client, Target};
