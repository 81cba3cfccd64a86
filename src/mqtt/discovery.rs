//! Home Assistant MQTT discovery: one device per door with a `lock`, an `event` entity, a
//! sensor for the last recognised person, and binary sensors for the door contact and the
//! camera. Retained under `<discovery_prefix>/<component>/<node>/<object>/config`, published at
//! every connection and again whenever Home Assistant announces `online` on
//! `<discovery_prefix>/status`.

use super::config::MqttConfig;
use super::events::{Msg, Topics, EVENT_TYPES};
use serde_json::{json, Value};

/// `facegate_<site>_<door>` with `-` and `.` replaced (a valid node id and unique_id prefix).
pub fn node_id(cfg: &MqttConfig) -> String {
    format!("facegate_{}_{}", cfg.site, cfg.door).replace(['-', '.'], "_")
}

/// The topic Home Assistant announces itself on.
pub fn status_topic(prefix: &str) -> String {
    format!("{prefix}/status")
}

/// `base` with the keys of `extra` added.
fn with(mut base: Value, extra: Value) -> Value {
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        b.extend(e);
    }
    base
}

/// The retained discovery messages for this door (empty when discovery is off).
pub fn messages(cfg: &MqttConfig) -> Vec<Msg> {
    let Some(prefix) = &cfg.discovery_prefix else {
        return Vec::new();
    };
    let node = node_id(cfg);
    let device = json!({
        "identifiers": [node],
        "name": format!("Door {} ({})", cfg.door, cfg.site),
        "manufacturer": "facegate",
        "model": "face-unlock door",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    let t = Topics::new(cfg);
    entities(&t)
        .into_iter()
        .map(|(component, object, name, v)| {
            let common = json!({
                "name": name,
                "unique_id": format!("{node}_{object}"),
                "availability": [{"topic": t.availability, "payload_available": "online", "payload_not_available": "offline"}],
                "device": device,
            });
            Msg::state(
                &format!("{prefix}/{component}/{node}/{object}/config"),
                with(common, v).to_string(),
            )
        })
        .collect()
}

/// (component, object id, name, entity-specific keys) of each entity.
fn entities(t: &Topics) -> [(&'static str, &'static str, &'static str, Value); 5] {
    [
        (
            "lock",
            "lock",
            "Lock",
            json!({
                "state_topic": t.lock,
                "command_topic": t.set,
                "payload_lock": "LOCK",
                "payload_unlock": "UNLOCK",
                "state_locked": "LOCKED",
                "state_unlocked": "UNLOCKED",
                "state_jammed": "JAMMED",
                "optimistic": false,
                "qos": 1,
            }),
        ),
        (
            "event",
            "access",
            "Access",
            json!({"state_topic": t.event, "event_types": EVENT_TYPES, "qos": 1}),
        ),
        (
            "sensor",
            "last_person",
            "Last recognised person",
            json!({
                "state_topic": t.person,
                "value_template": "{{ value_json.name | default('someone') }}",
                "json_attributes_topic": t.person,
                "icon": "mdi:account-check",
            }),
        ),
        (
            "binary_sensor",
            "contact",
            "Door",
            json!({"state_topic": t.contact, "device_class": "door", "payload_on": "ON", "payload_off": "OFF"}),
        ),
        (
            "binary_sensor",
            "camera",
            "Camera",
            json!({"state_topic": t.camera, "device_class": "connectivity", "payload_on": "ON", "payload_off": "OFF", "entity_category": "diagnostic"}),
        ),
    ]
}
