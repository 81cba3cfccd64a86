//! The daemon's side of MQTT: publishing what it audits, serving commands and the health
//! state. Compiled as `crate::daemon::mqtt_hook` (a child module of the daemon, see
//! `src/daemon.rs`), so it reaches the daemon's audit and door without widening their API.

use super::Daemon;
use crate::audit::Event;
use crate::mqtt::{fleet, Inbound, Mqtt, MqttConfig, Publisher, RemoteCommand};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The daemon's MQTT state (`None` in the daemon when `[mqtt]` is off).
pub(crate) struct MqttHook {
    mqtt: Mqtt,
    publisher: Publisher,
    allow_remote_unlock: bool,
    spool: PathBuf,
    set_topic: String,
}

impl MqttHook {
    /// Starts the client (the broker may be away: it is retried in the background).
    pub(crate) fn start(cfg: &MqttConfig) -> crate::error::Result<MqttHook> {
        let fleet = cfg
            .fleet_enroll
            .then(|| fleet::Fleet::new(cfg.spool_dir.clone(), cfg.max_bundle_bytes));
        let publisher = Publisher::new(cfg);
        Ok(MqttHook {
            mqtt: Mqtt::start(cfg, fleet)?,
            set_topic: publisher.topics.set.clone(),
            publisher,
            allow_remote_unlock: cfg.allow_remote_unlock,
            spool: cfg.spool_dir.clone(),
        })
    }

    pub(crate) fn client(&self) -> &Mqtt {
        &self.mqtt
    }
}

impl Daemon {
    /// Publishes what one audit record says (`seq`: `None` when it could not be written; `at`:
    /// the record's time, when the event happened).
    pub(super) fn mqtt_publish(
        &mut self,
        event: Event,
        fields: &Value,
        seq: Option<u64>,
        at: jiff::Timestamp,
    ) {
        let Some(h) = &mut self.mqtt else { return };
        if matches!(event, Event::EnrollImport | Event::EnrollRejected) {
            if let Some(b) = fields.get("bundle").and_then(Value::as_str) {
                fleet::finished(&h.spool, Path::new(b));
            }
        }
        let gallery = &self.gallery;
        let name_of = |id: &str| gallery.get(id).map(|p| p.name.clone());
        for m in h.publisher.on_audit(event, fields, seq, at, &name_of) {
            h.mqtt.send(m);
        }
    }

    /// Every loop turn: commands and refused bundles from the broker, `door_held_open`, health.
    pub(super) fn poll_mqtt(&mut self, frames: u64) {
        let Some(h) = &mut self.mqtt else { return };
        let inbound = h.mqtt.poll();
        let (seq, hash) = self.audit.head();
        for m in h.publisher.tick(frames, (seq, hash), h.mqtt.dropped()) {
            h.mqtt.send(m);
        }
        for ib in inbound {
            match ib {
                Inbound::Command(cmd) => self.remote_command(cmd),
                Inbound::BundleRefused {
                    payload_sha256,
                    error,
                } => {
                    let bundle = self
                        .mqtt
                        .as_ref()
                        .map(|h| h.publisher.topics.bundle.clone());
                    self.audit(
                        Event::EnrollRejected,
                        json!({"bundle": format!("mqtt:{}", bundle.unwrap_or_default()), "payload_sha256": payload_sha256, "kind": "payload", "error": error}),
                    );
                }
            }
        }
    }

    /// A `LOCK`/`RELOCK` or `UNLOCK` from the broker, audited with the door's client id and
    /// broker user. An unlock needs `allow_remote_unlock` and a durable record first.
    fn remote_command(&mut self, cmd: RemoteCommand) {
        let Some(h) = &self.mqtt else { return };
        let (client_id, user) = h.mqtt.identity();
        let who =
            json!({"via": "mqtt", "client_id": client_id, "username": user, "topic": h.set_topic});
        let allowed = h.allow_remote_unlock;
        let record = |command: &str, result: &str, reason: Option<String>| {
            let mut r = who.clone();
            r["command"] = json!(command);
            r["result"] = json!(result);
            if let Some(reason) = reason {
                r["reason"] = json!(reason);
            }
            r
        };
        match cmd {
            RemoteCommand::Relock => {
                let r = match self.door.lock_now() {
                    Ok(_) => record("relock", "relocked", None),
                    Err(e) => record("relock", "error", Some(e.to_string())),
                };
                log::info!("mqtt: remote relock ({})", r["result"]);
                self.audit(Event::RemoteCommand, r);
            }
            RemoteCommand::Unlock if !allowed => {
                log::warn!("mqtt: remote UNLOCK refused: [mqtt] allow_remote_unlock is false");
                self.audit(
                    Event::RemoteCommand,
                    record(
                        "unlock",
                        "refused",
                        Some("[mqtt] allow_remote_unlock is false".into()),
                    ),
                );
            }
            RemoteCommand::Unlock => {
                if !self.audit(Event::RemoteCommand, record("unlock", "unlocked", None)) {
                    log::error!("ALARM: NOT unlocking on a remote UNLOCK: its record cannot be made durable");
                    return;
                }
                log::info!("mqtt: remote UNLOCK by a client of {}", who["topic"]);
                if let Err(e) = self.door.unlock() {
                    log::error!("remote unlock failed: {e}");
                    self.audit(Event::LockError, json!({ "error": e.to_string() }));
                }
            }
        }
    }

    /// The MQTT client, if `[mqtt]` is on (tests and measurements).
    pub fn mqtt(&self) -> Option<&Mqtt> {
        self.mqtt.as_ref().map(|h| h.client())
    }
}
