//! `[mqtt]`: the broker, the door's topic names and what may be published or commanded.
//! Off by default; checked once at load like every other section ([`check`]).

use crate::config::GalleryConfig;
use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[mqtt]` as written (every key documented in config/facegate.toml).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttFile {
    #[serde(default)]
    enabled: bool,
    #[serde(default = "default_host")]
    host: String,
    port: Option<u16>,
    #[serde(default)]
    tls: bool,
    ca_file: Option<PathBuf>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    client_id: Option<String>,
    #[serde(default = "default_prefix")]
    topic_prefix: String,
    site: Option<String>,
    door: Option<String>,
    #[serde(default = "yes")]
    discovery: bool,
    #[serde(default = "default_discovery_prefix")]
    discovery_prefix: String,
    #[serde(default)]
    publish_person: bool,
    #[serde(default = "default_queue")]
    queue: usize,
    #[serde(default = "default_keep_alive")]
    keep_alive_s: u64,
    #[serde(default = "default_reconnect_max")]
    reconnect_max_s: f64,
    #[serde(default = "default_health")]
    health_interval_s: f64,
    #[serde(default = "default_held_open")]
    held_open_s: f64,
    #[serde(default)]
    allow_remote_unlock: bool,
    #[serde(default)]
    fleet_enroll: bool,
    #[serde(default = "default_max_bundle_mb")]
    max_bundle_mb: u64,
    spool_dir: Option<PathBuf>,
}

impl Default for MqttFile {
    fn default() -> Self {
        toml::from_str("").expect("every [mqtt] key has a default")
    }
}

impl MqttFile {
    /// Takes relative paths relative to the configuration file's directory.
    pub fn rebase(&mut self, base: &Path) {
        for p in [
            self.ca_file.as_mut(),
            self.password_file.as_mut(),
            self.spool_dir.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
}

/// How the door reaches the broker.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// Plain TCP: only on a trusted LAN (or loopback); the password crosses in clear text.
    Tcp,
    /// TLS through rustls (ring provider), the broker's certificate checked against `ca_file`.
    Tls { ca_file: PathBuf },
}

/// `[mqtt]`, checked. `None` in [`crate::config::Config::mqtt`] when disabled.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    /// `(username, password file)`: broker authentication.
    pub auth: Option<(String, PathBuf)>,
    pub client_id: String,
    pub topic_prefix: String,
    pub site: String,
    pub door: String,
    /// Home Assistant discovery under `discovery_prefix` (`None`: off).
    pub discovery_prefix: Option<String>,
    /// `recognised` events and the last-person sensor carry the person's id and name.
    pub publish_person: bool,
    /// Events kept while the broker is away (then the oldest are dropped and counted).
    pub queue: usize,
    pub keep_alive: Duration,
    pub reconnect_max: Duration,
    pub health_interval: Duration,
    /// A door contact open this long is reported as `door_held_open`.
    pub held_open: Duration,
    pub allow_remote_unlock: bool,
    /// Import signed bundles published (retained) on `<prefix>/<site>/bundle`.
    pub fleet_enroll: bool,
    pub max_bundle_bytes: usize,
    /// Where a received bundle is unpacked for the enrollment watcher.
    pub spool_dir: PathBuf,
}

fn default_host() -> String {
    "localhost".into()
}
fn default_prefix() -> String {
    "facegate".into()
}
fn default_discovery_prefix() -> String {
    "homeassistant".into()
}
fn yes() -> bool {
    true
}
fn default_queue() -> usize {
    256
}
fn default_keep_alive() -> u64 {
    30
}
fn default_reconnect_max() -> f64 {
    60.0
}
fn default_health() -> f64 {
    60.0
}
fn default_held_open() -> f64 {
    30.0
}
fn default_max_bundle_mb() -> u64 {
    64
}

/// A topic level: not empty, no MQTT wildcard or separator, printable.
fn topic_level(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `site` and `door` (defaults from `[gallery]`), and the topic levels checked.
fn names(m: &MqttFile, gallery: &GalleryConfig) -> std::result::Result<(String, String), String> {
    let bad = |s: String| s;
    let site = m.site.clone().or_else(|| gallery.site.clone()).ok_or_else(|| {
        bad("site is not set: set site = \"NAME\" (the topic level of this building; default: [gallery] site)".into())
    })?;
    let door = m.door.clone().or_else(|| gallery.device_id.clone()).ok_or_else(|| {
        bad("door is not set: set door = \"NAME\" (this door's topic level, unique within the site; default: [gallery] device_id)".into())
    })?;
    for (key, v) in [
        ("site", &site),
        ("door", &door),
        ("topic_prefix", &m.topic_prefix),
        ("discovery_prefix", &m.discovery_prefix),
    ] {
        if !topic_level(v) {
            return Err(bad(format!(
                "{key} = {v:?} must be 1-64 characters of A-Z a-z 0-9 - _ . (one topic level, no / + #)"
            )));
        }
    }
    Ok((site, door))
}

/// The transport and the broker credentials.
fn connection(m: &MqttFile) -> std::result::Result<(Transport, Option<(String, PathBuf)>), String> {
    let bad = |s: String| s;
    let transport = match (m.tls, &m.ca_file) {
        (false, None) => Transport::Tcp,
        (true, Some(ca)) => Transport::Tls {
            ca_file: ca.clone(),
        },
        (true, None) => return Err(bad("tls = true needs ca_file = \"FILE\" (the PEM certificate of the CA that signed the broker's certificate)".into())),
        (false, Some(_)) => return Err(bad("ca_file is set but tls = false: set tls = true to use it, or remove ca_file".into())),
    };
    let auth = match (&m.username, &m.password_file) {
        (Some(u), Some(p)) if !u.is_empty() => Some((u.clone(), p.clone())),
        (None, None) => None,
        _ => return Err(bad("broker authentication needs both username = \"NAME\" and password_file = \"FILE\" (a file holding only the password, mode 0600)".into())),
    };
    Ok((transport, auth))
}

/// The numbers, each within its range.
fn numbers(m: &MqttFile) -> std::result::Result<(), String> {
    let bad = |s: String| s;
    let ranges = [
        ("reconnect_max_s", m.reconnect_max_s, 1.0, 3600.0),
        ("health_interval_s", m.health_interval_s, 1.0, 86_400.0),
        ("held_open_s", m.held_open_s, 1.0, 86_400.0),
    ];
    for (key, v, lo, hi) in ranges {
        if !(v.is_finite() && (lo..=hi).contains(&v)) {
            return Err(bad(format!(
                "{key} = {v} must be a number between {lo} and {hi} s"
            )));
        }
    }
    if !(1..=100_000).contains(&m.queue) {
        return Err(bad(format!(
            "queue = {} must be between 1 and 100000 events",
            m.queue
        )));
    }
    if !(5..=3600).contains(&m.keep_alive_s) {
        return Err(bad(format!(
            "keep_alive_s = {} must be between 5 and 3600",
            m.keep_alive_s
        )));
    }
    if !(1..=256).contains(&m.max_bundle_mb) {
        return Err(bad(format!(
            "max_bundle_mb = {} must be between 1 and 256",
            m.max_bundle_mb
        )));
    }
    Ok(())
}

/// Checks `[mqtt]`; `Ok(None)` when it is absent or `enabled = false`.
pub fn check(
    m: MqttFile,
    gallery: &GalleryConfig,
    audit_path: &Path,
    path: &Path,
) -> Result<Option<MqttConfig>> {
    let bad = |reason: String| Error::Invalid(format!("{}: [mqtt] {reason}", path.display()));
    if !m.enabled {
        return Ok(None);
    }
    let (site, door) = names(&m, gallery).map_err(bad)?;
    if m.host.trim().is_empty() {
        return Err(bad(
            "host is empty: set host = \"BROKER\" (name or address)".into(),
        ));
    }
    let (transport, auth) = connection(&m).map_err(bad)?;
    if m.allow_remote_unlock && auth.is_none() {
        return Err(bad("allow_remote_unlock = true needs broker authentication: set username and password_file (and give only trusted users write access to this door's set topic in the broker's ACL), or set allow_remote_unlock = false".into()));
    }
    if m.allow_remote_unlock && transport == Transport::Tcp {
        log::warn!(
            "[mqtt] allow_remote_unlock over plain TCP: the password and the UNLOCK command cross the network in clear text; use tls = true outside a trusted LAN"
        );
    }
    if m.fleet_enroll && (gallery.store.is_none() || gallery.admin_keys.is_empty()) {
        return Err(bad("fleet_enroll = true needs [gallery] store and admin_keys (bundles from the broker are verified and imported exactly like a USB stick's)".into()));
    }
    numbers(&m).map_err(bad)?;
    let client_id = m
        .client_id
        .clone()
        .unwrap_or_else(|| format!("facegate-{site}-{door}"));
    if client_id.is_empty() || client_id.len() > 64 {
        return Err(bad(format!(
            "client_id {client_id:?} must be 1-64 characters"
        )));
    }
    let spool_dir = m.spool_dir.clone().unwrap_or_else(|| {
        audit_path
            .parent()
            .unwrap_or(Path::new("."))
            .join("mqtt-bundles")
    });
    Ok(Some(MqttConfig {
        port: m.port.unwrap_or(if m.tls { 8883 } else { 1883 }),
        host: m.host,
        transport,
        auth,
        client_id,
        topic_prefix: m.topic_prefix,
        site,
        door,
        discovery_prefix: m.discovery.then_some(m.discovery_prefix),
        publish_person: m.publish_person,
        queue: m.queue,
        keep_alive: Duration::from_secs(m.keep_alive_s),
        reconnect_max: Duration::from_secs_f64(m.reconnect_max_s),
        health_interval: Duration::from_secs_f64(m.health_interval_s),
        held_open: Duration::from_secs_f64(m.held_open_s),
        allow_remote_unlock: m.allow_remote_unlock,
        fleet_enroll: m.fleet_enroll,
        max_bundle_bytes: (m.max_bundle_mb as usize) << 20,
        spool_dir,
    }))
}

impl MqttConfig {
    /// `<prefix>/<site>/<door>`: every topic of this door starts here.
    pub fn base(&self) -> String {
        format!("{}/{}/{}", self.topic_prefix, self.site, self.door)
    }

    /// `<prefix>/<site>/bundle`: the site's retained enrollment bundle.
    pub fn bundle_topic(&self) -> String {
        format!("{}/{}/bundle", self.topic_prefix, self.site)
    }

    /// The broker password, read from `password_file` (trailing newline removed).
    pub fn password(&self) -> Result<Option<(String, String)>> {
        let Some((user, file)) = &self.auth else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(file).map_err(|e| {
            Error::Invalid(format!(
                "[mqtt] password_file {}: {e}; write the broker password there (mode 0600, readable by the service user)",
                file.display()
            ))
        })?;
        Ok(Some((
            user.clone(),
            text.trim_end_matches(['\n', '\r']).to_string(),
        )))
    }
}

impl MqttConfig {
    /// The broker settings of an admin tool (`facegate bundle publish`): only the connection
    /// and the site's topic; the rest keeps its defaults.
    pub fn admin(
        host: &str,
        port: Option<u16>,
        ca_file: Option<PathBuf>,
        auth: Option<(String, PathBuf)>,
        topic_prefix: &str,
        site: &str,
    ) -> Result<MqttConfig> {
        let file = MqttFile {
            enabled: true,
            host: host.to_string(),
            port,
            tls: ca_file.is_some(),
            ca_file,
            username: auth.as_ref().map(|a| a.0.clone()),
            password_file: auth.map(|a| a.1),
            topic_prefix: topic_prefix.to_string(),
            site: Some(site.to_string()),
            door: Some("admin".into()),
            ..MqttFile::default()
        };
        let gallery: GalleryConfig = toml::from_str("").expect("gallery keys have defaults");
        check(
            file,
            &gallery,
            Path::new("audit.jsonl"),
            Path::new("command line"),
        )
        .map(|c| c.expect("enabled"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(mqtt: &str) -> std::result::Result<Option<MqttConfig>, String> {
        let text = format!(
            "[camera]\nsource = \"replay\"\nreplay_dir = \"f\"\n[gallery]\nphotos_dir = \"staff\"\n\
             site = \"hq\"\ndevice_id = \"front\"\n[lock]\nbackend = \"simulated\"\n\
             safe_state = \"locked\"\n[audit]\npath = \"/var/lib/facegate/audit.jsonl\"\n{mqtt}"
        );
        crate::config::Config::parse(&text, Path::new("/etc/facegate/facegate.toml"))
            .map(|c| c.mqtt)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn off_by_default_and_defaults_follow_the_gallery() {
        assert!(load("").unwrap().is_none());
        assert!(load("[mqtt]\nhost = \"broker\"\n").unwrap().is_none());
        let c = load("[mqtt]\nenabled = true\n").unwrap().unwrap();
        assert_eq!((c.site.as_str(), c.door.as_str()), ("hq", "front"));
        assert_eq!(c.base(), "facegate/hq/front");
        assert_eq!(c.bundle_topic(), "facegate/hq/bundle");
        assert_eq!((c.port, &c.transport), (1883, &Transport::Tcp));
        assert_eq!(c.client_id, "facegate-hq-front");
        assert_eq!(c.spool_dir, Path::new("/var/lib/facegate/mqtt-bundles"));
        assert!(!c.allow_remote_unlock && !c.publish_person && !c.fleet_enroll);
        let c = load("[mqtt]\nenabled = true\ntls = true\nca_file = \"ca.pem\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(c.port, 8883);
        assert_eq!(
            c.transport,
            Transport::Tls {
                ca_file: "/etc/facegate/ca.pem".into()
            }
        );
    }

    #[test]
    fn bad_values_name_the_key_and_the_fix() {
        for (mqtt, needles) in [
            (
                "allow_remote_unlock = true",
                &["allow_remote_unlock", "username and password_file"][..],
            ),
            ("username = \"u\"", &["username", "password_file"]),
            ("tls = true", &["ca_file"]),
            ("ca_file = \"x.pem\"", &["tls = true"]),
            ("site = \"a/b\"", &["site", "one topic level"]),
            ("door = \"#\"", &["door"]),
            ("queue = 0", &["queue"]),
            ("reconnect_max_s = nan", &["reconnect_max_s"]),
            (
                "fleet_enroll = true",
                &["fleet_enroll", "store", "admin_keys"],
            ),
            ("max_bundle_mb = 0", &["max_bundle_mb"]),
            ("unknown_key = 1", &["unknown_key"]),
        ] {
            let e = load(&format!("[mqtt]\nenabled = true\n{mqtt}\n")).expect_err(mqtt);
            for n in needles {
                assert!(e.contains(n), "{mqtt}: {e:?} does not name {n:?}");
            }
        }
        let ok = load("[mqtt]\nenabled = true\nusername = \"u\"\npassword_file = \"p\"\nallow_remote_unlock = true\n");
        assert!(ok.unwrap().unwrap().allow_remote_unlock);
    }

    /// config/facegate.toml documents every `[mqtt]` key, and its section loads.
    #[test]
    fn the_shipped_config_documents_every_key() {
        let text = include_str!("../../config/facegate.toml");
        let section = &text[text
            .find("\n[mqtt]")
            .expect("[mqtt] in config/facegate.toml")..];
        let keys = [
            "enabled",
            "host",
            "port",
            "tls",
            "ca_file",
            "username",
            "password_file",
            "client_id",
            "topic_prefix",
            "site",
            "door",
            "discovery",
            "discovery_prefix",
            "publish_person",
            "queue",
            "keep_alive_s",
            "reconnect_max_s",
            "health_interval_s",
            "held_open_s",
            "allow_remote_unlock",
            "fleet_enroll",
            "max_bundle_mb",
            "spool_dir",
        ];
        for k in keys {
            assert!(
                section.contains(&format!("\n{k} = ")) || section.contains(&format!("# {k} = ")),
                "{k} undocumented"
            );
        }
        // the list above is every field: a file with all of them parses
        let all: String = keys.iter().map(|k| format!("{k} = 0\n")).collect();
        let e = toml::from_str::<MqttFile>(&all).unwrap_err().to_string();
        assert!(!e.contains("unknown field"), "{e}");
    }
}
