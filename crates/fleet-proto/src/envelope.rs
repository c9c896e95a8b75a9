//! The versioned request/reply envelope.
//!
//! Request (requester -> agent), on `fleet.agent.<id>.cmd.<command>`:
//! `{"v":1,"args":{...}}`
//!
//! Reply (agent -> requester), on the request's reply subject:
//! `{"v":1,"ok":{...}}` or `{"v":1,"error":{"code":"unknown_command","message":"..."}}`
//!
//! The version is checked before anything else is decoded, so a version
//! mismatch is reported as such rather than as a confusing field error.
//! Unknown fields are ignored (a newer requester may add optional ones).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Version of this wire protocol. Bump it on any incompatible change to
/// subjects, envelopes or payloads.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest request or reply payload either side accepts. Far below the
/// server's default `max_payload` (1 MiB): commands are small, and a bound
/// keeps a misbehaving peer from making the agent parse megabytes.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// A command request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request<A> {
    pub v: u32,
    pub args: A,
}

/// A command reply: the versioned envelope around [`Outcome`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply<T> {
    pub v: u32,
    #[serde(flatten)]
    pub outcome: Outcome<T>,
}

/// What a command produced: its payload, or a typed error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome<T> {
    Ok(T),
    Error(ErrorBody),
}

/// The error half of a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// Human-readable detail; never contains secrets.
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Machine-readable error codes of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The subject names a command the agent does not serve.
    UnknownCommand,
    /// The payload is not JSON, or not the shape the command expects.
    MalformedRequest,
    /// The payload exceeds [`MAX_PAYLOAD_BYTES`].
    PayloadTooLarge,
    /// The request's `v` is not a version the agent speaks.
    UnsupportedVersion,
    /// The command was understood but failed while running.
    CommandFailed,
    /// A code this side does not know (sent by a newer peer). The message
    /// still explains it.
    #[serde(other)]
    Unrecognized,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::MalformedRequest => "malformed_request",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::CommandFailed => "command_failed",
            ErrorCode::Unrecognized => "unrecognized",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why bytes could not be turned into a message (or back).
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("{what} payload is {size} bytes; the maximum is {max}")]
    PayloadTooLarge {
        what: &'static str,
        size: usize,
        max: usize,
    },
    #[error("{what} payload is not valid: {source}")]
    Malformed {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what} has protocol version {got}; this side speaks version {supported}")]
    UnsupportedVersion {
        what: &'static str,
        got: u32,
        supported: u32,
    },
    #[error("could not encode {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl ProtoError {
    /// The reply error code an agent sends back for this decoding failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtoError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            ProtoError::Malformed { .. } => ErrorCode::MalformedRequest,
            ProtoError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            ProtoError::Encode { .. } => ErrorCode::CommandFailed,
        }
    }
}

/// Only the version, read first. `v` is optional here so that a missing
/// version is reported as a malformed payload by the full decode below.
#[derive(Deserialize)]
struct VersionProbe {
    v: Option<u32>,
}

/// Size check, JSON check, version check, then the full decode.
fn decode_versioned<M: DeserializeOwned>(
    what: &'static str,
    payload: &[u8],
) -> Result<M, ProtoError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(ProtoError::PayloadTooLarge {
            what,
            size: payload.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    let probe: VersionProbe =
        serde_json::from_slice(payload).map_err(|source| ProtoError::Malformed { what, source })?;
    if let Some(got) = probe.v
        && got != PROTOCOL_VERSION
    {
        return Err(ProtoError::UnsupportedVersion {
            what,
            got,
            supported: PROTOCOL_VERSION,
        });
    }
    serde_json::from_slice(payload).map_err(|source| ProtoError::Malformed { what, source })
}

fn encode<M: Serialize>(what: &'static str, message: &M) -> Result<Vec<u8>, ProtoError> {
    let bytes =
        serde_json::to_vec(message).map_err(|source| ProtoError::Encode { what, source })?;
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(ProtoError::PayloadTooLarge {
            what,
            size: bytes.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(bytes)
}

/// Encodes a request for the current protocol version.
pub fn encode_request<A: Serialize>(args: &A) -> Result<Vec<u8>, ProtoError> {
    encode(
        "request",
        &Request {
            v: PROTOCOL_VERSION,
            args,
        },
    )
}

/// Decodes a request's arguments (agent side). The error's
/// [`ProtoError::code`] is what the agent replies with.
pub fn decode_request<A: DeserializeOwned>(payload: &[u8]) -> Result<A, ProtoError> {
    decode_versioned::<Request<A>>("request", payload).map(|r| r.args)
}

/// Encodes a reply for the current protocol version (agent side).
pub fn encode_reply<T: Serialize>(outcome: &Outcome<T>) -> Result<Vec<u8>, ProtoError> {
    #[derive(Serialize)]
    struct ReplyRef<'a, T> {
        v: u32,
        #[serde(flatten)]
        outcome: &'a Outcome<T>,
    }
    encode(
        "reply",
        &ReplyRef {
            v: PROTOCOL_VERSION,
            outcome,
        },
    )
}

/// Decodes a reply (requester side). The outer `Result` is about the bytes;
/// the inner one is the agent's answer.
pub fn decode_reply<T: DeserializeOwned>(
    payload: &[u8],
) -> Result<Result<T, ErrorBody>, ProtoError> {
    let reply: Reply<T> = decode_versioned("reply", payload)?;
    Ok(match reply.outcome {
        Outcome::Ok(t) => Ok(t),
        Outcome::Error(e) => Err(e),
    })
}

/// Encodes a heartbeat. Its `v` is set to [`PROTOCOL_VERSION`].
pub fn encode_heartbeat(heartbeat: &crate::Heartbeat) -> Result<Vec<u8>, ProtoError> {
    let mut hb = heartbeat.clone();
    hb.v = PROTOCOL_VERSION;
    encode("heartbeat", &hb)
}

/// Decodes a heartbeat (operator side), checking its version.
pub fn decode_heartbeat(payload: &[u8]) -> Result<crate::Heartbeat, ProtoError> {
    decode_versioned("heartbeat", payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AgentId, Heartbeat, PingArgs, PingReply};
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    fn ping_reply() -> PingReply {
        PingReply {
            agent_id: AgentId::new("agent-0").unwrap(),
            version: "0.1.0".into(),
            uptime_ms: 1234,
            timestamp: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
        }
    }

    #[test]
    fn request_wire_format() {
        let bytes = encode_request(&PingArgs {}).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            json!({"v": 1, "args": {}})
        );
        let args: PingArgs = decode_request(&bytes).unwrap();
        assert_eq!(args, PingArgs {});
    }

    #[test]
    fn request_ignores_unknown_fields() {
        let args: PingArgs =
            decode_request(br#"{"v":1,"args":{"future":true},"trace":"x"}"#).unwrap();
        assert_eq!(args, PingArgs {});
    }

    #[test]
    fn ok_reply_wire_format_and_round_trip() {
        let bytes = encode_reply(&Outcome::Ok(ping_reply())).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            json!({"v": 1, "ok": {
                "agent_id": "agent-0", "version": "0.1.0", "uptime_ms": 1234,
                "timestamp": "2026-01-02T03:04:05Z"
            }})
        );
        assert_eq!(decode_reply::<PingReply>(&bytes).unwrap(), Ok(ping_reply()));
    }

    #[test]
    fn error_reply_wire_format_and_round_trip() {
        let body = ErrorBody::new(ErrorCode::UnknownCommand, "unknown command \"x\"");
        let bytes = encode_reply::<PingReply>(&Outcome::Error(body.clone())).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            json!({"v": 1, "error": {"code": "unknown_command", "message": "unknown command \"x\""}})
        );
        assert_eq!(decode_reply::<PingReply>(&bytes).unwrap(), Err(body));
    }

    #[test]
    fn every_error_code_round_trips() {
        for code in [
            ErrorCode::UnknownCommand,
            ErrorCode::MalformedRequest,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UnsupportedVersion,
            ErrorCode::CommandFailed,
            ErrorCode::Unrecognized,
        ] {
            let s = serde_json::to_string(&code).unwrap();
            assert_eq!(s, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&s).unwrap(), code);
        }
    }

    #[test]
    fn unknown_error_code_from_newer_peer_is_unrecognized() {
        let r = decode_reply::<PingReply>(
            br#"{"v":1,"error":{"code":"rate_limited","message":"slow down"}}"#,
        )
        .unwrap()
        .unwrap_err();
        assert_eq!(r.code, ErrorCode::Unrecognized);
        assert_eq!(r.message, "slow down");
    }

    #[test]
    fn oversized_payload_is_refused_before_parsing() {
        let big = vec![b' '; MAX_PAYLOAD_BYTES + 1];
        let err = decode_request::<PingArgs>(&big).unwrap_err();
        assert!(
            matches!(err, ProtoError::PayloadTooLarge { size, max, .. } if size == MAX_PAYLOAD_BYTES + 1 && max == MAX_PAYLOAD_BYTES)
        );
        assert_eq!(err.code(), ErrorCode::PayloadTooLarge);
        let err = decode_reply::<PingReply>(&big).unwrap_err();
        assert_eq!(err.code(), ErrorCode::PayloadTooLarge);
    }

    #[test]
    fn oversized_encoding_is_refused() {
        #[derive(Serialize)]
        struct Big {
            s: String,
        }
        let err = encode_request(&Big {
            s: "x".repeat(MAX_PAYLOAD_BYTES),
        })
        .unwrap_err();
        assert!(
            matches!(
                err,
                ProtoError::PayloadTooLarge {
                    what: "request",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn malformed_json_is_malformed() {
        for bad in [
            &b""[..],
            b"not json",
            b"{",
            b"[1,2]",
            b"null",
            b"{\"v\":\"1\",\"args\":{}}",
        ] {
            let err = decode_request::<PingArgs>(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    ProtoError::Malformed {
                        what: "request",
                        ..
                    }
                ),
                "{bad:?}: {err}"
            );
            assert_eq!(err.code(), ErrorCode::MalformedRequest);
        }
    }

    #[test]
    fn missing_version_or_args_is_malformed() {
        for bad in [
            &br#"{"args":{}}"#[..],
            br#"{"v":1}"#,
            br#"{"v":1,"args":"x"}"#,
        ] {
            let err = decode_request::<PingArgs>(bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::MalformedRequest, "{bad:?}: {err}");
        }
    }

    #[test]
    fn version_mismatch_is_reported_before_shape() {
        // Version 2 with a body v1 cannot read: the error is about the version.
        let err = decode_request::<PingArgs>(br#"{"v":2,"payload":"whatever"}"#).unwrap_err();
        assert!(
            matches!(
                err,
                ProtoError::UnsupportedVersion {
                    got: 2,
                    supported: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.code(), ErrorCode::UnsupportedVersion);
        assert!(err.to_string().contains("version 2"), "{err}");

        let err = decode_reply::<PingReply>(br#"{"v":0,"ok":{}}"#).unwrap_err();
        assert!(matches!(
            err,
            ProtoError::UnsupportedVersion {
                what: "reply",
                got: 0,
                ..
            }
        ));
    }

    #[test]
    fn reply_with_wrong_payload_shape_is_malformed() {
        let err = decode_reply::<PingReply>(br#"{"v":1,"ok":{"agent_id":"a"}}"#).unwrap_err();
        assert!(
            matches!(err, ProtoError::Malformed { what: "reply", .. }),
            "{err}"
        );
        // An invalid agent id inside a reply is caught by AgentId's deserializer.
        let err = decode_reply::<PingReply>(
            br#"{"v":1,"ok":{"agent_id":"a.b","version":"1","uptime_ms":1,"timestamp":"2026-01-02T03:04:05Z"}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("'.'"), "{err}");
        // Neither ok nor error.
        let err = decode_reply::<PingReply>(br#"{"v":1}"#).unwrap_err();
        assert_eq!(err.code(), ErrorCode::MalformedRequest);
    }

    #[test]
    fn heartbeat_round_trip_sets_and_checks_version() {
        let hb = Heartbeat {
            v: 0, // overwritten by encode
            agent_id: AgentId::new("a1").unwrap(),
            version: "0.1.0".into(),
            seq: 7,
            uptime_ms: 70_000,
            timestamp: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            interval_ms: 10_000,
            labels: [("zone".to_string(), "a".to_string())].into(),
        };
        let bytes = encode_heartbeat(&hb).unwrap();
        let back = decode_heartbeat(&bytes).unwrap();
        assert_eq!(
            back,
            Heartbeat {
                v: PROTOCOL_VERSION,
                ..hb
            }
        );

        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["v"] = json!(9);
        let err = decode_heartbeat(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(matches!(
            err,
            ProtoError::UnsupportedVersion {
                what: "heartbeat",
                got: 9,
                ..
            }
        ));
        let err = decode_heartbeat(b"{}").unwrap_err();
        assert!(matches!(
            err,
            ProtoError::Malformed {
                what: "heartbeat",
                ..
            }
        ));
    }
}
