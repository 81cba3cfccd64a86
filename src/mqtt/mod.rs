//! MQTT (issue 14): the door as a citizen of the building's broker.
//!
//! * [`client`]: the connection in its own threads; the frame loop hands messages to a bounded
//!   queue and never waits for the network; reconnect with back-off; retained availability
//!   with a last will.
//! * [`events`]: topics and JSON payloads, each the image of an audit record (timestamp and
//!   audit `seq`; no embeddings or images; the person only with `publish_person`).
//! * [`discovery`]: Home Assistant MQTT discovery.
//! * [`fleet`]: signed bundles over the broker, imported exactly as from a USB stick.
//! * The daemon's side (commands, publishing audit records) is `hook.rs`, compiled as a child
//!   of [`crate::daemon`] so that the loop's code stays in one place.
//!
//! Commands on `<prefix>/<site>/<door>/set`: `LOCK`/`RELOCK` are always honoured (locking is
//! never a risk); `UNLOCK` only with `[mqtt] allow_remote_unlock = true`, which the
//! configuration accepts only together with broker authentication, and each is audited
//! (`remote_command`) with the door's client id and broker user. MQTT 3.1.1 does not tell a
//! subscriber who published: whoever the broker's ACL lets write the `set` topic can open the
//! door. Retained commands are never honoured.

pub mod client;
pub mod config;
pub mod discovery;
pub mod events;
pub mod fleet;

pub use client::{Inbound, Mqtt, RemoteCommand};
pub use config::MqttConfig;
pub use events::{Msg, Publisher, Topics};
