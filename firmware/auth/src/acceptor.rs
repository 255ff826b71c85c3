//! The server side of one SMB2 SESSION_SETUP authentication exchange: SPNEGO
//! (RFC 4178) wrapping NTLMSSP, or bare NTLMSSP answered in kind.
//!
//! Owns: the exchange's state between SESSION_SETUP round trips, the choice of answer
//! (NegTokenResp accept-incomplete / request-mic / accept-completed), and the
//! mechListMIC check and answer.
//! Must never: look up users itself (the caller's `lookup` does), read the clock or
//! draw random numbers (challenge and time come in through `new`), or carry on after a
//! failure: once `step` has returned an error or `Done`, every later call fails.

use crate::ntlm::{self, Direction, NegotiateMessage, SessionSecurity, NTLMSSP_SIGNATURE};
use crate::spnego::{NegState, NegTokenResp, NegotiationToken, OID_NTLMSSP};
use crate::AuthError;

/// Names the server announces in its CHALLENGE TargetName / TargetInfo.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerIdentity {
    pub netbios_name: String,
    pub netbios_domain: String,
    pub dns_name: String,
    pub dns_domain: String,
}

/// What one `step` produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this token back (SESSION_SETUP response with STATUS_MORE_PROCESSING_REQUIRED).
    Continue(Vec<u8>),
    /// The client is authenticated.
    Done(Authenticated),
}

/// A successful logon.
#[derive(Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub user: String,
    pub domain: String,
    pub workstation: String,
    /// ExportedSessionKey: the SMB2 Session.SessionKey (MS-SMB2 3.3.5.5.3).
    pub session_key: [u8; 16],
    /// Final token for the SESSION_SETUP success response: SPNEGO accept-completed
    /// (with the server's mechListMIC when the client sent one), empty in bare NTLMSSP.
    pub token: Vec<u8>,
}

impl std::fmt::Debug for Authenticated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticated")
            .field("user", &self.user)
            .field("domain", &self.domain)
            .field("workstation", &self.workstation)
            .field("session_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// How the client wraps its NTLMSSP tokens; the server answers the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Framing {
    Raw,
    Spnego {
        /// The client's MechTypeList DER, as received: what mechListMIC covers.
        mech_types_der: Vec<u8>,
        /// NTLMSSP was not the client's first choice, so RFC 4178 5 makes the
        /// mechListMIC exchange mandatory.
        mic_required: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Nothing received yet.
    Initial,
    /// SPNEGO chose NTLMSSP without an optimistic token; the NEGOTIATE comes next.
    AwaitNegotiate { framing: Framing },
    /// CHALLENGE sent; the AUTHENTICATE comes next.
    AwaitAuthenticate {
        framing: Framing,
        negotiate: Vec<u8>,
        challenge: Vec<u8>,
    },
    /// Done or failed.
    Finished,
}

/// Server side of one SESSION_SETUP authentication exchange.
pub struct Acceptor {
    identity: ServerIdentity,
    server_challenge: [u8; 8],
    now_filetime: u64,
    /// Test hook: a CHALLENGE_MESSAGE to send instead of building one.
    fixed_challenge: Option<Vec<u8>>,
    state: State,
}

impl Acceptor {
    /// `server_challenge` must be 8 fresh random bytes; `now_filetime` is the current
    /// time as a FILETIME (100 ns since 1601), sent as MsvAvTimestamp.
    pub fn new(identity: ServerIdentity, server_challenge: [u8; 8], now_filetime: u64) -> Self {
        Self {
            identity,
            server_challenge,
            now_filetime,
            fixed_challenge: None,
            state: State::Initial,
        }
    }

    /// An acceptor that answers the NEGOTIATE with `challenge_message` as given, instead
    /// of building its own: for replaying captured exchanges in tests.
    #[doc(hidden)]
    pub fn with_challenge_message(challenge_message: Vec<u8>) -> Result<Self, AuthError> {
        let chal = ntlm::ChallengeMessage::parse(&challenge_message)?;
        let mut acceptor = Self::new(ServerIdentity::default(), chal.server_challenge, 0);
        acceptor.fixed_challenge = Some(challenge_message);
        Ok(acceptor)
    }

    /// Feeds the client's security buffer. `lookup(user, domain)` returns the NT hash of
    /// that user or None. Any error ends the exchange.
    pub fn step(
        &mut self,
        token: &[u8],
        lookup: &mut dyn FnMut(&str, &str) -> Option<[u8; 16]>,
    ) -> Result<Step, AuthError> {
        let state = std::mem::replace(&mut self.state, State::Finished);
        let (next, step) = self.advance(state, token, lookup)?;
        self.state = next;
        Ok(step)
    }

    fn advance(
        &self,
        state: State,
        token: &[u8],
        lookup: &mut dyn FnMut(&str, &str) -> Option<[u8; 16]>,
    ) -> Result<(State, Step), AuthError> {
        match state {
            State::Initial if token.starts_with(NTLMSSP_SIGNATURE) => {
                let (next, challenge) = self.answer_negotiate(Framing::Raw, token)?;
                Ok((next, Step::Continue(challenge)))
            }
            State::Initial => {
                let init = match NegotiationToken::parse(token)? {
                    NegotiationToken::Init(init) => init,
                    NegotiationToken::Resp(_) => {
                        return Err(AuthError::Malformed(
                            "SPNEGO: exchange must start with NegTokenInit",
                        ))
                    }
                };
                if !init.mech_types.contains(&OID_NTLMSSP) {
                    return Err(AuthError::Unsupported("client offers no NTLMSSP mechanism"));
                }
                let preferred = init.mech_types.first() == Some(&OID_NTLMSSP);
                let framing = Framing::Spnego {
                    mech_types_der: init.mech_types_der.to_vec(),
                    mic_required: !preferred,
                };
                match init.mech_token.filter(|_| preferred) {
                    Some(negotiate) => {
                        let (next, challenge) = self.answer_negotiate(framing, negotiate)?;
                        let resp = NegTokenResp {
                            neg_state: Some(NegState::AcceptIncomplete),
                            supported_mech: Some(OID_NTLMSSP),
                            response_token: Some(&challenge),
                            mech_list_mic: None,
                        };
                        Ok((next, Step::Continue(resp.encode())))
                    }
                    None => {
                        // No optimistic token for NTLMSSP: name it and ask for its NEGOTIATE.
                        let resp = NegTokenResp {
                            neg_state: Some(if preferred {
                                NegState::AcceptIncomplete
                            } else {
                                NegState::RequestMic
                            }),
                            supported_mech: Some(OID_NTLMSSP),
                            response_token: None,
                            mech_list_mic: None,
                        };
                        Ok((
                            State::AwaitNegotiate { framing },
                            Step::Continue(resp.encode()),
                        ))
                    }
                }
            }
            State::AwaitNegotiate { framing } => {
                let resp = client_resp(token)?;
                let negotiate = resp.response_token.ok_or(AuthError::Malformed(
                    "SPNEGO: NegTokenResp without the NTLMSSP NEGOTIATE",
                ))?;
                let (next, challenge) = self.answer_negotiate(framing, negotiate)?;
                let resp = NegTokenResp {
                    neg_state: Some(NegState::AcceptIncomplete),
                    supported_mech: None,
                    response_token: Some(&challenge),
                    mech_list_mic: None,
                };
                Ok((next, Step::Continue(resp.encode())))
            }
            State::AwaitAuthenticate {
                framing: Framing::Raw,
                negotiate,
                challenge,
            } => {
                let logon = ntlm::verify_authenticate(&negotiate, &challenge, token, lookup)?;
                Ok((
                    State::Finished,
                    Step::Done(authenticated(logon, Vec::new())),
                ))
            }
            State::AwaitAuthenticate {
                framing:
                    Framing::Spnego {
                        mech_types_der,
                        mic_required,
                    },
                negotiate,
                challenge,
            } => {
                let resp = client_resp(token)?;
                let authenticate = resp.response_token.ok_or(AuthError::Malformed(
                    "SPNEGO: NegTokenResp without the NTLMSSP AUTHENTICATE",
                ))?;
                let logon =
                    ntlm::verify_authenticate(&negotiate, &challenge, authenticate, lookup)?;
                let server_mic = match resp.mech_list_mic {
                    Some(client_mic) => {
                        // RFC 4178 5: the MIC covers the initiator's mechTypes as sent.
                        let mut c2s = SessionSecurity::new(
                            &logon.exported_session_key,
                            logon.negotiate_flags,
                            Direction::ClientToServer,
                        )?;
                        if !c2s.verify(&mech_types_der, client_mic) {
                            return Err(AuthError::LogonFailure { user: logon.user });
                        }
                        let mut s2c = SessionSecurity::new(
                            &logon.exported_session_key,
                            logon.negotiate_flags,
                            Direction::ServerToClient,
                        )?;
                        Some(s2c.sign(&mech_types_der))
                    }
                    None if mic_required => {
                        return Err(AuthError::LogonFailure { user: logon.user })
                    }
                    None => None,
                };
                let done = NegTokenResp {
                    neg_state: Some(NegState::AcceptCompleted),
                    supported_mech: None,
                    response_token: None,
                    mech_list_mic: server_mic.as_ref().map(|m| &m[..]),
                };
                Ok((
                    State::Finished,
                    Step::Done(authenticated(logon, done.encode())),
                ))
            }
            State::Finished => Err(AuthError::Malformed(
                "authentication exchange already finished",
            )),
        }
    }

    /// Parses a NEGOTIATE_MESSAGE and produces the CHALLENGE_MESSAGE for it.
    fn answer_negotiate(
        &self,
        framing: Framing,
        negotiate: &[u8],
    ) -> Result<(State, Vec<u8>), AuthError> {
        let neg = NegotiateMessage::parse(negotiate)?;
        let challenge = match &self.fixed_challenge {
            Some(c) => c.clone(),
            None => ntlm::build_challenge(
                neg.negotiate_flags,
                &self.identity,
                &self.server_challenge,
                self.now_filetime,
            ),
        };
        let next = State::AwaitAuthenticate {
            framing,
            negotiate: negotiate.to_vec(),
            challenge: challenge.clone(),
        };
        Ok((next, challenge))
    }
}

/// A client NegTokenResp that has not given up.
fn client_resp(token: &[u8]) -> Result<NegTokenResp<'_>, AuthError> {
    match NegotiationToken::parse(token)? {
        NegotiationToken::Resp(r) if r.neg_state == Some(NegState::Reject) => {
            Err(AuthError::Unsupported("client rejected the negotiation"))
        }
        NegotiationToken::Resp(r) => Ok(r),
        NegotiationToken::Init(_) => Err(AuthError::Malformed(
            "SPNEGO: NegTokenInit in the middle of an exchange",
        )),
    }
}

fn authenticated(logon: ntlm::VerifiedLogon, token: Vec<u8>) -> Authenticated {
    Authenticated {
        user: logon.user,
        domain: logon.domain,
        workstation: logon.workstation,
        session_key: logon.exported_session_key,
        token,
    }
}
