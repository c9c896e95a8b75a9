//! The fleet agent: a process that keeps a NATS connection, answers typed
//! commands on `fleet.agent.<id>.cmd.<command>` and publishes heartbeats on
//! `fleet.agent.<id>.heartbeat` (wire types in `fleet-proto`).
//!
//! Modules, in the order a request meets them:
//! - [`config`]: environment variables (all documented there);
//! - [`credentials`]: the [`CredentialSource`] trait, asked on every
//!   (re)connect; [`oidc`]: the client_credentials token source used with
//!   the NATS auth callout;
//! - [`device`]: device mode (ADR 0080): the device's own key in its state
//!   directory, `enroll` and `rotate-key`;
//! - [`connection`]: connect options, capped backoff, connection events;
//! - [`command_server`]: [`CommandServer`], [`CommandError`],
//!   [`CommandServerError`];
//! - [`heartbeat`], [`http`] (`/healthz`, `/readyz`), [`readiness`];
//! - [`agent`]: ties it together and drains on shutdown.

pub mod agent;
pub mod cli;
pub mod command_server;
pub mod config;
pub mod connection;
pub mod credentials;
pub mod device;
pub mod heartbeat;
pub mod http;
pub mod identity;
pub mod logging;
pub mod oidc;
pub mod readiness;

pub use agent::{Agent, AgentError, RunReport, credentials_from_config};
pub use command_server::{CommandError, CommandServer, CommandServerError, ServeReport};
pub use config::{AgentConfig, AuthConfig, ConfigError, LogFormat};
pub use credentials::{
    Anonymous, CredentialError, CredentialSource, Credentials, PasswordSource, Secret, UserPassword,
};
pub use oidc::{OidcClientConfig, OidcError, OidcTokenSource};
pub use readiness::{NotReady, Readiness};
