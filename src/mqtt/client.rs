//! The broker connection: two threads, so that the frame loop never waits for the network.
//!
//! ```text
//!  frame loop ──Mqtt::send (try, never blocks)──> Outbox: events (bounded, oldest dropped and
//!                                                  counted) + latest retained state per topic
//!                                                        │ mqtt-pump: publishes while connected
//!                                                        v
//!  frame loop <──Mqtt::poll (commands, bundle      rumqttc Client ──> mqtt-conn: the event loop,
//!               refusals)─────────────────────────────────────────── reconnect with back-off,
//!                                                                   subscriptions, last will
//! ```
//!
//! At every connection the pump publishes `online` (retained; the last will says `offline`),
//! the discovery configs and the latest retained states, then the queued events. While the
//! broker is away, events wait in the outbox (at most `[mqtt] queue`; the oldest are dropped
//! and counted in [`Mqtt::dropped`] and in the health state).

use super::config::{MqttConfig, Transport};
use super::events::Msg;
use super::fleet::Fleet;
use crate::error::{Error, Result};
use rumqttc::{
    Client, ClientError, Connection, ConnectionError, Event, LastWill, MqttOptions, Packet,
    Publish, QoS, TlsConfiguration,
};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A command received on the door's `set` topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteCommand {
    /// `UNLOCK` (Home Assistant's lock): honoured only with `allow_remote_unlock`.
    Unlock,
    /// `LOCK` or `RELOCK`: always honoured.
    Relock,
}

/// What the connection thread hands to the frame loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Command(RemoteCommand),
    /// A bundle payload that could not even be unpacked (the import never started).
    BundleRefused {
        payload_sha256: String,
        error: String,
    },
}

#[derive(Default)]
struct Outbox {
    events: VecDeque<Msg>,
    /// Latest retained payload per topic, and whether it still has to be published.
    states: BTreeMap<String, (Msg, bool)>,
    /// Publish `online`, discovery and every state (a new connection, or HA restarted).
    resend: bool,
}

struct Shared {
    out: Mutex<Outbox>,
    wake: Condvar,
    connected: AtomicBool,
    stop: AtomicBool,
    dropped: AtomicU64,
    published: AtomicU64,
    connects: AtomicU64,
    cap: usize,
    availability: String,
    discovery: Vec<Msg>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Outbox> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The frame loop's end of the MQTT client.
pub struct Mqtt {
    shared: Arc<Shared>,
    client: Client,
    inbound: Receiver<Inbound>,
    threads: Vec<JoinHandle<()>>,
    client_id: String,
    username: Option<String>,
}

/// How long dropping an [`Mqtt`] waits for `offline` to be sent and the threads to end.
pub const STOP_WAIT: Duration = Duration::from_secs(2);

/// The rustls client configuration (ring provider) trusting the CA in `ca_file`.
pub fn tls_config(ca_file: &std::path::Path) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let fix = "a PEM file with the certificate of the CA that signed the broker's certificate";
    let pem = std::fs::read(ca_file).map_err(|e| {
        Error::Invalid(format!(
            "[mqtt] ca_file {}: {e}; it must be {fix}",
            ca_file.display()
        ))
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| {
            Error::Invalid(format!(
                "[mqtt] ca_file {}: {e}; it must be {fix}",
                ca_file.display()
            ))
        })?;
        roots.add(cert).map_err(|e| {
            Error::Invalid(format!(
                "[mqtt] ca_file {}: {e}; it must be {fix}",
                ca_file.display()
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(Error::Invalid(format!(
            "[mqtt] ca_file {} holds no certificate; it must be {fix}",
            ca_file.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Invalid(format!("[mqtt] TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Broker options shared by the door and `facegate bundle publish`.
pub fn options(
    cfg: &MqttConfig,
    client_id: &str,
    max_incoming: usize,
    max_outgoing: usize,
) -> Result<MqttOptions> {
    let mut o = MqttOptions::new(client_id, cfg.host.clone(), cfg.port);
    o.set_keep_alive(cfg.keep_alive)
        .set_clean_session(true)
        .set_max_packet_size(max_incoming, max_outgoing)
        .set_request_channel_capacity(64);
    if let Some((user, password)) = cfg.password()? {
        o.set_credentials(user, password);
    }
    if let Transport::Tls { ca_file } = &cfg.transport {
        let tls = tls_config(ca_file)?;
        o.set_transport(rumqttc::Transport::tls_with_config(
            TlsConfiguration::Rustls(Arc::new(tls)),
        ));
    }
    Ok(o)
}

impl Mqtt {
    /// Connects in the background (never fails for an absent broker: it is retried with
    /// back-off); fails only for a configuration that cannot work (password or CA file).
    pub fn start(cfg: &MqttConfig, fleet: Option<Fleet>) -> Result<Mqtt> {
        let topics = super::events::Topics::new(cfg);
        let incoming = if cfg.fleet_enroll {
            cfg.max_bundle_bytes + (64 << 10)
        } else {
            64 << 10
        };
        let mut opts = options(cfg, &cfg.client_id, incoming, 1 << 20)?;
        opts.set_last_will(LastWill::new(
            &topics.availability,
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        let (client, connection) = Client::new(opts, 64);
        let shared = Arc::new(Shared {
            out: Mutex::new(Outbox::default()),
            wake: Condvar::new(),
            connected: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            published: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            cap: cfg.queue,
            availability: topics.availability.clone(),
            discovery: super::discovery::messages(cfg),
        });
        let (tx, inbound) = channel();
        let mut subs = vec![topics.set.clone()];
        if let Some(p) = &cfg.discovery_prefix {
            subs.push(super::discovery::status_topic(p));
        }
        if fleet.is_some() {
            subs.push(topics.bundle.clone());
        }
        let conn = ConnThread {
            shared: shared.clone(),
            client: client.clone(),
            tx,
            subs,
            set_topic: topics.set,
            bundle_topic: topics.bundle,
            status_topic: cfg
                .discovery_prefix
                .as_deref()
                .map(super::discovery::status_topic),
            fleet,
            reconnect_max: cfg.reconnect_max,
            broker: format!("{}:{}", cfg.host, cfg.port),
        };
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(|e| Error::Invalid(format!("cannot start the {name} thread: {e}")))
        };
        let t1 = spawn("mqtt-conn", Box::new(move || conn.run(connection)))?;
        let (s2, c2) = (shared.clone(), client.clone());
        let t2 = spawn("mqtt-pump", Box::new(move || pump(&s2, &c2)))?;
        log::info!(
            "mqtt: publishing to {} as {} under {}/ ({})",
            format_args!("{}:{}", cfg.host, cfg.port),
            cfg.client_id,
            cfg.base(),
            match cfg.transport {
                Transport::Tcp => "plain TCP",
                Transport::Tls { .. } => "TLS",
            }
        );
        Ok(Mqtt {
            shared,
            client,
            inbound,
            threads: vec![t1, t2],
            client_id: cfg.client_id.clone(),
            username: cfg.auth.as_ref().map(|(u, _)| u.clone()),
        })
    }

    /// Queues a message; never blocks on the network. A retained state replaces the previous
    /// payload of its topic; an event beyond the queue's capacity drops the oldest (counted).
    pub fn send(&self, msg: Msg) {
        let mut o = self.shared.lock();
        if msg.retain {
            o.states.insert(msg.topic.clone(), (msg, true));
        } else {
            if o.events.len() >= self.shared.cap {
                o.events.pop_front();
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
            o.events.push_back(msg);
        }
        drop(o);
        self.shared.wake.notify_one();
    }

    /// Commands and refusals since the last call; never blocks.
    pub fn poll(&self) -> Vec<Inbound> {
        self.inbound.try_iter().collect()
    }

    /// Events dropped from the full queue since start.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Events waiting for the broker.
    pub fn queued(&self) -> usize {
        self.shared.lock().events.len()
    }

    pub fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// Messages handed to the client library since start.
    pub fn published(&self) -> u64 {
        self.shared.published.load(Ordering::Relaxed)
    }

    /// Connections made since start (1 after the first, 2 after a reconnect, ...).
    pub fn connects(&self) -> u64 {
        self.shared.connects.load(Ordering::Relaxed)
    }

    /// The door's MQTT client id and broker user (for the audit of remote commands).
    pub fn identity(&self) -> (&str, Option<&str>) {
        (&self.client_id, self.username.as_deref())
    }
}

impl Drop for Mqtt {
    /// Publishes `offline` (retained) and disconnects if connected; never hangs (threads still
    /// busy after [`STOP_WAIT`] are left behind and end with the process).
    fn drop(&mut self) {
        let t0 = Instant::now();
        if self.connected() {
            // let the pump send what is queued (bounded wait)
            while t0.elapsed() < STOP_WAIT / 2 && self.queued() > 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.client.try_publish(
                self.shared.availability.clone(),
                QoS::AtLeastOnce,
                true,
                "offline",
            );
        }
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake.notify_all();
        let _ = self.client.try_disconnect();
        for t in self.threads.drain(..) {
            while !t.is_finished() && t0.elapsed() < STOP_WAIT {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                log::warn!(
                    "mqtt: a client thread did not stop within {STOP_WAIT:?}; leaving it behind"
                );
            }
        }
    }
}

/// Publishes one message, retrying while the client's request channel is full; gives up
/// (returns `false`) when the connection drops or the client stops.
fn publish(shared: &Shared, client: &Client, m: &Msg) -> bool {
    loop {
        match client.try_publish(
            m.topic.clone(),
            QoS::AtLeastOnce,
            m.retain,
            m.payload.clone(),
        ) {
            Ok(()) => {
                shared.published.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Err(ClientError::TryRequest(_)) => {
                if shared.stop.load(Ordering::Relaxed) || !shared.connected.load(Ordering::Relaxed)
                {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                log::warn!("mqtt: cannot publish to {}: {e}", m.topic);
                return false;
            }
        }
    }
}

/// What the pump publishes next: on `resend`, `online` + discovery + every state; then pending
/// states; then one event at a time.
fn next_batch(shared: &Shared, o: &mut Outbox) -> Vec<Msg> {
    let mut batch = Vec::new();
    if o.resend {
        o.resend = false;
        batch.push(Msg::state(&shared.availability, "online"));
        batch.extend(shared.discovery.iter().cloned());
        o.states.values_mut().for_each(|(_, dirty)| *dirty = true);
    }
    for (m, dirty) in o.states.values_mut() {
        if std::mem::take(dirty) {
            batch.push(m.clone());
        }
    }
    if batch.is_empty() {
        batch.extend(o.events.pop_front());
    }
    batch
}

/// The pump thread: waits for messages and a connection, publishes.
fn pump(shared: &Shared, client: &Client) {
    loop {
        let batch = {
            let mut o = shared.lock();
            loop {
                if shared.stop.load(Ordering::Relaxed) {
                    return;
                }
                if shared.connected.load(Ordering::Relaxed) {
                    let b = next_batch(shared, &mut o);
                    if !b.is_empty() {
                        break b;
                    }
                }
                o = shared
                    .wake
                    .wait_timeout(o, Duration::from_millis(200))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        };
        for m in &batch {
            if !publish(shared, client, m) {
                // connection lost: events go back to the front; states stay pending
                let mut o = shared.lock();
                if m.retain {
                    if let Some(s) = o.states.get_mut(&m.topic) {
                        s.1 = true;
                    }
                } else {
                    o.events.push_front(m.clone());
                }
            }
        }
    }
}

/// The connection thread's state.
struct ConnThread {
    shared: Arc<Shared>,
    client: Client,
    tx: Sender<Inbound>,
    subs: Vec<String>,
    set_topic: String,
    bundle_topic: String,
    status_topic: Option<String>,
    fleet: Option<Fleet>,
    reconnect_max: Duration,
    broker: String,
}

impl ConnThread {
    fn run(mut self, mut connection: Connection) {
        let mut backoff = Duration::from_millis(500);
        let mut outage_logged = false;
        // Runs until the DISCONNECT that `Mqtt::drop` requests has gone out (a clean goodbye:
        // the broker then keeps the retained `offline` and does not publish the last will).
        loop {
            match connection.recv() {
                Err(_) => return, // every client handle dropped
                Ok(Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))) => return,
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                    backoff = Duration::from_millis(500);
                    outage_logged = false;
                    self.shared.connects.fetch_add(1, Ordering::Relaxed);
                    log::info!("mqtt: connected to {}", self.broker);
                    for t in &self.subs {
                        if let Err(e) = self.client.try_subscribe(t.clone(), QoS::AtLeastOnce) {
                            log::error!("mqtt: cannot subscribe to {t}: {e}");
                        }
                    }
                    self.shared.lock().resend = true;
                    self.shared.connected.store(true, Ordering::Relaxed);
                    self.shared.wake.notify_all();
                }
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => self.incoming(p),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    self.shared.connected.store(false, Ordering::Relaxed);
                    if self.shared.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    self.outage(&e, &mut outage_logged, backoff);
                    let t0 = Instant::now();
                    while t0.elapsed() < backoff && !self.shared.stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50).min(backoff));
                    }
                    backoff = (backoff * 2).min(self.reconnect_max);
                }
            }
        }
    }

    fn outage(&self, e: &ConnectionError, logged: &mut bool, backoff: Duration) {
        if !*logged {
            log::warn!(
                "mqtt: broker {} unreachable or connection lost ({e}); retrying with back-off up to {:?}, events queue meanwhile (oldest dropped and counted)",
                self.broker,
                self.reconnect_max
            );
            *logged = true;
        } else {
            log::debug!("mqtt: still no broker ({e}); next try in {backoff:?}");
        }
    }

    fn incoming(&mut self, p: Publish) {
        if p.topic == self.set_topic {
            if p.retain {
                // a retained command would act again at every reconnect: never honoured
                log::warn!("mqtt: ignoring a RETAINED command on {} (publish commands without retain; clear it with an empty retained message)", p.topic);
                return;
            }
            let cmd = match std::str::from_utf8(&p.payload).map(|s| s.trim().to_ascii_uppercase()) {
                Ok(s) if s == "UNLOCK" => RemoteCommand::Unlock,
                Ok(s) if s == "LOCK" || s == "RELOCK" => RemoteCommand::Relock,
                _ => {
                    log::warn!(
                        "mqtt: unknown command on {} (use LOCK, RELOCK or UNLOCK)",
                        p.topic
                    );
                    return;
                }
            };
            let _ = self.tx.send(Inbound::Command(cmd));
        } else if Some(&p.topic) == self.status_topic.as_ref() {
            if &p.payload[..] == b"online" {
                log::info!("mqtt: Home Assistant is online: republishing discovery");
                self.shared.lock().resend = true;
                self.shared.wake.notify_all();
            }
        } else if p.topic == self.bundle_topic {
            if let Some(fleet) = &mut self.fleet {
                if let Some(refused) = fleet.receive(&p.payload) {
                    let _ = self.tx.send(refused);
                }
            }
        }
    }
}
