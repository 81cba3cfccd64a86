//! MQTT against a real broker (issue 14): Debian's `mosquitto`, started here on a free
//! loopback port with a password file in a temporary folder, and a real client (rumqttc) on
//! the other side. Without the broker binary the tests are SKIPPED loudly, unless
//! `FACEGATE_REQUIRE_MQTT` is set (.ci/run sets it): then they fail.

use crate::common::{self, face, fixture};
use facegate::config::Config;
use facegate::daemon::Daemon;
use facegate::door::output::sim::{SimulatedOutput, TransitionLog};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const DOOR_PASS: &str = "door-secret";
const ADMIN_PASS: &str = "admin-secret";
const BASE: &str = "facegate/hq/front";

/// The broker binary: in PATH or the sbin folders (Debian: /usr/sbin/mosquitto), as
/// tools/setup.sh --detect mosquitto looks for it.
fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// A mosquitto on 127.0.0.1:`port` with users `door` and `admin` (password file), no
/// anonymous access, persistence in its folder (sessions survive a restart).
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Broker {
    /// `None` (with a loud message) only when mosquitto is missing and FACEGATE_REQUIRE_MQTT
    /// is unset.
    pub fn start() -> Option<Broker> {
        let Some(bin) = find("mosquitto") else {
            if std::env::var_os("FACEGATE_REQUIRE_MQTT").is_some() {
                panic!("FACEGATE_REQUIRE_MQTT is set but the mosquitto broker is not installed: run tools/setup.sh");
            }
            eprintln!("\n!!!!!!!!!! SKIPPED: the MQTT tests need the mosquitto broker (tools/setup.sh installs it; FACEGATE_REQUIRE_MQTT=1 makes this a failure) !!!!!!!!!!\n");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        let tool = find("mosquitto_passwd").expect("mosquitto_passwd (package mosquitto)");
        for (i, (user, pass)) in [("door", DOOR_PASS), ("admin", ADMIN_PASS)]
            .iter()
            .enumerate()
        {
            let mut c = Command::new(&tool);
            c.arg("-b");
            if i == 0 {
                c.arg("-c");
            }
            let st = c.arg(&passwd).args([user, pass]).status().unwrap();
            assert!(st.success(), "mosquitto_passwd failed");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            dir.path().join("mosquitto.conf"),
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
                 persistence true\npersistence_location {}/\nlog_dest stderr\n\
                 # started as root, mosquitto would switch to user mosquitto, which cannot read\n\
                 # this private folder (the TLS key, the persistence file); as another user this\n\
                 # line changes nothing\nuser root\n",
                passwd.display(),
                dir.path().display()
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("door.password"), format!("{DOOR_PASS}\n")).unwrap();
        std::fs::write(dir.path().join("admin.password"), ADMIN_PASS).unwrap();
        let mut b = Broker {
            child: None,
            port,
            dir,
            bin,
        };
        b.spawn();
        Some(b)
    }

    fn spawn(&mut self) {
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("broker.log")).unwrap())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "mosquitto did not listen on {}: {}",
                self.port,
                std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM (the broker saves its sessions) and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn password_file(&self, user: &str) -> PathBuf {
        self.dir.path().join(format!("{user}.password"))
    }

    /// The `[mqtt]` section of a door `front` of site `hq` on this broker, as user `door`.
    pub fn section(&self, extra: &str) -> String {
        format!(
            "[mqtt]\nenabled = true\nhost = \"127.0.0.1\"\nport = {}\nusername = \"door\"\n\
             password_file = \"{}\"\nsite = \"hq\"\ndoor = \"front\"\nkeep_alive_s = 5\n\
             reconnect_max_s = 1\nhealth_interval_s = 1\n{extra}\n",
            self.port,
            self.password_file("door").display()
        )
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One received message.
#[derive(Debug, Clone)]
pub struct Rx {
    pub topic: String,
    pub payload: String,
    pub retain: bool,
    pub at: SystemTime,
}

impl Rx {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.payload).unwrap_or(Value::Null)
    }
}

/// A real client: subscribes (QoS 1) and records everything it receives.
pub struct Sub {
    pub client: Client,
    msgs: Arc<Mutex<Vec<Rx>>>,
    stop: Arc<AtomicBool>,
}

impl Sub {
    /// As `admin`; `persistent`: a session the broker keeps across reconnects and restarts.
    pub fn new(b: &Broker, id: &str, topics: &[&str], persistent: bool) -> Sub {
        let mut o = MqttOptions::new(id, "127.0.0.1", b.port);
        o.set_credentials("admin", ADMIN_PASS)
            .set_clean_session(!persistent)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(64 << 20, 64 << 20);
        let (client, mut conn) = Client::new(o, 64);
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let subscribed = Arc::new(AtomicBool::new(false));
        let (m2, s2, sub2, c2) = (
            msgs.clone(),
            stop.clone(),
            subscribed.clone(),
            client.clone(),
        );
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                match conn.recv_timeout(Duration::from_millis(200)) {
                    Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                        for t in &topics {
                            let _ = c2.try_subscribe(t.clone(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                        sub2.store(true, Ordering::Relaxed)
                    }
                    Ok(Ok(Event::Incoming(Packet::Publish(p)))) => m2.lock().unwrap().push(Rx {
                        topic: p.topic.clone(),
                        payload: String::from_utf8_lossy(&p.payload).to_string(),
                        retain: p.retain,
                        at: SystemTime::now(),
                    }),
                    Ok(Err(_)) => std::thread::sleep(Duration::from_millis(100)),
                    Err(rumqttc::RecvTimeoutError::Disconnected) => return,
                    _ => {}
                }
            }
        });
        let t0 = Instant::now();
        while !subscribed.load(Ordering::Relaxed) {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "subscriber {id} not subscribed"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(100)); // every SubAck
        Sub { client, msgs, stop }
    }

    pub fn all(&self) -> Vec<Rx> {
        self.msgs.lock().unwrap().clone()
    }

    pub fn on(&self, topic: &str) -> Vec<Rx> {
        self.all()
            .into_iter()
            .filter(|m| m.topic == topic)
            .collect()
    }

    /// Events of `BASE/event` with this `event_type`.
    pub fn events(&self, kind: &str) -> Vec<Value> {
        self.on(&format!("{BASE}/event"))
            .iter()
            .map(Rx::json)
            .filter(|v| v["event_type"] == kind)
            .collect()
    }

    pub fn wait(&self, what: &str, timeout: Duration, f: impl Fn(&Sub) -> bool) {
        let t0 = Instant::now();
        while !f(self) {
            assert!(
                t0.elapsed() < timeout,
                "timed out waiting for {what}; received: {:#?}",
                self.all()
                    .iter()
                    .map(|m| (&m.topic, &m.payload))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn publish(&self, topic: &str, payload: &[u8], retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.to_vec())
            .unwrap();
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
    }
}

/// A door configuration (files in `dir`) on the recording, with `mqtt` and `extra` sections.
fn door_config(dir: &Path, people: &str, mqtt: &str, extra: &str) -> PathBuf {
    let text = format!(
        "[camera]\nsource = \"replay\"\nreplay_dir = \"{clip}\"\nreplay_realtime = false\n\
         stall_timeout_s = 600\n\n[models]\ndetector = \"short_range\"\n\n[gallery]\n{people}\n\
         [policy]\nthreshold = 0.47\n\n[lock]\nbackend = \"simulated\"\nsafe_state = \"locked\"\n\
         unlock_ms = 300\n\n[audit]\npath = \"audit.jsonl\"\n\n[daemon]\nwatchdog = false\n\n{mqtt}\n{extra}",
        clip = fixture("clip/hamilton").display()
    );
    let path = dir.join("facegate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn lmm() -> String {
    format!(
        "[[gallery.person]]\nid = \"lmm\"\nname = \"Lin-Manuel Miranda\"\nphotos = [\"{}\"]\n",
        face("lin-manuel-miranda.png").display()
    )
}

/// The audit records of `dir/audit.jsonl`.
fn audit(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A camera that shows nothing (the loop keeps turning).
struct Idle;

impl facegate::camera::FrameSource for Idle {
    fn next_frame(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<facegate::camera::Frame>, facegate::camera::CameraError> {
        std::thread::sleep(timeout.min(Duration::from_millis(20)));
        Ok(None)
    }
    fn describe(&self) -> String {
        "idle".into()
    }
}

fn idle_daemon(cfg: Config) -> (Daemon, TransitionLog) {
    let log = TransitionLog::new();
    let out = SimulatedOutput::with_log("test relay", log.clone());
    let opener: facegate::camera::supervisor::Opener =
        Box::new(|| Ok(Box::new(Idle) as Box<dyn facegate::camera::FrameSource>));
    (Daemon::new(cfg, Box::new(out), opener).unwrap(), log)
}

/// Runs the daemon in this thread while `script` runs in another; stops when it returns.
fn run_with<T: Send + 'static>(
    daemon: &mut Daemon,
    script: impl FnOnce() -> T + Send + 'static,
) -> (facegate::daemon::RunSummary, T) {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let t = std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(script));
        s.store(true, Ordering::Relaxed);
        r
    });
    let summary = daemon.run(&stop).unwrap();
    match t.join().unwrap() {
        Ok(v) => (summary, v),
        Err(p) => std::panic::resume_unwind(p),
    }
}

fn ms(d: f64) -> String {
    format!("{:.1} ms", d * 1e3)
}

/// (median, p99) of `v` (seconds).
fn median_p99(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn ts_age(ts: &Value, at: SystemTime) -> f64 {
    let t: jiff::Timestamp = ts.as_str().unwrap().parse().unwrap();
    let at = jiff::Timestamp::try_from(at).unwrap();
    at.duration_since(t).as_secs_f64()
}

/// The demo's recording: one `recognised` (Miranda, name published with `publish_person`) and
/// one `unknown` (the stranger), each with a timestamp and the audit seq of its decision
/// record; lock state UNLOCKED then LOCKED; nothing that looks like a template or an image.
#[test]
fn the_demo_clip_publishes_one_recognised_and_one_unknown_with_their_audit_seq() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sub = Sub::new(&broker, "t-demo", &[&format!("{BASE}/#")], false);
    // config/demo.toml itself (replay at 5 FPS in real time), with its audit log moved into the
    // temporary folder and an [mqtt] section
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml");
    let text = std::fs::read_to_string(&demo).unwrap();
    let audit_line = "path = \"../target/demo-audit.jsonl\"";
    assert!(text.contains(audit_line));
    let text = text.replace(
        audit_line,
        &format!("path = \"{}\"", dir.path().join("audit.jsonl").display()),
    ) + &broker.section("publish_person = true");
    let cfg = Config::parse(&text, &demo).unwrap();
    let mut daemon = Daemon::from_config(cfg).unwrap();
    let summary = daemon.run(&AtomicBool::new(false)).unwrap();
    assert_eq!(summary.unlocks.len(), 1, "{summary:?}");
    sub.wait("recognised and unknown", Duration::from_secs(10), |s| {
        !s.events("recognised").is_empty() && !s.events("unknown").is_empty()
    });
    std::thread::sleep(Duration::from_millis(300));
    let recognised = sub.events("recognised");
    let unknown = sub.events("unknown");
    assert_eq!(recognised.len(), 1, "{recognised:?}");
    // one `unknown` per unknown-face decision of the audit log, no more, no less (the demo
    // denies the stranger's attempts: 2 on this machine, `absence_s` apart)
    let records = audit(dir.path());
    let denials: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"] == "decision" && r["fields"]["reason_code"] == "unknown_face")
        .collect();
    assert!(!unknown.is_empty());
    assert_eq!(unknown.len(), denials.len(), "{unknown:?} vs {denials:?}");
    eprintln!(
        "demo: 1 recognised, {} unknown: {:?}",
        unknown.len(),
        denials
            .iter()
            .map(|d| (&d["seq"], &d["fields"]["frame"]))
            .collect::<Vec<_>>()
    );
    let r = &recognised[0];
    assert_eq!(r["person"], "lmm");
    assert_eq!(r["name"], "Lin-Manuel Miranda");
    for ev in [r, &unknown[0]] {
        let seq = ev["seq"].as_u64().expect("seq");
        let rec = records
            .iter()
            .find(|x| x["seq"] == seq)
            .expect("audit record");
        assert_eq!(rec["event"], "decision", "{rec}");
        assert!(ev["ts"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
    let rec = records.iter().find(|x| x["seq"] == r["seq"]).unwrap();
    assert_eq!(rec["fields"]["decision"], "unlock", "{rec}");
    let u = records
        .iter()
        .find(|x| x["seq"] == unknown[0]["seq"])
        .unwrap();
    assert_eq!(u["fields"]["reason_code"], "unknown_face", "{u}");
    let lock: Vec<String> = sub
        .on(&format!("{BASE}/lock"))
        .into_iter()
        .map(|m| m.payload)
        .collect();
    let i = lock
        .iter()
        .position(|s| s == "UNLOCKED")
        .expect("UNLOCKED published");
    assert!(lock[i..].iter().any(|s| s == "LOCKED"), "{lock:?}");
    let person = sub.on(&format!("{BASE}/person"));
    assert!(
        person.last().unwrap().retain
            || person.last().unwrap().json()["name"] == "Lin-Manuel Miranda"
    );
    // small messages, no templates or images
    for m in sub.all() {
        assert!(
            m.payload.len() < 2048,
            "{} is {} bytes",
            m.topic,
            m.payload.len()
        );
        assert!(!m.payload.contains("embedding"), "{}", m.payload);
    }
    let health = sub.on(&format!("{BASE}/health"));
    let h = health.last().expect("health").json();
    assert!(
        h["audit_head"].as_str().is_some_and(|s| s.len() == 64),
        "{h}"
    );
    let age = ts_age(
        &r["ts"],
        sub.on(&format!("{BASE}/event"))
            .iter()
            .find(|m| m.json()["event_type"] == "recognised")
            .unwrap()
            .at,
    );
    eprintln!("decision record -> received by a subscriber: {}", ms(age));
    drop(daemon);
}

/// Home Assistant discovery (retained, one device, five entities with unique_id, availability
/// and the device), republished when HA says `online`; an UNLOCK without allow_remote_unlock
/// is refused and audited; after SIGKILL the broker publishes the last will (`offline`).
#[test]
fn discovery_availability_refused_unlock_and_last_will_after_a_kill() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sub = Sub::new(
        &broker,
        "t-ha",
        &["homeassistant/#", &format!("{BASE}/#")],
        false,
    );
    let cfg = door_config(dir.path(), &lmm(), &broker.section(""), "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(
            "replay_realtime = false",
            "replay_realtime = true\nreplay_loop = true\nfps = 5",
        )
        .replace(
            "backend = \"simulated\"",
            "backend = \"simulated\"\nsim_state_file = \"relay.state\"",
        );
    std::fs::write(&cfg, text).unwrap();
    let mut child = common::facegate_command()
        .args(["run", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let configs = |s: &Sub| {
        s.all()
            .into_iter()
            .filter(|m| m.topic.starts_with("homeassistant/") && m.topic.ends_with("/config"))
            .collect::<Vec<_>>()
    };
    sub.wait("discovery", Duration::from_secs(60), |s| {
        configs(s).len() >= 5
    });
    sub.wait("online", Duration::from_secs(5), |s| {
        s.on(&format!("{BASE}/availability"))
            .iter()
            .any(|m| m.payload == "online")
    });
    // retained: a client that subscribes now gets them from the broker (flag set)
    let late = Sub::new(
        &broker,
        "t-ha-retained",
        &["homeassistant/#", &format!("{BASE}/availability")],
        false,
    );
    late.wait("retained discovery", Duration::from_secs(5), |s| {
        configs(s).len() >= 5
    });
    assert!(late.all().iter().any(|m| m.retain && m.payload == "online"));
    let first = configs(&late);
    let mut components: Vec<String> = first
        .iter()
        .map(|m| m.topic.split('/').nth(1).unwrap().to_string())
        .collect();
    components.sort();
    assert_eq!(
        components,
        ["binary_sensor", "binary_sensor", "event", "lock", "sensor"]
    );
    let mut ids = std::collections::HashSet::new();
    for m in &first {
        assert!(m.retain, "{} not retained", m.topic);
        let v = m.json();
        assert!(
            ids.insert(v["unique_id"].as_str().unwrap().to_string()),
            "{v}"
        );
        assert_eq!(
            v["availability"][0]["topic"],
            format!("{BASE}/availability"),
            "{v}"
        );
        assert_eq!(v["device"]["identifiers"][0], "facegate_hq_front", "{v}");
        if m.topic.contains("/lock/") {
            assert_eq!(v["command_topic"], format!("{BASE}/set"));
            assert_eq!(v["state_topic"], format!("{BASE}/lock"));
            assert_eq!(v["state_jammed"], "JAMMED");
        }
        if m.topic.contains("/event/") {
            let types: Vec<&str> = v["event_types"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            for t in [
                "recognised",
                "unknown",
                "presentation_attack",
                "camera_lost",
                "camera_restored",
                "enroll_import",
                "door_forced",
                "door_held_open",
            ] {
                assert!(types.contains(&t), "{t} missing in {types:?}");
            }
        }
    }
    // Home Assistant restarts: discovery again
    sub.publish("homeassistant/status", b"online", false);
    sub.wait("discovery again", Duration::from_secs(10), |s| {
        configs(s).len() >= 10
    });
    // UNLOCK is refused (allow_remote_unlock is off) and audited; the relay stays de-energised
    sub.publish(&format!("{BASE}/set"), b"UNLOCK", false);
    sub.wait("refusal", Duration::from_secs(10), |s| {
        !s.events("remote_unlock_refused").is_empty()
    });
    let relay = std::fs::read_to_string(dir.path().join("relay.state")).unwrap_or_default();
    assert!(
        !relay.contains("energised\n") || relay.lines().all(|l| l != "energised"),
        "{relay}"
    );
    let rec = audit(dir.path())
        .into_iter()
        .find(|r| r["event"] == "remote_command")
        .expect("remote_command audited");
    assert_eq!(rec["fields"]["result"], "refused", "{rec}");
    assert_eq!(rec["fields"]["client_id"], "facegate-hq-front", "{rec}");
    assert_eq!(rec["fields"]["username"], "door", "{rec}");
    // SIGKILL: no goodbye from the door; the broker publishes the last will
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    let t0 = Instant::now();
    sub.wait("last will", Duration::from_secs(15), |s| {
        s.on(&format!("{BASE}/availability"))
            .last()
            .is_some_and(|m| m.payload == "offline")
    });
    eprintln!(
        "last will published {:.1} s after SIGKILL (keep_alive_s = 5)",
        t0.elapsed().as_secs_f64()
    );
    // and it is retained: a new client sees the door offline
    let late = Sub::new(&broker, "t-late", &[&format!("{BASE}/availability")], false);
    late.wait("retained offline", Duration::from_secs(5), |s| {
        s.all().iter().any(|m| m.retain && m.payload == "offline")
    });
}

/// `allow_remote_unlock = true` without broker authentication is refused, naming the fix.
#[test]
fn remote_unlock_without_broker_authentication_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = door_config(
        dir.path(),
        &lmm(),
        "[mqtt]\nenabled = true\nsite = \"hq\"\ndoor = \"front\"\nallow_remote_unlock = true\n",
        "",
    );
    let e = Config::load(&cfg).unwrap_err().to_string();
    assert!(
        e.contains("[mqtt]")
            && e.contains("allow_remote_unlock")
            && e.contains("username and password_file"),
        "{e}"
    );
    // off by default: no [mqtt] section, no client
    let cfg = door_config(dir.path(), &lmm(), "", "");
    assert!(Config::load(&cfg).unwrap().mqtt.is_none());
}

/// With `allow_remote_unlock` and authentication: a retained UNLOCK is ignored, a plain one
/// opens the door once after a durable `remote_command` record with the door's client id and
/// user; LOCK relocks (audited).
#[test]
fn remote_unlock_when_allowed_is_audited_and_retained_commands_are_ignored() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sub = Sub::new(&broker, "t-cmd", &[&format!("{BASE}/#")], false);
    let cfg = door_config(
        dir.path(),
        &lmm(),
        &broker.section("allow_remote_unlock = true"),
        "",
    );
    // A retained UNLOCK waiting on the broker (delivered with the retain flag when the door
    // subscribes, and again at every reconnect): never honoured. (A retained publish reaches
    // clients already subscribed as a live message, without the flag: that is a command.)
    sub.publish(&format!("{BASE}/set"), b"UNLOCK", true);
    let (mut daemon, log) = idle_daemon(Config::load(&cfg).unwrap());
    let l2 = log.clone();
    let (_, ()) = run_with(&mut daemon, move || {
        sub.wait("online", Duration::from_secs(20), |s| {
            s.on(&format!("{BASE}/availability"))
                .iter()
                .any(|m| m.payload == "online")
        });
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            l2.energised_periods().is_empty(),
            "a retained UNLOCK opened the door"
        );
        sub.publish(&format!("{BASE}/set"), b"", true); // clear it
        sub.publish(&format!("{BASE}/set"), b"UNLOCK", false);
        sub.wait("remote_unlock", Duration::from_secs(10), |s| {
            !s.events("remote_unlock").is_empty()
        });
        let t0 = Instant::now();
        while l2.energised() != Some(true) && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        sub.publish(&format!("{BASE}/set"), b"LOCK", false);
        sub.wait("relock", Duration::from_secs(10), |s| {
            !s.events("relock").is_empty()
        });
        sub.wait("LOCKED", Duration::from_secs(5), |s| {
            s.on(&format!("{BASE}/lock"))
                .last()
                .is_some_and(|m| m.payload == "LOCKED")
        });
    });
    assert_eq!(
        log.energised_periods().len(),
        1,
        "{:?}",
        log.energised_periods()
    );
    let records = audit(dir.path());
    let cmds: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"] == "remote_command")
        .collect();
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    assert_eq!(cmds[0]["fields"]["command"], "unlock");
    assert_eq!(cmds[0]["fields"]["result"], "unlocked");
    assert_eq!(cmds[0]["fields"]["client_id"], "facegate-hq-front");
    assert_eq!(cmds[0]["fields"]["username"], "door");
    assert_eq!(cmds[1]["fields"]["command"], "relock");
    // the unlock record precedes the relay's `unlocked` door record
    let unlock_seq = cmds[0]["seq"].as_u64().unwrap();
    let door = records
        .iter()
        .find(|r| r["event"] == "door" && r["fields"]["event"] == "unlocked")
        .unwrap();
    assert!(door["seq"].as_u64().unwrap() > unlock_seq);
}

fn mqtt_config(broker: &Broker, dir: &Path, extra: &str) -> facegate::mqtt::MqttConfig {
    let cfg = door_config(dir, &lmm(), &broker.section(extra), "");
    Config::load(&cfg).unwrap().mqtt.unwrap()
}

fn event(n: u64) -> facegate::mqtt::Msg {
    facegate::mqtt::Msg::event(
        &format!("{BASE}/event"),
        &serde_json::json!({"event_type": "test", "n": n, "ts": facegate::mqtt::events::now()}),
    )
}

/// The broker goes away: `send` never blocks, the queue keeps the newest `queue` events and
/// counts the dropped ones; after the broker is back the client reconnects by itself and the
/// queued events arrive (at a subscriber whose session the broker kept).
#[test]
fn events_queued_while_the_broker_restarts_are_delivered_or_counted_as_dropped() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sub = Sub::new(&broker, "t-restart", &[&format!("{BASE}/event")], true);
    let cfg = mqtt_config(&broker, dir.path(), "queue = 20");
    let mqtt = facegate::mqtt::Mqtt::start(&cfg, None).unwrap();
    let t0 = Instant::now();
    while !mqtt.connected() {
        assert!(t0.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    mqtt.send(event(0));
    sub.wait("event 0", Duration::from_secs(5), |s| {
        s.on(&format!("{BASE}/event")).len() == 1
    });
    broker.stop();
    let t0 = Instant::now();
    while mqtt.connected() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the client did not notice"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut worst = Duration::ZERO;
    for n in 1..=50 {
        let t = Instant::now();
        mqtt.send(event(n));
        worst = worst.max(t.elapsed());
    }
    assert!(
        worst < Duration::from_millis(5),
        "send blocked for {worst:?}"
    );
    assert_eq!(mqtt.dropped(), 30);
    assert_eq!(mqtt.queued(), 20);
    broker.restart();
    sub.wait("the 20 queued events", Duration::from_secs(20), |s| {
        s.on(&format!("{BASE}/event")).len() >= 21
    });
    let ns: Vec<u64> = sub
        .on(&format!("{BASE}/event"))
        .iter()
        .map(|m| m.json()["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, [0].into_iter().chain(31..=50).collect::<Vec<_>>());
    assert!(mqtt.connects() >= 2);
    eprintln!(
        "broker restart: worst send {worst:?}, 30 dropped (queue 20), 20 delivered after reconnect"
    );
}

/// Decision -> publish latency on loopback: 300 events through the queue, the client and the
/// broker to a subscriber (target: within 100 ms).
#[test]
fn publish_latency_on_loopback() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sub = Sub::new(&broker, "t-latency", &[&format!("{BASE}/event")], false);
    let cfg = mqtt_config(&broker, dir.path(), "");
    let mqtt = facegate::mqtt::Mqtt::start(&cfg, None).unwrap();
    let t0 = Instant::now();
    while !mqtt.connected() {
        assert!(t0.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    for n in 0..300 {
        mqtt.send(event(n));
        std::thread::sleep(Duration::from_millis(5));
    }
    sub.wait("300 events", Duration::from_secs(20), |s| {
        s.on(&format!("{BASE}/event")).len() == 300
    });
    let lat: Vec<f64> = sub
        .on(&format!("{BASE}/event"))
        .iter()
        .map(|m| ts_age(&m.json()["ts"], m.at))
        .collect();
    let (med, p99) = median_p99(lat);
    eprintln!(
        "MQTT publish latency on loopback (300 events): median {}, p99 {}",
        ms(med),
        ms(p99)
    );
    assert!(p99 < 0.1, "p99 {}", ms(p99));
}

/// A signed bundle directory for site `hq`, version `version`, enrolling alice.
fn bundle(dir: &Path, version: u64, key: &facegate::enroll::SecretKey) {
    std::fs::create_dir_all(dir).unwrap();
    let photo = std::fs::read(face("obama1.jpg")).unwrap();
    std::fs::write(dir.join("a.jpg"), &photo).unwrap();
    let manifest = format!(
        "schema = 1\nversion = {version}\nsite = \"hq\"\ncreated = \"2026-11-30T08:00:00Z\"\n\n\
         [[person]]\nid = \"alice\"\nname = \"Alice\"\nphotos = [{{ path = \"a.jpg\", sha256 = \"{}\" }}]\n",
        facegate::fsutil::sha256_hex(&photo)
    );
    std::fs::write(dir.join("manifest.toml"), &manifest).unwrap();
    std::fs::write(
        dir.join("manifest.sig"),
        key.sign(manifest.as_bytes(), "manifest.toml"),
    )
    .unwrap();
}

fn publish_cli(broker: &Broker, dir: &Path) -> std::process::Output {
    common::facegate_command()
        .args(["bundle", "publish"])
        .arg(dir)
        .args([
            "--broker",
            "127.0.0.1",
            "--port",
            &broker.port.to_string(),
            "--site",
            "hq",
            "--username",
            "admin",
            "--password-file",
        ])
        .arg(broker.password_file("admin"))
        .output()
        .unwrap()
}

/// Fleet enrollment: `facegate bundle publish` puts the bundle (retained) on facegate/hq/bundle;
/// the door imports it through the stick's path, once (not again when the broker restarts and
/// delivers the retained bundle again), and publishes the result; a bundle signed by a key the
/// door does not pin and a payload that is not a bundle are refused and reported.
#[test]
fn a_published_bundle_is_imported_once_and_a_forged_one_is_refused_and_reported() {
    let Some(mut broker_) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = facegate::enroll::SecretKey::generate().unwrap();
    let store = facegate::enroll::Store::open(
        &dir.path().join("door/gallery.store"),
        &dir.path().join("door/device.key"),
    )
    .unwrap();
    let mut data = facegate::enroll::StoreData::empty(&common::models().encoder.sha256);
    data.bundle_version = 1;
    store.save(&data).unwrap();
    let gallery = format!(
        "store = \"door/gallery.store\"\nkey_file = \"door/device.key\"\nadmin_keys = [\"{}\"]\n\
         site = \"hq\"\ndevice_id = \"front\"\npoll_s = 0.2\n",
        key.public().base64
    );
    let cfg = door_config(
        dir.path(),
        &gallery,
        &broker_.section("fleet_enroll = true"),
        "",
    );
    let (mut daemon, _) = idle_daemon(Config::load(&cfg).unwrap());
    let sub = Sub::new(&broker_, "t-fleet", &[&format!("{BASE}/#")], false);
    let good = dir.path().join("admin/good");
    bundle(&good, 2, &key);
    let forged = dir.path().join("admin/forged");
    bundle(
        &forged,
        3,
        &facegate::enroll::SecretKey::generate().unwrap(),
    );
    let root = dir.path().to_path_buf();
    let (_, broker_) = run_with(&mut daemon, move || {
        let broker = &mut broker_;
        sub.wait("online", Duration::from_secs(20), |s| {
            s.on(&format!("{BASE}/availability"))
                .iter()
                .any(|m| m.payload == "online")
        });
        let out = publish_cli(broker, &good);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let enroll = format!("{BASE}/enroll");
        sub.wait("imported", Duration::from_secs(60), |s| {
            s.on(&enroll)
                .iter()
                .any(|m| m.json()["result"] == "imported")
        });
        let r = sub.on(&enroll).last().unwrap().json();
        assert_eq!(
            (
                r["version"].as_u64(),
                r["source"].as_str(),
                r["enrolled"].as_u64()
            ),
            (Some(2), Some("mqtt"), Some(1)),
            "{r}"
        );
        assert!(r["seq"].as_u64().is_some(), "{r}");
        // the broker restarts: the retained bundle comes again and is not imported again
        broker.restart();
        sub.wait("reconnected", Duration::from_secs(20), |s| {
            s.on(&format!("{BASE}/availability"))
                .iter()
                .filter(|m| m.payload == "online")
                .count()
                >= 2
        });
        std::thread::sleep(Duration::from_secs(2));
        let imports = audit(&root)
            .iter()
            .filter(|r| r["event"] == "enroll_import" || r["event"] == "enroll_rejected")
            .count();
        assert_eq!(
            imports, 1,
            "the retained bundle was handled again after the restart"
        );
        // forged: signed by a key the door does not pin
        let out = publish_cli(broker, &forged);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        sub.wait("rejected", Duration::from_secs(30), |s| {
            s.on(&enroll)
                .iter()
                .any(|m| m.json()["result"] == "rejected")
        });
        let r = sub.on(&enroll).last().unwrap().json();
        assert_eq!(r["kind"], "key_not_pinned", "{r}");
        // not a bundle at all
        sub.publish("facegate/hq/bundle", b"{\"format\": \"tar\"}", true);
        sub.wait("payload refused", Duration::from_secs(10), |s| {
            s.on(&enroll).iter().any(|m| m.json()["kind"] == "payload")
        });
        sub.publish("facegate/hq/bundle", b"", true);
        broker_
    });
    drop(broker_);
    assert!(
        daemon.gallery().get("alice").is_some(),
        "alice enrolled from the broker"
    );
    let records = audit(dir.path());
    assert_eq!(
        records
            .iter()
            .filter(|r| r["event"] == "enroll_import")
            .count(),
        1
    );
    let rejected: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"] == "enroll_rejected")
        .collect();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert_eq!(rejected[0]["fields"]["kind"], "key_not_pinned");
    assert_eq!(rejected[1]["fields"]["kind"], "payload");
    let data = store.load(&common::models().encoder.sha256).unwrap();
    assert_eq!(data.bundle_version, 2);
    // the spool holds nothing left over
    let spool = dir.path().join("mqtt-bundles");
    let left: Vec<_> = std::fs::read_dir(&spool)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

/// tools/setup.sh installs mosquitto when the broker binary is missing: it looks for the broker
/// itself (Debian: /usr/sbin, not on a normal user's PATH), not for mosquitto-clients.
#[test]
fn setup_detects_the_mosquitto_broker_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let detect = |dirs: &str| -> i32 {
        Command::new("bash")
            .arg(root.join("tools/setup.sh"))
            .args(["--detect", "mosquitto"])
            .env("FACEGATE_MOSQUITTO_DIRS", dirs)
            .status()
            .unwrap()
            .code()
            .unwrap()
    };
    let (bin, sbin, folder) = (
        dir.path().join("bin"),
        dir.path().join("sbin"),
        dir.path().join("odd"),
    );
    for d in [&bin, &sbin, &folder] {
        std::fs::create_dir_all(d).unwrap();
    }
    let exe = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    // only the clients: no broker
    exe(&bin.join("mosquitto_sub"));
    exe(&bin.join("mosquitto_pub"));
    let both = format!("{} {}", bin.display(), sbin.display());
    assert_eq!(detect(&both), 1, "clients only");
    // a folder named mosquitto is not a broker; nor is a file that is not executable
    std::fs::create_dir_all(folder.join("mosquitto")).unwrap();
    std::fs::write(bin.join("mosquitto"), "").unwrap();
    assert_eq!(
        detect(&format!("{both} {}", folder.display())),
        1,
        "folder / not executable"
    );
    // the broker in sbin
    exe(&sbin.join("mosquitto"));
    assert_eq!(detect(&both), 0, "broker in sbin");
    assert_eq!(detect(""), 1, "nothing searched");
}

/// Measurement (run by hand): the broker is down for FACEGATE_MQTT_OUTAGE_S (default 120 s)
/// while the daemon replays the recording in a loop at 10 FPS; reports the worst frame time,
/// the peak RSS and the dropped events.
/// `cargo test --test main mqtt::broker_outage -- --ignored --nocapture`
#[test]
#[ignore]
fn broker_outage_keeps_frames_flowing_and_memory_bounded() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    let outage: u64 = std::env::var("FACEGATE_MQTT_OUTAGE_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let dir = tempfile::tempdir().unwrap();
    // a small queue, so that the outage overflows it (the events are the clip's decisions)
    let cfg = door_config(dir.path(), &lmm(), &broker.section("queue = 8"), "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "replay_realtime = false",
        "replay_realtime = true\nreplay_loop = true\nfps = 10",
    );
    std::fs::write(&cfg, text).unwrap();
    let mut daemon = Daemon::from_config(Config::load(&cfg).unwrap()).unwrap();
    let rss = |key: &str| -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        let before = rss("VmRSS:");
        broker.stop();
        eprintln!("broker stopped (RSS {before} kB)");
        std::thread::sleep(Duration::from_secs(outage));
        let during = rss("VmHWM:");
        broker.restart();
        std::thread::sleep(Duration::from_secs(5));
        s.store(true, Ordering::Relaxed);
        (before, during)
    });
    let summary = daemon.run(&stop).unwrap();
    let (before, peak) = t.join().unwrap();
    let m = daemon.mqtt().unwrap();
    // the frames after the first 3 s (start-up, warm-up): the outage and 5 s after it
    let during = &summary.processing[30.min(summary.processing.len())..];
    let worst = during.iter().max().unwrap();
    let mut p: Vec<f64> = during.iter().map(|d| d.as_secs_f64()).collect();
    p.sort_by(f64::total_cmp);
    eprintln!(
        "outage {outage} s at 10 FPS: {} frames, worst frame after the first 3 s {}, median {}, RSS {before} kB before -> peak {peak} kB, \
         {} events dropped, {} queued, connects {}",
        summary.frames, ms(worst.as_secs_f64()), ms(p[p.len() / 2]), m.dropped(), m.queued(), m.connects()
    );
    assert!(m.connects() >= 2, "reconnected after the outage");
    assert!(m.queued() <= 8);
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl (tools/setup.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`<name>.pem`) and, signed by it, a certificate for 127.0.0.1 (`server.pem`/`.key`).
fn certificates(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={ca}"),
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

/// TLS through rustls with the ring provider (no aws-lc): the door connects to a TLS listener
/// whose certificate its `ca_file` vouches for, and refuses one signed by another CA.
#[test]
fn tls_with_the_ring_provider_connects_and_checks_the_broker_certificate() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    let d = broker.dir.path().to_path_buf();
    // a CA the door does not trust, with its server certificate set aside; then the door's CA
    certificates(&d, "other-ca");
    let (other_server, other_key) = (d.join("server.pem"), d.join("server.key"));
    std::fs::rename(&other_server, d.join("other-server.pem")).unwrap();
    std::fs::rename(&other_key, d.join("other-server.key")).unwrap();
    certificates(&d, "ca2");
    let tls_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bad_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut conf = std::fs::read_to_string(d.join("mosquitto.conf")).unwrap();
    conf += &format!(
        "listener {tls_port} 127.0.0.1\ncafile {0}/ca2.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key\n\
         listener {bad_port} 127.0.0.1\ncafile {0}/other-ca.pem\ncertfile {0}/other-server.pem\nkeyfile {0}/other-server.key\n",
        d.display()
    );
    std::fs::write(d.join("mosquitto.conf"), conf).unwrap();
    broker.restart();
    let sub = Sub::new(&broker, "t-tls", &[&format!("{BASE}/event")], false);
    let dir = tempfile::tempdir().unwrap();
    let tls = |port: u16| {
        let section = broker
            .section(&format!(
                "tls = true\nca_file = \"{}\"",
                d.join("ca2.pem").display()
            ))
            .replace(
                &format!("port = {}", broker.port),
                &format!("port = {port}"),
            );
        let cfg = door_config(dir.path(), &lmm(), &section, "");
        Config::load(&cfg).unwrap().mqtt.unwrap()
    };
    let good = facegate::mqtt::Mqtt::start(&tls(tls_port), None).unwrap();
    let t0 = Instant::now();
    while !good.connected() {
        assert!(t0.elapsed() < Duration::from_secs(10), "no TLS connection");
        std::thread::sleep(Duration::from_millis(10));
    }
    good.send(event(1));
    sub.wait("event over TLS", Duration::from_secs(5), |s| {
        s.on(&format!("{BASE}/event")).len() == 1
    });
    drop(good);
    // a broker certificate from another CA: never connected
    let bad = facegate::mqtt::Mqtt::start(&tls(bad_port), None).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !bad.connected() && bad.connects() == 0,
        "connected to a broker the CA does not vouch for"
    );
}
