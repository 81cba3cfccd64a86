//! What the door publishes, derived from its audit records: every published event is the
//! image of a record (its `seq` names it), so the broker never says something the log does
//! not. Pure code (no network): [`Publisher::on_audit`] and [`Publisher::tick`] return the
//! messages; the client thread sends them.
//!
//! Topics under `<prefix>/<site>/<door>/` ([`Topics`]):
//!
//! | topic | retained | payload |
//! |---|---|---|
//! | `availability` | yes (and the last will) | `online` / `offline` |
//! | `lock` | yes | `LOCKED` / `UNLOCKED` / `JAMMED` (relay output fault) |
//! | `event` | no | JSON `{event_type, ts, seq, ...}` (types: [`EVENT_TYPES`]) |
//! | `person` | yes | JSON `{person, name, ts, seq}` of the last recognised person (`publish_person`) |
//! | `contact` | yes | `ON` (open) / `OFF` (closed) |
//! | `camera` | yes | `ON` (frames flow) / `OFF` (lost) |
//! | `health` | yes | JSON: fps, camera, encoder, people, gallery version, audit head, MQTT drops |
//! | `enroll` | yes | JSON: the result of the last bundle import (USB or fleet) |
//! | `set` | (subscribed) | `LOCK` / `RELOCK` always; `UNLOCK` only with `allow_remote_unlock` |
//!
//! No embedding, face image or distance vector leaves the board.

use super::config::MqttConfig;
use crate::audit::Event;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// Event types of the `event` topic (and of Home Assistant's event entity).
pub const EVENT_TYPES: [&str; 12] = [
    "recognised",
    "unknown",
    "presentation_attack",
    "denied",
    "camera_lost",
    "camera_restored",
    "enroll_import",
    "door_forced",
    "door_held_open",
    "remote_unlock",
    "remote_unlock_refused",
    "relock",
];

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    /// Retained state (kept by the broker, the latest per topic republished at reconnect)
    /// rather than an event.
    pub retain: bool,
}

impl Msg {
    pub fn state(topic: &str, payload: impl Into<Vec<u8>>) -> Msg {
        Msg {
            topic: topic.to_string(),
            payload: payload.into(),
            retain: true,
        }
    }

    pub fn event(topic: &str, payload: &Value) -> Msg {
        Msg {
            topic: topic.to_string(),
            payload: payload.to_string().into_bytes(),
            retain: false,
        }
    }
}

/// The door's topic names.
#[derive(Debug, Clone)]
pub struct Topics {
    pub availability: String,
    pub lock: String,
    pub event: String,
    pub person: String,
    pub contact: String,
    pub camera: String,
    pub health: String,
    pub enroll: String,
    pub set: String,
    pub bundle: String,
}

impl Topics {
    pub fn new(cfg: &MqttConfig) -> Topics {
        let b = cfg.base();
        let t = |s: &str| format!("{b}/{s}");
        Topics {
            availability: t("availability"),
            lock: t("lock"),
            event: t("event"),
            person: t("person"),
            contact: t("contact"),
            camera: t("camera"),
            health: t("health"),
            enroll: t("enroll"),
            set: t("set"),
            bundle: cfg.bundle_topic(),
        }
    }
}

/// Wall-clock time with microseconds (RFC 3339, UTC), as the audit log writes it.
pub fn now() -> String {
    stamp(jiff::Timestamp::now())
}

fn stamp(t: jiff::Timestamp) -> String {
    format!("{t:.6}")
}

/// The monotonic instant of a wall-clock time in the past (a time in the future: now).
fn instant_of(at: jiff::Timestamp) -> Instant {
    let ago = Duration::try_from(jiff::Timestamp::now().duration_since(at)).unwrap_or_default();
    Instant::now()
        .checked_sub(ago.min(Duration::from_secs(86_400)))
        .unwrap_or_else(Instant::now)
}

/// Turns audit records and the loop's ticks into messages.
pub struct Publisher {
    pub topics: Topics,
    publish_person: bool,
    held_open: Duration,
    health_interval: Duration,
    spool_dir: std::path::PathBuf,
    /// Door contact open since (for `door_held_open`), and whether that was reported.
    open_since: Option<Instant>,
    held_reported: bool,
    camera_ok: bool,
    /// The lock's state as the door records last said (`start` republishes it: a pulse from
    /// the exit button during start-up may still be running when `start` is written).
    lock: &'static str,
    encoder: Option<String>,
    people: Option<u64>,
    gallery_version: Option<u64>,
    last_health: Option<(Instant, u64)>,
    /// The time of the audit record being turned into messages (its `time`: when the event
    /// happened, which for door events during start-up is seconds before it was written).
    record_at: jiff::Timestamp,
}

impl Publisher {
    pub fn new(cfg: &MqttConfig) -> Publisher {
        Publisher {
            topics: Topics::new(cfg),
            publish_person: cfg.publish_person,
            held_open: cfg.held_open,
            health_interval: cfg.health_interval,
            spool_dir: cfg.spool_dir.clone(),
            open_since: None,
            held_reported: false,
            camera_ok: true,
            lock: "LOCKED",
            encoder: None,
            people: None,
            gallery_version: None,
            last_health: None,
            record_at: jiff::Timestamp::now(),
        }
    }

    fn event(&self, kind: &str, seq: Option<u64>, extra: Value) -> Msg {
        let mut v = json!({"event_type": kind, "ts": stamp(self.record_at), "seq": seq});
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        Msg::event(&self.topics.event, &v)
    }

    /// The messages for one audit record (`seq`: its sequence number, `None` when the log could
    /// not be written and the record is queued; `at`: its `time`, when the event happened; the
    /// messages' `ts` and the held-open timer follow it). `name_of` gives an enrolled person's name.
    pub fn on_audit(
        &mut self,
        event: Event,
        fields: &Value,
        seq: Option<u64>,
        at: jiff::Timestamp,
        name_of: &dyn Fn(&str) -> Option<String>,
    ) -> Vec<Msg> {
        self.record_at = at;
        let s = |k: &str| fields.get(k).and_then(Value::as_str).unwrap_or("");
        match event {
            Event::Start => {
                self.encoder = fields
                    .get("encoder_sha256")
                    .and_then(Value::as_str)
                    .map(|h| h.chars().take(12).collect());
                self.people = fields.get("people").and_then(Value::as_u64);
                vec![
                    Msg::state(&self.topics.lock, self.lock),
                    Msg::state(&self.topics.camera, "ON"),
                ]
            }
            Event::Decision => self.decision(fields, seq, name_of),
            Event::CameraLost => {
                self.camera_ok = false;
                vec![
                    Msg::state(&self.topics.camera, "OFF"),
                    self.event("camera_lost", seq, json!({"reason": s("reason")})),
                ]
            }
            Event::CameraRestored => {
                self.camera_ok = true;
                vec![
                    Msg::state(&self.topics.camera, "ON"),
                    self.event("camera_restored", seq, json!({})),
                ]
            }
            Event::Door => self.door(s("event"), fields, seq),
            Event::LockError => {
                self.lock = "JAMMED";
                vec![Msg::state(&self.topics.lock, "JAMMED")]
            }
            Event::EnrollImport | Event::EnrollRejected => self.enroll(event, fields, seq),
            Event::RemoteCommand => {
                let kind = match (s("command"), s("result")) {
                    ("unlock", "unlocked") if seq.is_some() => "remote_unlock",
                    ("unlock", _) => "remote_unlock_refused",
                    _ => "relock",
                };
                vec![self.event(
                    kind,
                    seq,
                    json!({"result": s("result"), "reason": fields.get("reason")}),
                )]
            }
            _ => Vec::new(),
        }
    }

    fn decision(
        &mut self,
        fields: &Value,
        seq: Option<u64>,
        name_of: &dyn Fn(&str) -> Option<String>,
    ) -> Vec<Msg> {
        let s = |k: &str| fields.get(k).and_then(Value::as_str).unwrap_or("");
        if s("decision") == "unlock" && seq.is_some() {
            let id = s("person");
            let who = if self.publish_person {
                json!({"person": id, "name": name_of(id).unwrap_or_else(|| id.to_string())})
            } else {
                json!({})
            };
            let ev = self.event("recognised", seq, who.clone());
            let mut person = who;
            person["ts"] = json!(stamp(self.record_at));
            person["seq"] = json!(seq);
            return vec![ev, Msg::state(&self.topics.person, person.to_string())];
        }
        // a deny, or an unlock refused because its record could not be made durable
        let code = match s("reason_code") {
            "" if s("decision") == "unlock" => "audit_unavailable",
            c => c,
        };
        let kind = match code {
            "unknown_face" => "unknown",
            "presentation_attack" => "presentation_attack",
            _ => "denied",
        };
        vec![self.event(kind, seq, json!({"reason_code": code}))]
    }

    fn door(&mut self, name: &str, fields: &Value, seq: Option<u64>) -> Vec<Msg> {
        let lock = match name {
            "unlocked" => Some("UNLOCKED"),
            "relocked" | "output_recovered" => Some("LOCKED"),
            "output_fault" => Some("JAMMED"),
            _ => None,
        };
        if let Some(state) = lock {
            self.lock = state;
            return vec![Msg::state(&self.topics.lock, state)];
        }
        let t = &self.topics;
        match name {
            "door_opened" => {
                self.open_since = Some(instant_of(self.record_at));
                self.held_reported = false;
                vec![Msg::state(&t.contact, "ON")]
            }
            "forced_open" => {
                self.open_since = Some(instant_of(self.record_at));
                self.held_reported = false;
                vec![
                    Msg::state(&t.contact, "ON"),
                    self.event("door_forced", seq, json!({})),
                ]
            }
            "door_closed" => {
                self.open_since = None;
                vec![Msg::state(&t.contact, "OFF")]
            }
            "contact_at_start" => {
                let open = fields.get("door_open").and_then(Value::as_bool) == Some(true);
                self.open_since = open.then(|| instant_of(self.record_at));
                self.held_reported = false;
                vec![Msg::state(&t.contact, if open { "ON" } else { "OFF" })]
            }
            _ => Vec::new(),
        }
    }

    fn enroll(&mut self, event: Event, fields: &Value, seq: Option<u64>) -> Vec<Msg> {
        let imported = event == Event::EnrollImport;
        let bundle = fields.get("bundle").and_then(Value::as_str).unwrap_or("");
        let source =
            if bundle.starts_with("mqtt:") || Path::new(bundle).starts_with(&self.spool_dir) {
                "mqtt"
            } else {
                "usb"
            };
        let count = |k: &str| fields.get(k).and_then(Value::as_array).map(Vec::len);
        if imported {
            self.gallery_version = fields.get("version").and_then(Value::as_u64);
            self.people = fields.get("people").and_then(Value::as_u64);
        }
        let result = json!({
            "result": if imported { "imported" } else { "rejected" },
            "source": source,
            "version": fields.get("version"),
            "enrolled": count("enrolled"),
            "removed": count("removed"),
            "kind": fields.get("kind"),
            "error": fields.get("error"),
            "manifest_sha256": fields.get("manifest_sha256"),
            "payload_sha256": fields.get("payload_sha256"),
        });
        let ev = self.event("enroll_import", seq, result.clone());
        let mut state = result;
        state["ts"] = json!(stamp(self.record_at));
        state["seq"] = json!(seq);
        vec![ev, Msg::state(&self.topics.enroll, state.to_string())]
    }

    /// Called every loop turn: `door_held_open`, and the health state every
    /// `health_interval` (`frames`: frames seen so far; `head`: the audit head).
    pub fn tick(&mut self, frames: u64, head: (u64, &str), mqtt_dropped: u64) -> Vec<Msg> {
        let mut out = Vec::new();
        if let Some(t) = self.open_since {
            if !self.held_reported && t.elapsed() >= self.held_open {
                self.held_reported = true;
                out.push(self.event(
                    "door_held_open",
                    Some(head.0),
                    json!({"open_s": t.elapsed().as_secs()}),
                ));
            }
        }
        let due = self
            .last_health
            .is_none_or(|(t, _)| t.elapsed() >= self.health_interval);
        if due {
            let fps = match self.last_health {
                Some((t, f)) => (frames.saturating_sub(f)) as f64 / t.elapsed().as_secs_f64(),
                None => 0.0,
            };
            self.last_health = Some((Instant::now(), frames));
            let v = json!({
                "ts": now(),
                "seq": head.0,
                "audit_head": head.1,
                "fps": (fps * 10.0).round() / 10.0,
                "frames": frames,
                "camera": if self.camera_ok { "ok" } else { "lost" },
                "encoder": self.encoder,
                "people": self.people,
                "gallery_version": self.gallery_version,
                "mqtt_dropped": mqtt_dropped,
                "version": env!("CARGO_PKG_VERSION"),
            });
            out.push(Msg::state(&self.topics.health, v.to_string()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publisher(person: bool) -> Publisher {
        let mut c =
            crate::mqtt::MqttConfig::admin("b", None, None, None, "facegate", "hq").unwrap();
        c.door = "front".into();
        c.publish_person = person;
        Publisher::new(&c)
    }

    fn name_of(id: &str) -> Option<String> {
        (id == "alice").then(|| "Alice Martin".to_string())
    }

    fn events(msgs: &[Msg]) -> Vec<Value> {
        msgs.iter()
            .filter(|m| m.topic == "facegate/hq/front/event")
            .map(|m| serde_json::from_slice(&m.payload).unwrap())
            .collect()
    }

    #[test]
    fn decisions_map_to_events_by_reason_code_and_person_only_when_allowed() {
        let unlock = json!({"decision": "unlock", "person": "alice", "distance": 0.3});
        let mut p = publisher(false);
        let out = p.on_audit(
            Event::Decision,
            &unlock,
            Some(7),
            jiff::Timestamp::now(),
            &name_of,
        );
        let e = &events(&out)[0];
        assert_eq!(
            (e["event_type"].as_str(), e["seq"].as_u64()),
            (Some("recognised"), Some(7))
        );
        assert!(e.get("person").is_none() && e.get("name").is_none(), "{e}");
        assert!(!String::from_utf8_lossy(&out[1].payload).contains("alice"));
        let mut p = publisher(true);
        let e = &events(&p.on_audit(
            Event::Decision,
            &unlock,
            Some(7),
            jiff::Timestamp::now(),
            &name_of,
        ))[0];
        assert_eq!(
            (e["person"].as_str(), e["name"].as_str()),
            (Some("alice"), Some("Alice Martin"))
        );
        // an unlock whose record could not be written was refused: not "recognised"
        let e = &events(&p.on_audit(
            Event::Decision,
            &unlock,
            None,
            jiff::Timestamp::now(),
            &name_of,
        ))[0];
        assert_eq!(
            (e["event_type"].as_str(), e["reason_code"].as_str()),
            (Some("denied"), Some("audit_unavailable"))
        );
        for (code, kind) in [
            ("unknown_face", "unknown"),
            ("presentation_attack", "presentation_attack"),
            ("outside_schedule", "denied"),
        ] {
            let deny = json!({"decision": "deny", "reason": "x", "reason_code": code});
            let e = &events(&p.on_audit(
                Event::Decision,
                &deny,
                Some(9),
                jiff::Timestamp::now(),
                &name_of,
            ))[0];
            assert_eq!(e["event_type"], kind, "{code}");
            assert!(EVENT_TYPES.contains(&kind));
        }
    }

    #[test]
    fn door_and_camera_records_drive_the_retained_states() {
        let mut p = publisher(false);
        let state = |msgs: Vec<Msg>, topic: &str| {
            msgs.into_iter()
                .find(|m| m.retain && m.topic.ends_with(topic))
                .map(|m| String::from_utf8(m.payload).unwrap())
        };
        let door = |e: &str| json!({ "event": e });
        let none = |_: &str| None;
        assert_eq!(
            state(
                p.on_audit(
                    Event::Door,
                    &door("unlocked"),
                    Some(1),
                    jiff::Timestamp::now(),
                    &none
                ),
                "/lock"
            )
            .as_deref(),
            Some("UNLOCKED")
        );
        assert_eq!(
            state(
                p.on_audit(
                    Event::Door,
                    &door("relocked"),
                    Some(2),
                    jiff::Timestamp::now(),
                    &none
                ),
                "/lock"
            )
            .as_deref(),
            Some("LOCKED")
        );
        assert_eq!(
            state(
                p.on_audit(
                    Event::Door,
                    &door("output_fault"),
                    Some(3),
                    jiff::Timestamp::now(),
                    &none
                ),
                "/lock"
            )
            .as_deref(),
            Some("JAMMED")
        );
        let forced = p.on_audit(
            Event::Door,
            &door("forced_open"),
            Some(4),
            jiff::Timestamp::now(),
            &none,
        );
        assert_eq!(events(&forced)[0]["event_type"], "door_forced");
        assert_eq!(state(forced, "/contact").as_deref(), Some("ON"));
        let lost = p.on_audit(
            Event::CameraLost,
            &json!({"reason": "unplugged"}),
            Some(5),
            jiff::Timestamp::now(),
            &none,
        );
        assert_eq!(events(&lost)[0]["event_type"], "camera_lost");
        assert_eq!(state(lost, "/camera").as_deref(), Some("OFF"));
        // held open: reported once, after held_open
        p.held_open = Duration::ZERO;
        let held = events(&p.tick(10, (5, "ab"), 0));
        assert_eq!(held[0]["event_type"], "door_held_open");
        assert!(events(&p.tick(10, (5, "ab"), 0)).is_empty());
    }

    /// A door event written late (a contact opened during the daemon's start-up) is published
    /// with the time it happened, and the held-open timer counts from then.
    #[test]
    fn a_late_door_record_keeps_its_time_for_ts_and_the_held_open_timer() {
        let mut p = publisher(false);
        p.held_open = Duration::from_secs(30);
        let none = |_: &str| None;
        let at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(40);
        let forced = p.on_audit(
            Event::Door,
            &json!({"event": "forced_open"}),
            Some(4),
            at,
            &none,
        );
        let ts: jiff::Timestamp = events(&forced)[0]["ts"].as_str().unwrap().parse().unwrap();
        assert!(
            ts.duration_since(at).abs() < jiff::SignedDuration::from_millis(1),
            "{ts} vs {at}"
        );
        let held = events(&p.tick(10, (4, "ab"), 0));
        assert_eq!(held[0]["event_type"], "door_held_open", "{held:?}");
        assert!(held[0]["open_s"].as_u64().unwrap() >= 40, "{held:?}");
        // the same record on time: not held open yet
        let mut p = publisher(false);
        p.held_open = Duration::from_secs(30);
        let now = jiff::Timestamp::now();
        p.on_audit(
            Event::Door,
            &json!({"event": "forced_open"}),
            Some(4),
            now,
            &none,
        );
        assert!(events(&p.tick(10, (4, "ab"), 0))
            .iter()
            .all(|e| e["event_type"] != "door_held_open"));
    }

    /// `start` republishes the lock state the door records last gave: an exit-button pulse
    /// during start-up, still running when `start` is written, is not shown as LOCKED.
    #[test]
    fn start_republishes_the_lock_state_of_the_last_door_record() {
        let mut p = publisher(false);
        let none = |_: &str| None;
        let now = jiff::Timestamp::now;
        let lock_of = |msgs: Vec<Msg>| {
            msgs.into_iter()
                .find(|m| m.retain && m.topic.ends_with("/lock"))
                .map(|m| String::from_utf8(m.payload).unwrap())
        };
        let start = json!({"encoder_sha256": "ab", "people": 1});
        let mut seq = 0;
        // (the door record before `start`, the lock state `start` must publish)
        for (door, want) in [
            (None, "LOCKED"),
            (Some("unlocked"), "UNLOCKED"),
            (Some("relocked"), "LOCKED"),
        ] {
            if let Some(e) = door {
                seq += 1;
                p.on_audit(Event::Door, &json!({ "event": e }), Some(seq), now(), &none);
            }
            seq += 1;
            let got = lock_of(p.on_audit(Event::Start, &start, Some(seq), now(), &none));
            assert_eq!(got.as_deref(), Some(want), "after {door:?}");
        }
    }
}
