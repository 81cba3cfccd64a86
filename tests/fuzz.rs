//! Seeded, bounded fuzzing of every parser that takes untrusted bytes (issue 10 finding 15), on
//! stable Rust with `proptest`: the bundle manifest and its signature, admin and secret keys,
//! photo decoding and its limits, MJPEG Huffman-table insertion and decoding, YUYV conversion,
//! the audit log reader (`AuditLog::open` on a damaged tail, `audit::verify` on any file) and
//! the configuration file.
//!
//! The generators are structure-aware: they start from real inputs (signed manifests made as in
//! tests/enroll.rs, the fixture photos and small re-encodings of them, audit logs written by
//! `AuditLog`, config/demo.toml and config/facegate.toml) and mutate them: bit flips, byte
//! sets, insertions, deletions, truncation, splicing between seeds, interesting integers, line
//! operations, deep TOML nesting, huge image dimensions written into JPEG SOF / PNG IHDR (with
//! a valid CRC) / GIF / PNM headers, audit records re-hashed after an edit as an attacker can.
//!
//! Every target checks: no panic; every case finishes within [`CASE_LIMIT`] (a watchdog aborts
//! the binary after [`HANG_LIMIT`], naming the target and case); the case's peak heap (a
//! counting global allocator, per thread) stays under the target's bound, and no single
//! allocation over 1 GiB is ever made (it is refused, which aborts); errors are `Err` values
//! whose message names the input; round trips hold where one exists.
//!
//! Runs are reproducible: the RNG is ChaCha seeded from `FACEGATE_FUZZ_SEED` (default fixed)
//! and the target name. Environment:
//! * `FACEGATE_FUZZ_CASES=N`: cases per target (default [`DEFAULT_CASES`], sized for CI: the
//!   whole file runs in well under a minute); expensive targets run `N / weight`.
//! * `FACEGATE_FUZZ_SEED=S`: another seed, to explore other inputs.
//!
//! A longer campaign (about 15 minutes on 2 cores):
//! `FACEGATE_FUZZ_CASES=100000 cargo test --test main fuzz:: -- --nocapture` (each target prints its
//! executions, slowest case and peak heap); vary `FACEGATE_FUZZ_SEED` for new inputs.

use crate::{common, heap};

use facegate::audit::{self, AuditError, AuditLog, Event, Problem};
use facegate::camera::decode::{
    decode_mjpeg, jpeg_dimensions, yuyv_to_rgb, FrameError, MAX_FRAME_SIDE,
};
use facegate::config::Config;
use facegate::enroll::bundle::{BundleManifest, PersonEntry, PhotoEntry};
use facegate::enroll::{sign, AdminKey, EnrollError, SecretKey};
use facegate::gallery::{Day, Window};
use facegate::imageio::{self, MAX_PIXELS, MAX_SIDE};
use facegate::imageio::{default_dht_segment, insert_default_dht};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{
    Config as RunConfig, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Cases per target when `FACEGATE_FUZZ_CASES` is not set.
const DEFAULT_CASES: u32 = 2000;
/// Default seed (any fixed value; `FACEGATE_FUZZ_SEED` overrides it).
const DEFAULT_SEED: u64 = 0x0f0e_ca7e_2026_0010;
/// A case slower than this fails (debug build of facegate, optimised dependencies, busy CI).
const CASE_LIMIT: Duration = Duration::from_secs(20);
/// A case still running after this is a hang: the watchdog aborts the whole binary.
const HANG_LIMIT: Duration = Duration::from_secs(120);
const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Heap meter: the crate's counting allocator (tests/heap.rs).

// ---------------------------------------------------------------------------------------------
// The runner: fixed seed, bounded cases, time and heap per case, a hang watchdog.

thread_local! {
    /// Inside a fuzz run: print the first panic only (shrinking repeats it hundreds of times)
    /// and remember where the last one happened.
    static FUZZING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static PANICKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static LAST_PANIC: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !FUZZING.with(std::cell::Cell::get) {
                return default(info);
            }
            LAST_PANIC.with(|l| *l.borrow_mut() = info.to_string());
            if !PANICKED.with(|p| p.replace(true)) {
                default(info);
            }
        }));
    });
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn cases(weight: u32) -> u32 {
    let n =
        env_u64("FACEGATE_FUZZ_CASES").map_or(DEFAULT_CASES, |n| n.min(u64::from(u32::MAX)) as u32);
    (n / weight).max(1)
}

fn seed() -> u64 {
    env_u64("FACEGATE_FUZZ_SEED").unwrap_or(DEFAULT_SEED)
}

/// Shows at most `max` characters of a failing input.
fn shorten(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}... ({} characters)", &s[..cut], s.len())
}

/// Runs `test` on `cases(weight)` inputs from `strategy`, each within [`CASE_LIMIT`] and
/// `heap_limit` bytes of peak heap; panics with the minimal failing input and how to rerun.
fn fuzz<S>(
    target: &str,
    weight: u32,
    heap_limit: usize,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let cases = cases(weight);
    let seed = seed();
    let config = RunConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 512,
        max_local_rejects: cases.max(65_536),
        max_global_rejects: (cases / 4).max(1024),
        max_shrink_time: 120_000,
        ..RunConfig::default()
    };
    let rng_seed: [u8; 32] = Sha256::digest(format!("{seed}:{target}")).into();
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &rng_seed));

    let executions = AtomicU64::new(0);
    let running: Mutex<Option<Instant>> = Mutex::new(None);
    let done = AtomicBool::new(false);
    let slowest = Mutex::new(Duration::ZERO);
    let peak = AtomicU64::new(0);
    let started = Instant::now();
    install_panic_hook();
    FUZZING.with(|f| f.set(true));
    PANICKED.with(|p| p.set(false));
    let result = std::thread::scope(|s| {
        let watchdog = s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                std::thread::park_timeout(Duration::from_millis(500));
                let since = running
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .map(|t| t.elapsed());
                if since.is_some_and(|d| d > HANG_LIMIT) {
                    eprintln!(
                        "fuzz {target}: case {} has run for over {HANG_LIMIT:?}: a hang. Rerun \
                         with FACEGATE_FUZZ_SEED={seed} FACEGATE_FUZZ_CASES={} cargo test --test \
                         main fuzz::{target}",
                        executions.load(Ordering::Relaxed),
                        cases * weight
                    );
                    std::process::abort();
                }
            }
        });
        struct Clear<'a>(&'a Mutex<Option<Instant>>);
        impl Drop for Clear<'_> {
            fn drop(&mut self) {
                *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
        }
        let result = runner.run(&strategy, |value| {
            executions.fetch_add(1, Ordering::Relaxed);
            let t0 = Instant::now();
            *running.lock().unwrap_or_else(|e| e.into_inner()) = Some(t0);
            let clear = Clear(&running);
            let (r, heap) = heap::peak_of(|| test(value));
            drop(clear);
            let took = t0.elapsed();
            {
                let mut s = slowest.lock().unwrap_or_else(|e| e.into_inner());
                *s = (*s).max(took);
            }
            peak.fetch_max(heap as u64, Ordering::Relaxed);
            r?;
            prop_assert!(
                took <= CASE_LIMIT,
                "the case took {took:?}, over {CASE_LIMIT:?}"
            );
            prop_assert!(
                heap <= heap_limit,
                "the case's peak heap was {} MiB, over the {} MiB bound",
                heap / MIB,
                heap_limit / MIB
            );
            Ok(())
        });
        done.store(true, Ordering::Relaxed);
        watchdog.thread().unpark();
        result
    });
    FUZZING.with(|f| f.set(false));
    let last_panic = LAST_PANIC.with(|l| std::mem::take(&mut *l.borrow_mut()));
    eprintln!(
        "fuzz {target}: {} executions ({cases} cases) in {:.1} s, slowest case {:.1} ms, peak heap {:.1} MiB",
        executions.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        slowest.lock().unwrap_or_else(|e| e.into_inner()).as_secs_f64() * 1e3,
        peak.load(Ordering::Relaxed) as f64 / MIB as f64,
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, value)) => panic!(
            "fuzz {target}: {why}\nminimal input: {}\nlast panic: {}\nrerun: \
             FACEGATE_FUZZ_SEED={seed} FACEGATE_FUZZ_CASES={} cargo test --test main fuzz::{target}",
            shorten(format!("{value:?}"), 4000),
            if last_panic.is_empty() {
                "none"
            } else {
                &last_panic
            },
            cases * weight
        ),
        Err(TestError::Abort(why)) => panic!("fuzz {target}: aborted: {why}"),
    }
}

/// A scratch directory on tmpfs when there is one (each audit append syncs).
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new()
            .prefix("facegate-fuzz")
            .tempdir_in(shm)
        {
            return d;
        }
    }
    tempfile::Builder::new()
        .prefix("facegate-fuzz")
        .tempdir()
        .expect("tempdir")
}

// ---------------------------------------------------------------------------------------------
// Byte-level mutations of a seed corpus.

const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0x8000,
    0xfffe,
    0xffff,
    12_000,
    12_001,
    16_384,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 53,
    i64::MAX as u64,
    u64::MAX,
];

#[derive(Clone, Debug)]
enum Mut {
    Flip(Index, u8),
    Set(Index, u8),
    Num {
        at: Index,
        value: u64,
        width: u8,
        big_endian: bool,
    },
    Insert(Index, Vec<u8>),
    Delete(Index, u16),
    Truncate(Index),
    Duplicate(Index, u16),
    Splice {
        at: Index,
        seed: Index,
        from: Index,
        len: u16,
    },
}

fn mutation() -> impl Strategy<Value = Mut> {
    prop_oneof![
        4 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mut::Flip(i, b)),
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Mut::Set(i, v)),
        2 => (
            any::<Index>(),
            prop::sample::select(INTERESTING),
            prop::sample::select(&[1u8, 2, 4, 8][..]),
            any::<bool>()
        )
            .prop_map(|(at, value, width, big_endian)| Mut::Num { at, value, width, big_endian }),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..32))
            .prop_map(|(i, b)| Mut::Insert(i, b)),
        1 => (any::<Index>(), 1u16..256).prop_map(|(i, n)| Mut::Delete(i, n)),
        1 => any::<Index>().prop_map(Mut::Truncate),
        1 => (any::<Index>(), 1u16..512).prop_map(|(i, n)| Mut::Duplicate(i, n)),
        1 => (any::<Index>(), any::<Index>(), any::<Index>(), 1u16..512)
            .prop_map(|(at, seed, from, len)| Mut::Splice { at, seed, from, len }),
    ]
}

/// A position in `0..len` (0 when empty).
fn pos(i: &Index, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        i.index(len)
    }
}

fn apply(data: &mut Vec<u8>, m: &Mut, corpus: &[Vec<u8>]) {
    let len = data.len();
    match m {
        Mut::Flip(i, bit) if len > 0 => data[pos(i, len)] ^= 1 << bit,
        Mut::Set(i, v) if len > 0 => data[pos(i, len)] = *v,
        Mut::Num {
            at,
            value,
            width,
            big_endian,
        } => {
            let w = usize::from(*width);
            if len >= w {
                let p = pos(at, len - w + 1);
                let bytes = if *big_endian {
                    value.to_be_bytes()[8 - w..].to_vec()
                } else {
                    value.to_le_bytes()[..w].to_vec()
                };
                data[p..p + w].copy_from_slice(&bytes);
            }
        }
        Mut::Insert(i, bytes) => {
            let p = pos(i, len + 1);
            data.splice(p..p, bytes.iter().copied());
        }
        Mut::Delete(i, n) if len > 0 => {
            let p = pos(i, len);
            data.drain(p..(p + usize::from(*n)).min(len));
        }
        Mut::Truncate(i) => data.truncate(pos(i, len + 1)),
        Mut::Duplicate(i, n) if len > 0 => {
            let p = pos(i, len);
            let chunk = data[p..(p + usize::from(*n)).min(len)].to_vec();
            data.splice(p..p, chunk);
        }
        Mut::Splice {
            at,
            seed,
            from,
            len: n,
        } => {
            let other = &corpus[pos(seed, corpus.len())];
            if !other.is_empty() {
                let f = pos(from, other.len());
                let chunk = &other[f..(f + usize::from(*n)).min(other.len())];
                let p = pos(at, len + 1);
                data.splice(p..p, chunk.iter().copied());
            }
        }
        _ => {}
    }
}

/// One seed of a corpus and the mutations applied to it.
#[derive(Clone, Debug)]
struct Mutated {
    seed: Index,
    muts: Vec<Mut>,
}

fn mutated(max_muts: usize) -> impl Strategy<Value = Mutated> {
    (
        any::<Index>(),
        prop::collection::vec(mutation(), 0..=max_muts),
    )
        .prop_map(|(seed, muts)| Mutated { seed, muts })
}

impl Mutated {
    fn seed_of<'a>(&self, corpus: &'a [Vec<u8>]) -> &'a [u8] {
        &corpus[pos(&self.seed, corpus.len())]
    }

    fn bytes(&self, corpus: &[Vec<u8>]) -> Vec<u8> {
        let mut data = self.seed_of(corpus).to_vec();
        for m in &self.muts {
            apply(&mut data, m, corpus);
        }
        data
    }
}

// ---------------------------------------------------------------------------------------------
// Text (TOML) mutations: lines and values, deep nesting, huge numbers.

fn nasty_value() -> impl Strategy<Value = String> {
    let nest = prop::sample::select(&[2usize, 79, 80, 81, 200, 5_000, 100_000][..]);
    prop_oneof![
        prop::sample::select(
            &[
                "nan",
                "+inf",
                "-inf",
                "-0.0",
                "0",
                "-1",
                "1e308",
                "1e309",
                "5e-324",
                "9223372036854775807",
                "9223372036854775808",
                "-9223372036854775809",
                "18446744073709551616",
                "0x7fffffff",
                "0o777",
                "0b1",
                "1_000",
                "\"\"",
                "\" \"",
                "\"\\u0000\"",
                "\"\\uD800\"",
                "'''\n'''",
                "\"\"\"\n\"\"\"",
                "[]",
                "{}",
                "true",
                "1979-05-27T07:32:00Z",
                "1979-05-27T07:32:00.999999999-07:00",
                "9999-12-31T23:59:59Z",
                "0000-01-01T00:00:00Z",
                "07:32:00",
                "24:00:00",
                "1979-05-27",
                "\"/dev/zero\"",
                "\"../../etc/shadow\"",
                "[\"mon\", \"sun\", \"xyz\"]",
                "[{ days = [\"mon\"], from = \"07:00\", to = \"19:00\" }]",
            ][..]
        )
        .prop_map(str::to_string),
        nest.clone()
            .prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n))),
        nest.clone()
            .prop_map(|n| format!("{}1{}", "{ a = ".repeat(n), " }".repeat(n))),
        nest.prop_map(|n| format!("\"{}\"", "x".repeat(n * 10))),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        any::<i64>().prop_map(|i| i.to_string()),
        "\\PC{0,40}".prop_map(|s| format!("{s:?}")),
    ]
}

fn nasty_line() -> impl Strategy<Value = String> {
    let depth = prop::sample::select(&[1usize, 79, 80, 81, 1_000, 50_000][..]);
    prop_oneof![
        prop::sample::select(
            &[
                "[camera]",
                "[camera.extra]",
                "[[lock]]",
                "[[person]]",
                "[[gallery.person]]",
                "[gallery]\nsite = \"x\"",
                "schema = 1",
                "x = 1",
                "=",
                "[",
                "]]",
                "\"",
                "'''",
                "# comment",
                "\r",
                "\u{feff}",
                "a.b.c = 1",
            ][..]
        )
        .prop_map(str::to_string),
        depth
            .clone()
            .prop_map(|n| format!("[{}]", vec!["a"; n].join("."))),
        depth.prop_map(|n| format!("{} = 1", vec!["k"; n].join("."))),
        ("[a-z_]{1,12}", nasty_value()).prop_map(|(k, v)| format!("{k} = {v}")),
    ]
}

#[derive(Clone, Debug)]
enum TextOp {
    Bytes(Mut),
    DeleteLine(Index),
    DuplicateLine(Index),
    SwapLines(Index, Index),
    ReplaceValue(Index, String),
    InsertLine(Index, String),
}

fn text_op() -> impl Strategy<Value = TextOp> {
    prop_oneof![
        3 => mutation().prop_map(TextOp::Bytes),
        1 => any::<Index>().prop_map(TextOp::DeleteLine),
        1 => any::<Index>().prop_map(TextOp::DuplicateLine),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| TextOp::SwapLines(a, b)),
        3 => (any::<Index>(), nasty_value()).prop_map(|(i, v)| TextOp::ReplaceValue(i, v)),
        2 => (any::<Index>(), nasty_line()).prop_map(|(i, l)| TextOp::InsertLine(i, l)),
    ]
}

/// A seed text and the operations applied to it.
#[derive(Clone, Debug)]
struct TextCase {
    seed: Index,
    ops: Vec<TextOp>,
}

fn text_case(max_ops: usize) -> impl Strategy<Value = TextCase> {
    (
        any::<Index>(),
        prop::collection::vec(text_op(), 0..=max_ops),
    )
        .prop_map(|(seed, ops)| TextCase { seed, ops })
}

fn split_lines(data: &[u8]) -> Vec<Vec<u8>> {
    data.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
}

impl TextCase {
    fn bytes(&self, corpus: &[Vec<u8>]) -> Vec<u8> {
        let mut data = corpus[pos(&self.seed, corpus.len())].clone();
        for op in &self.ops {
            if let TextOp::Bytes(m) = op {
                apply(&mut data, m, corpus);
                continue;
            }
            let mut lines = split_lines(&data);
            let n = lines.len();
            match op {
                TextOp::DeleteLine(i) => {
                    lines.remove(pos(i, n));
                }
                TextOp::DuplicateLine(i) => {
                    let p = pos(i, n);
                    lines.insert(p, lines[p].clone());
                }
                TextOp::SwapLines(a, b) => lines.swap(pos(a, n), pos(b, n)),
                TextOp::ReplaceValue(i, v) => {
                    // The i-th line that assigns a value.
                    let with_eq: Vec<usize> =
                        (0..n).filter(|&k| lines[k].contains(&b'=')).collect();
                    if !with_eq.is_empty() {
                        let k = with_eq[pos(i, with_eq.len())];
                        let eq = lines[k].iter().position(|&b| b == b'=').unwrap_or(0);
                        lines[k].truncate(eq + 1);
                        lines[k].push(b' ');
                        lines[k].extend_from_slice(v.as_bytes());
                    }
                }
                TextOp::InsertLine(i, l) => lines.insert(pos(i, n + 1), l.as_bytes().to_vec()),
                TextOp::Bytes(_) => unreachable!(),
            }
            data = lines.join(&b'\n');
        }
        data
    }
}

// ---------------------------------------------------------------------------------------------
// Signed manifests, as tests/enroll.rs makes them.

const SITE: &str = "hq-front";
const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn admin_key() -> &'static SecretKey {
    static K: OnceLock<SecretKey> = OnceLock::new();
    K.get_or_init(|| SecretKey::generate().expect("keygen"))
}

fn other_key() -> &'static AdminKey {
    static K: OnceLock<AdminKey> = OnceLock::new();
    K.get_or_init(|| SecretKey::generate().expect("keygen").public())
}

fn manifest_text(version: u64, site: &str, people: &[(&str, &[&str])]) -> String {
    let mut s = format!(
        "schema = 1\nversion = {version}\nsite = \"{site}\"\ncreated = \"2026-11-30T08:00:00Z\"\n"
    );
    for (id, photos) in people {
        s += &format!("\n[[person]]\nid = \"{id}\"\nname = \"{id} name\"\nphotos = [");
        for p in *photos {
            s += &format!("{{ path = \"{p}\", sha256 = \"{SHA}\" }}, ");
        }
        s += "]\n";
    }
    s
}

fn manifest_corpus() -> &'static [Vec<u8>] {
    static C: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    C.get_or_init(|| {
        let mut c = vec![
            manifest_text(2, SITE, &[("alice", &["alice/1.jpg"])]),
            manifest_text(
                7,
                SITE,
                &[
                    ("obama", &["obama/1.jpg", "obama/2.jpg"]),
                    ("biden", &["biden/1.jpg"]),
                    ("alex.l@hq", &["alex/1.png"]),
                ],
            ),
            format!(
                "{}remove = [\"bob\", \"carol\"]\n\n[[person]]\nid = \"dave\"\nname = \"Dave \
                 Ö\"\nphotos = [{{ path = \"d/1.jpg\" }}]\nnot_before = \
                 \"2026-01-01T00:00:00Z\"\nnot_after = \"2027-06-30T00:00:00Z\"\nschedule = [{{ \
                 days = [\"mon\",\"tue\",\"wed\",\"thu\",\"fri\"], from = \"07:00\", to = \
                 \"19:00\" }}]\n",
                manifest_text(3, SITE, &[])
            ),
        ];
        // What `facegate bundle sign` writes (toml::to_string of a parsed manifest).
        let m = BundleManifest::parse(c[2].as_bytes(), Path::new("manifest.toml"))
            .expect("seed parses");
        c.push(toml::to_string(&m).expect("serialises"));
        c.into_iter().map(String::into_bytes).collect()
    })
}

fn timestamp() -> impl Strategy<Value = jiff::Timestamp> {
    (
        jiff::Timestamp::MIN.as_second()..=jiff::Timestamp::MAX.as_second(),
        0i32..1_000_000_000,
    )
        .prop_filter_map("in range", |(s, ns)| jiff::Timestamp::new(s, ns).ok())
}

fn civil_time() -> impl Strategy<Value = jiff::civil::Time> {
    (0i8..24, 0i8..60, 0i8..60, 0i32..1_000_000_000)
        .prop_map(|(h, m, s, ns)| jiff::civil::Time::new(h, m, s, ns).expect("valid time"))
}

fn window() -> impl Strategy<Value = Window> {
    let day = prop::sample::select(
        &[
            Day::Mon,
            Day::Tue,
            Day::Wed,
            Day::Thu,
            Day::Fri,
            Day::Sat,
            Day::Sun,
        ][..],
    );
    (prop::collection::vec(day, 0..8), civil_time(), civil_time())
        .prop_map(|(days, from, to)| Window { days, from, to })
}

/// Any manifest the data model can hold (not only valid ones: ids, schema and versions vary).
fn manifest() -> impl Strategy<Value = BundleManifest> {
    let id = prop_oneof![4 => "[A-Za-z0-9._@-]{1,64}", 1 => "(?s).{0,70}"];
    let photo = (
        prop_oneof!["[a-z0-9/._-]{1,40}", "(?s).{0,20}"],
        prop_oneof!["[0-9a-f]{64}", Just(String::new())],
    )
        .prop_map(|(path, sha256)| PhotoEntry { path, sha256 });
    let person = (
        id.clone(),
        "(?s).{0,40}",
        prop::collection::vec(photo, 0..4),
        prop::option::of(timestamp()),
        prop::option::of(timestamp()),
        prop::collection::vec(window(), 0..3),
    )
        .prop_map(
            |(id, name, photos, not_before, not_after, schedule)| PersonEntry {
                id,
                name,
                photos,
                not_before,
                not_after,
                schedule,
            },
        );
    (
        prop_oneof![8 => Just(1u32), 1 => any::<u32>()],
        prop_oneof![8 => 0..=i64::MAX as u64, 1 => any::<u64>()],
        prop_oneof![4 => "[a-z][a-z0-9-]{0,20}", 1 => "(?s).{0,12}"],
        timestamp(),
        prop::collection::vec(id, 0..4),
        prop::collection::vec(person, 0..5),
    )
        .prop_map(
            |(schema, version, site, created, remove, people)| BundleManifest {
                schema,
                version,
                site,
                created,
                remove,
                people,
            },
        )
}

/// A one-byte change somewhere in `bytes` (to a different value).
fn one_byte_change(bytes: &[u8], at: &Index, xor: u8) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let p = pos(at, b.len());
    b[p] ^= xor.max(1);
    b
}

fn check_manifest_parse(bytes: &[u8]) -> Result<(), TestCaseError> {
    let path = Path::new("/media/stick/facegate/manifest.toml");
    match BundleManifest::parse(bytes, path) {
        Ok(m) => {
            prop_assert_eq!(m.schema, 1);
            prop_assert!(!m.site.trim().is_empty());
            if let Err(e) = m.check_ids(path) {
                prop_assert!(!e.to_string().is_empty());
            }
            let _ = m.num_photos();
            // What `facegate bundle sign` would write must read back as the same manifest.
            if let Ok(text) = toml::to_string(&m) {
                let back = BundleManifest::parse(text.as_bytes(), path);
                prop_assert!(
                    back.as_ref().is_ok_and(|b| *b == m),
                    "re-serialised manifest reads back as {back:?}\n{text}"
                );
            }
        }
        Err(e) => {
            prop_assert!(matches!(e, EnrollError::Manifest { .. }), "{e:?}");
            prop_assert!(e.to_string().contains("manifest.toml"), "{e}");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Manifest and signature targets.

/// Issue 10 finding 15: any manifest the data model holds survives `toml::to_string` (what
/// `facegate bundle sign` writes) and `BundleManifest::parse` unchanged or is refused with a message;
/// signing it and verifying accepts, a one-byte change of the signed bytes is refused, and a
/// key that is not pinned is named.
#[test]
fn manifest_roundtrip_sign_verify() {
    let key = admin_key();
    let pinned = [key.public()];
    fuzz(
        "manifest_roundtrip_sign_verify",
        1,
        16 * MIB,
        (manifest(), any::<Index>(), any::<u8>()),
        |(m, at, xor)| {
            let Ok(text) = toml::to_string(&m) else {
                // Only a version beyond TOML's i64 cannot be written.
                prop_assert!(m.version > i64::MAX as u64);
                return Ok(());
            };
            let path = Path::new("manifest.toml");
            match BundleManifest::parse(text.as_bytes(), path) {
                Ok(back) => prop_assert_eq!(&back, &m),
                Err(e) => prop_assert!(
                    m.schema != 1 || m.site.trim().is_empty(),
                    "a manifest with schema 1 and a site is refused: {e}\n{text}"
                ),
            }
            let sig = key.sign(text.as_bytes(), "manifest.toml");
            let signer = sign::verify(text.as_bytes(), &sig, &pinned);
            prop_assert!(signer.is_ok_and(|k| k.key_id == key.key_id));
            let changed = one_byte_change(text.as_bytes(), &at, xor);
            let r = sign::verify(&changed, &sig, &pinned);
            prop_assert!(
                matches!(r, Err(EnrollError::Signature(_))),
                "a changed manifest verified: {r:?}"
            );
            let r = sign::verify(text.as_bytes(), &sig, std::slice::from_ref(other_key()));
            prop_assert!(matches!(r, Err(EnrollError::KeyNotPinned { .. })), "{r:?}");
            Ok(())
        },
    );
}

/// Issue 10 finding 15: mutated manifests (bytes, lines, values such as huge integers, NaN,
/// deep nesting and long strings) never panic `BundleManifest::parse`: it returns a manifest that
/// round-trips, or an error naming manifest.toml.
#[test]
fn manifest_parse_mutated() {
    let corpus = manifest_corpus();
    fuzz(
        "manifest_parse_mutated",
        1,
        64 * MIB,
        text_case(6),
        |case| check_manifest_parse(&case.bytes(corpus)),
    );
}

#[derive(Clone, Debug)]
enum SigOp {
    Bytes(Mut),
    /// Replace one character of the trusted comment's text by another printable one.
    TrustedComment(Index, char),
    SwapLines(Index, Index),
    DropLine(Index),
    AppendLine(String),
}

fn sig_op() -> impl Strategy<Value = SigOp> {
    prop_oneof![
        4 => mutation().prop_map(SigOp::Bytes),
        2 => (any::<Index>(), proptest::char::range('!', '~')).prop_map(|(i, c)| SigOp::TrustedComment(i, c)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| SigOp::SwapLines(a, b)),
        1 => any::<Index>().prop_map(SigOp::DropLine),
        1 => "(?s).{0,100}".prop_map(SigOp::AppendLine),
    ]
}

/// Issue 10 finding 15: a mutated `manifest.sig` never panics `sign::verify` or
/// `signature_key_id`; it is accepted only as the same signature (the trusted comment
/// unchanged), and any change of the trusted comment is refused.
#[test]
fn signature_mutated() {
    let key = admin_key();
    let pinned = [key.public(), other_key().clone()];
    let message = &manifest_corpus()[1];
    let original = key.sign(message, "manifest.toml");
    let trusted = |s: &str| s.lines().nth(2).map(str::to_string);
    fuzz(
        "signature_mutated",
        1,
        16 * MIB,
        prop::collection::vec(sig_op(), 1..5),
        |ops| {
            let mut bytes = original.clone().into_bytes();
            for op in &ops {
                let mut lines: Vec<Vec<u8>> = split_lines(&bytes);
                let n = lines.len();
                match op {
                    SigOp::Bytes(m) => {
                        let corpus = [bytes.clone()];
                        apply(&mut bytes, m, &corpus);
                        continue;
                    }
                    SigOp::TrustedComment(i, c) => {
                        let prefix = b"trusted comment: ".len();
                        if n > 2 && lines[2].len() > prefix {
                            let p = prefix + pos(i, lines[2].len() - prefix);
                            lines[2][p] = *c as u8;
                        }
                    }
                    SigOp::SwapLines(a, b) => lines.swap(pos(a, n), pos(b, n)),
                    SigOp::DropLine(i) => {
                        lines.remove(pos(i, n));
                    }
                    SigOp::AppendLine(l) => lines.push(l.as_bytes().to_vec()),
                }
                bytes = lines.join(&b'\n');
            }
            let _ = sign::signature_key_id(&String::from_utf8_lossy(&bytes));
            // The door refuses a signature file that is not UTF-8 before parsing it.
            let Ok(text) = String::from_utf8(bytes) else {
                return Ok(());
            };
            match sign::verify(message, &text, &pinned) {
                Ok(k) => {
                    prop_assert_eq!(k.key_id, key.key_id);
                    prop_assert_eq!(
                        trusted(&text),
                        trusted(&original),
                        "accepted with another trusted comment:\n{}",
                        text
                    );
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
            Ok(())
        },
    );
}

/// Issue 10 finding 15: mutated public keys (config `admin_keys`, `.pub` files) and secret key
/// files never panic the parsers; a damaged secret key file is refused or is the same key.
#[test]
fn keys_mutated() {
    let key = admin_key();
    let public = key.public();
    let secret_text = key.to_file_text();
    let corpus: Vec<Vec<u8>> = vec![
        public.base64.clone().into_bytes(),
        format!(
            "untrusted comment: minisign public key {}\n{}\n",
            public.id_hex(),
            public.base64
        )
        .into_bytes(),
        secret_text.clone().into_bytes(),
        other_key().base64.clone().into_bytes(),
    ];
    let dir = scratch();
    let file = dir.path().join("facegate.key");
    fuzz("keys_mutated", 2, 16 * MIB, mutated(4), |case| {
        let bytes = case.bytes(&corpus);
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(k) = AdminKey::parse(&text) {
            let bin = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &k.base64);
            prop_assert!(
                bin.as_ref()
                    .is_ok_and(|b| b.len() == 42 && &b[..2] == b"Ed" && b[2..10] == k.key_id),
                "{k:?}"
            );
        }
        std::fs::write(&file, &bytes).expect("write key");
        match SecretKey::from_file(&file) {
            Ok(sk) => {
                prop_assert_eq!(
                    &sk.public().base64,
                    &public.base64,
                    "a damaged key file gave another key"
                );
                let sig = sk.sign(b"m", "manifest.toml");
                prop_assert!(sign::verify(b"m", &sig, std::slice::from_ref(&public)).is_ok());
            }
            Err(e) => prop_assert!(
                e.to_string().contains("facegate.key") || matches!(e, EnrollError::Io { .. }),
                "error does not name the key file: {}",
                e
            ),
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Photos.

fn face_fixture(name: &str) -> Vec<u8> {
    std::fs::read(common::face(name)).expect("fixture")
}

fn encode(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

fn jpeg(img: &image::DynamicImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .expect("jpeg");
    out
}

/// `jpeg` without its DHT segments: what many UVC cameras send.
fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    let mut i = 2;
    while i + 4 <= jpeg.len() {
        let marker = jpeg[i + 1];
        if marker == 0xda {
            break;
        }
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if marker != 0xc4 {
            out.extend_from_slice(&jpeg[i..i + 2 + len]);
        }
        i += 2 + len;
    }
    out.extend_from_slice(&jpeg[i..]);
    out
}

/// `jpeg` with an EXIF APP1 segment carrying `orientation` (1-8) after SOI.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\0\x2a\0\0\0\x08\0\x01".to_vec();
    tiff.extend_from_slice(&[0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1]);
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let mut body = b"Exif\0\0".to_vec();
    body.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn small_face() -> &'static image::DynamicImage {
    static F: OnceLock<image::DynamicImage> = OnceLock::new();
    F.get_or_init(|| {
        let img =
            image::load_from_memory(&face_fixture("lin-manuel-miranda.png")).expect("fixture");
        img.resize_exact(96, 80, image::imageops::FilterType::Triangle)
    })
}

/// Small re-encodings of a fixture face (fast to decode, so most cases use them) and a few
/// whole fixture photos.
fn photo_corpus() -> &'static [Vec<u8>] {
    static C: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    C.get_or_init(|| {
        use image::ImageFormat as F;
        let img = small_face();
        let grey = image::DynamicImage::ImageLuma8(img.to_luma8());
        let rgba = image::DynamicImage::ImageRgba8(img.to_rgba8());
        let grey16 = image::DynamicImage::ImageLuma16(img.to_luma16());
        let j = jpeg(img, 75);
        vec![
            j.clone(),
            strip_dht(&j),
            with_exif_orientation(&j, 6),
            jpeg(&grey, 60),
            encode(img, F::Png),
            encode(&rgba, F::Png),
            encode(&grey16, F::Png),
            encode(img, F::Gif),
            encode(&grey, F::Pnm),
            face_fixture("orl_s1_1.pgm"),
            face_fixture("obama1.jpg"),
            face_fixture("alex-lacamoire.png"),
        ]
    })
}

/// Writes `w`x`h` into the image header (JPEG SOF, PNG IHDR with its CRC, GIF screen and
/// first image descriptor, PNM header). Returns false if no header was found.
fn set_dims(data: &mut Vec<u8>, w: u32, h: u32) -> bool {
    if data.starts_with(&[0xff, 0xd8]) {
        let (w, h) = (w.min(0xffff) as u16, h.min(0xffff) as u16);
        let mut i = 2;
        while i + 4 <= data.len() {
            if data[i] != 0xff {
                return false;
            }
            let marker = data[i + 1];
            match marker {
                0xff => i += 1,
                0xc0..=0xcf if !matches!(marker, 0xc4 | 0xc8 | 0xcc) => {
                    if i + 9 > data.len() {
                        return false;
                    }
                    data[i + 5..i + 7].copy_from_slice(&h.to_be_bytes());
                    data[i + 7..i + 9].copy_from_slice(&w.to_be_bytes());
                    return true;
                }
                0xda => return false,
                0x01 | 0xd0..=0xd9 => i += 2,
                _ => i += 2 + usize::from(u16::from_be_bytes([data[i + 2], data[i + 3]])),
            }
        }
        false
    } else if data.starts_with(b"\x89PNG\r\n\x1a\n") && data.len() >= 33 && &data[12..16] == b"IHDR"
    {
        data[16..20].copy_from_slice(&w.to_be_bytes());
        data[20..24].copy_from_slice(&h.to_be_bytes());
        fix_png_crcs(data);
        true
    } else if data.starts_with(b"GIF8") && data.len() >= 13 {
        let (w, h) = (w.min(0xffff) as u16, h.min(0xffff) as u16);
        data[6..8].copy_from_slice(&w.to_le_bytes());
        data[8..10].copy_from_slice(&h.to_le_bytes());
        // First image descriptor, after the global colour table and any extensions.
        let mut p = 13;
        if data[10] & 0x80 != 0 {
            p += 3 << ((data[10] & 7) + 1);
        }
        while p < data.len() && data[p] == 0x21 {
            p += 2;
            while p < data.len() && data[p] != 0 {
                p += usize::from(data[p]) + 1;
            }
            p += 1;
        }
        if p + 9 <= data.len() && data[p] == 0x2c {
            data[p + 5..p + 7].copy_from_slice(&w.to_le_bytes());
            data[p + 7..p + 9].copy_from_slice(&h.to_le_bytes());
        }
        true
    } else if data.len() > 2 && data[0] == b'P' && (b'1'..=b'7').contains(&data[1]) {
        // PNM: magic, width, height, maxval, one whitespace, pixels.
        let mut fields = 0;
        let mut i = 2;
        let mut in_token = false;
        while i < data.len() && fields < 3 {
            match data[i] {
                b'#' => {
                    while i < data.len() && data[i] != b'\n' {
                        i += 1;
                    }
                }
                c if c.is_ascii_whitespace() => {
                    if in_token {
                        fields += 1;
                        in_token = false;
                    }
                }
                _ => in_token = true,
            }
            i += 1;
        }
        if fields < 3 {
            return false;
        }
        let maxval = String::from_utf8_lossy(&data[2..i])
            .split_whitespace()
            .nth(2)
            .unwrap_or("255")
            .to_string();
        let mut out = format!("P{}\n{w} {h}\n{maxval}\n", data[1] as char).into_bytes();
        out.extend_from_slice(&data[i..]);
        *data = out;
        true
    } else {
        false
    }
}

/// Recomputes the CRC of every whole PNG chunk (so mutations reach the decoder's logic
/// instead of its checksum test).
fn fix_png_crcs(data: &mut [u8]) {
    let mut i = 8;
    while i + 12 <= data.len() {
        let len = u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]) as usize;
        let Some(end) = (i + 8).checked_add(len).filter(|&e| e + 4 <= data.len()) else {
            return;
        };
        let crc = common::crc32(&data[i + 4..end]);
        data[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        i = end + 4;
    }
}

#[derive(Clone, Debug)]
struct PhotoCase {
    base: Mutated,
    dims: Option<(u32, u32)>,
    fix_crcs: bool,
}

fn dimension(huge: bool) -> BoxedStrategy<u32> {
    let small =
        prop::sample::select(&[0u32, 1, 2, 3, 7, 8, 16, 17, 95, 96, 97, 255, 256, 1000][..]);
    if huge {
        prop_oneof![
            small,
            prop::sample::select(
                &[
                    4096u32,
                    12_000,
                    12_001,
                    16_384,
                    40_000,
                    65_535,
                    65_536,
                    100_000,
                    1 << 31,
                    u32::MAX
                ][..]
            ),
        ]
        .boxed()
    } else {
        small.boxed()
    }
}

fn photo_case(huge: bool) -> impl Strategy<Value = PhotoCase> {
    (
        mutated(4),
        prop::option::of((dimension(huge), dimension(huge))),
        any::<bool>(),
    )
        .prop_map(|(base, dims, fix_crcs)| PhotoCase {
            base,
            dims,
            fix_crcs,
        })
}

impl PhotoCase {
    fn bytes(&self, corpus: &[Vec<u8>]) -> Vec<u8> {
        let mut data = self.base.bytes(corpus);
        if let Some((w, h)) = self.dims {
            set_dims(&mut data, w, h);
        }
        if self.fix_crcs && data.starts_with(b"\x89PNG") {
            fix_png_crcs(&mut data);
        }
        data
    }
}

fn within_limits(w: u32, h: u32) -> bool {
    w <= MAX_SIDE && h <= MAX_SIDE && u64::from(w) * u64::from(h) <= MAX_PIXELS
}

fn check_decode(bytes: &[u8]) -> Result<Option<(u32, u32)>, TestCaseError> {
    let origin = Path::new("stick/facegate/alice/photo.jpg");
    match imageio::decode_rgb(bytes, origin) {
        Ok(img) => {
            let (w, h) = img.dimensions();
            prop_assert!(w > 0 && h > 0, "decoded an empty {w}x{h} image");
            prop_assert!(within_limits(w, h), "decoded {w}x{h}, over the limits");
            Ok(Some((w, h)))
        }
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(
                msg.contains("alice/photo.jpg"),
                "error does not name the photo: {msg}"
            );
            Ok(None)
        }
    }
}

/// Issue 10 finding 15: mutated photos (JPEG with and without Huffman tables or with EXIF
/// orientation, PNG, GIF, PNM; bit flips, truncation, splicing, PNG chunks with valid CRCs,
/// small header dimensions) decode within the limits or fail with an error naming the photo,
/// without panicking and within a bounded heap (the decoder's `max_alloc` plus the RGB copy).
#[test]
fn photo_decode_mutated() {
    let corpus = photo_corpus();
    for (i, seed) in corpus.iter().enumerate() {
        let decoded = imageio::decode_rgb(seed, Path::new("seed"));
        assert!(decoded.is_ok(), "seed {i} does not decode: {decoded:?}");
    }
    fuzz(
        "photo_decode_mutated",
        2,
        700 * MIB,
        photo_case(false),
        |case| check_decode(&case.bytes(corpus)).map(drop),
    );
}

/// Issue 10 findings 6 and 15: the enrollment decoder (`decode_rgb_within`, a JPEG over the
/// pixel budget decoded at 1/2-1/8 scale through jpeg-decoder) on the same mutated photos:
/// never more pixels than the budget, errors name the photo, no panic, bounded heap.
#[test]
fn photo_decode_within_budget_mutated() {
    const BUDGET: u64 = 40_000;
    let corpus = photo_corpus();
    fuzz(
        "photo_decode_within_budget_mutated",
        2,
        700 * MIB,
        photo_case(false),
        |case| {
            let origin = Path::new("stick/facegate/alice/photo.jpg");
            match imageio::decode_rgb_within(&case.bytes(corpus), origin, BUDGET) {
                Ok(img) => {
                    let (w, h) = img.dimensions();
                    prop_assert!(w > 0 && h > 0, "decoded an empty {w}x{h} image");
                    prop_assert!(
                        u64::from(w) * u64::from(h) <= BUDGET,
                        "decoded {w}x{h}, over the {BUDGET}-pixel budget"
                    );
                }
                Err(e) => {
                    let msg = e.to_string();
                    prop_assert!(
                        msg.contains("alice/photo.jpg"),
                        "error does not name the photo: {msg}"
                    );
                }
            }
            Ok(())
        },
    );
}

/// Issue 10 finding 15: a header claiming dimensions over the limits (JPEG SOF up to
/// 65535x65535, PNG IHDR up to 4294967295 with a valid CRC, GIF, PNM) is refused before
/// decoding: an error, a small heap, no time.
#[test]
fn photo_header_dims_over_limits_refused() {
    let corpus = photo_corpus();
    let strategy = (any::<Index>(), dimension(true), dimension(true))
        .prop_filter("over the limits", |(_, w, h)| !within_limits(*w, *h));
    fuzz(
        "photo_header_dims_over_limits_refused",
        2,
        32 * MIB,
        strategy,
        |(seed, w, h)| {
            let mut data = corpus[pos(&seed, corpus.len())].clone();
            prop_assume!(set_dims(&mut data, w, h));
            let t = Instant::now();
            let r = check_decode(&data)?;
            // JPEG and GIF headers hold 16 bits: 65536 and more become 65535.
            prop_assert!(r.is_none(), "a {w}x{h} header decoded as {r:?}");
            prop_assert!(
                t.elapsed() < Duration::from_secs(2),
                "took {:?} to refuse",
                t.elapsed()
            );
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Camera frames.

fn frame_corpus() -> &'static [Vec<u8>] {
    static C: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    C.get_or_init(|| {
        let img = small_face();
        let grey = image::DynamicImage::ImageLuma8(img.to_luma8());
        let j = jpeg(img, 80);
        vec![
            strip_dht(&j),
            j,
            strip_dht(&jpeg(&grey, 50)),
            with_exif_orientation(&strip_dht(&jpeg(img, 30)), 3),
        ]
    })
}

/// A JPEG-like marker soup: SOI, then segments with arbitrary markers, lengths and bodies.
fn marker_soup() -> impl Strategy<Value = Vec<u8>> {
    let segment = (
        prop_oneof![
            Just(0xc0u8),
            Just(0xc4),
            Just(0xda),
            Just(0xdb),
            Just(0xd9),
            Just(0xff),
            Just(0x01),
            0xd0u8..=0xd7,
            any::<u8>()
        ],
        prop_oneof![any::<u16>(), 0u16..8],
        prop::collection::vec(any::<u8>(), 0..64),
    );
    (
        prop::collection::vec(segment, 0..12),
        prop::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(segs, tail)| {
            let mut out = vec![0xff, 0xd8];
            for (marker, len, body) in segs {
                out.extend_from_slice(&[0xff, marker]);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&body);
            }
            out.extend_from_slice(&tail);
            out
        })
}

/// Issue 10 finding 15: `insert_default_dht` never panics on any bytes; it returns the input
/// unchanged or with exactly the standard DHT segment inserted before an SOS marker, and it is
/// idempotent (a frame that got the tables is left alone).
#[test]
fn mjpeg_huffman_insertion() {
    let corpus = frame_corpus();
    let input = prop_oneof![
        3 => mutated(6).prop_map(move |m| m.bytes(corpus)),
        2 => marker_soup(),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ];
    let dht = default_dht_segment();
    fuzz("mjpeg_huffman_insertion", 1, 16 * MIB, input, |bytes| {
        match insert_default_dht(&bytes) {
            Cow::Borrowed(b) => prop_assert_eq!(b, &bytes[..]),
            Cow::Owned(out) => {
                prop_assert_eq!(out.len(), bytes.len() + dht.len());
                let at = (0..=bytes.len()).find(|&i| {
                    out[..i] == bytes[..i]
                        && out[i..i + dht.len()] == dht[..]
                        && out[i + dht.len()..] == bytes[i..]
                });
                prop_assert!(
                    at.is_some_and(|i| bytes[i..].starts_with(&[0xff, 0xda])),
                    "DHT not inserted before SOS"
                );
                prop_assert!(
                    matches!(insert_default_dht(&out), Cow::Borrowed(_)),
                    "not idempotent"
                );
            }
        }
        Ok(())
    });
}

/// Issue 10 finding 15: mutated camera frames (no DHT, grey, EXIF; bit flips, truncation,
/// other header dimensions) never panic `jpeg_dimensions` or `decode_mjpeg`; a decoded frame
/// has the negotiated size and its header says so, and the heap stays within what the
/// negotiated size needs (at most 4096x4096: 48 MiB of RGB, 64 MiB for the decoder).
#[test]
fn mjpeg_decode_frames() {
    let corpus = frame_corpus();
    let strategy = (
        mutated(4),
        prop::option::of((dimension(false), dimension(false))),
        prop_oneof![
            Just(None),
            Just(Some((96u32, 80u32))),
            (1u32..=MAX_FRAME_SIDE, 1u32..=MAX_FRAME_SIDE).prop_map(Some)
        ],
    );
    fuzz(
        "mjpeg_decode_frames",
        1,
        160 * MIB,
        strategy,
        |(base, dims, negotiated)| {
            let mut frame = base.bytes(corpus);
            if let Some((w, h)) = dims {
                set_dims(&mut frame, w, h);
            }
            let header = jpeg_dimensions(&frame);
            // None: negotiate what the header claims (when a camera could), so that mutated
            // scan data reaches the decoder.
            let Some((w, h)) = negotiated.or_else(|| {
                header.clone().ok().filter(|&(w, h)| {
                    (1..=MAX_FRAME_SIDE).contains(&w) && (1..=MAX_FRAME_SIDE).contains(&h)
                })
            }) else {
                return Ok(());
            };
            match decode_mjpeg(&frame, w, h) {
                Ok(img) => {
                    prop_assert_eq!(img.dimensions(), (w, h));
                    prop_assert_eq!(header, Ok((w, h)));
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
            Ok(())
        },
    );
}

/// Issue 10 findings 10 and 15: a camera frame of a few KiB whose header claims another size
/// (up to 65535x65535) is refused by `decode_mjpeg` without allocating for that size. Before
/// finding 10 was fixed, a 5 KiB frame claiming 8192x4097 cost 96 MiB, and the 100 000-case
/// campaign found a mutated frame claiming 65535x32767 (a 6 GiB request).
#[test]
fn mjpeg_decode_hostile_dims() {
    let corpus = frame_corpus();
    let side = prop_oneof![
        prop::sample::select(&[0u32, 1, 95, 96, 97, 4096, 4097, 8192, 16_384, 30_000, 65_535][..]),
        any::<u16>().prop_map(u32::from),
    ];
    let strategy = (any::<Index>(), side.clone(), side, mutated(2));
    fuzz(
        "mjpeg_decode_hostile_dims",
        1,
        4 * MIB,
        strategy,
        |(seed, w, h, extra)| {
            let mut frame = corpus[pos(&seed, corpus.len())].clone();
            for m in &extra.muts {
                apply(&mut frame, m, corpus);
            }
            if !set_dims(&mut frame, w, h) || (w, h) == (96, 80) {
                return Ok(()); // the mutations left no frame header to lie in
            }
            let r = decode_mjpeg(&frame, 96, 80);
            prop_assert!(r.is_err(), "a frame claiming {w}x{h} decoded at 96x80");
            Ok(())
        },
    );
}

/// The minimal input the first campaign found (see `mjpeg_decode_hostile_dims`), kept as a
/// regression case: a small frame whose SOF claims 65535x32767.
#[test]
fn mjpeg_frame_claiming_65535x32767_is_refused() {
    let mut frame = frame_corpus()[0].clone();
    assert!(set_dims(&mut frame, 65_535, 32_767));
    let (r, heap) = heap::peak_of(|| decode_mjpeg(&frame, 640, 480));
    assert!(matches!(r, Err(FrameError::SizeMismatch { .. })), "{r:?}");
    assert!(heap < MIB, "{heap} bytes for a refused frame");
}

#[derive(Clone, Debug)]
struct YuyvCase {
    width: u32,
    height: u32,
    stride: u32,
    /// Bytes relative to what the size needs (negative: short).
    slack: i32,
    pixels: Vec<u8>,
    pad: u8,
}

fn yuyv_case() -> impl Strategy<Value = YuyvCase> {
    let side = prop_oneof![
        4 => 0u32..40,
        1 => prop::sample::select(&[640u32, 4095, 4096, 4097, 1 << 15, 1 << 16, (1 << 31) - 1, 1 << 31, (1 << 31) + 2, u32::MAX - 1, u32::MAX][..]),
    ];
    let stride = prop_oneof![
        2 => Just(0u32),
        2 => 0u32..100,
        1 => prop::sample::select(&[1u32 << 31, u32::MAX][..]),
        2 => Just(u32::MAX - 1), // replaced by width * 2 + small padding below
    ];
    (
        side.clone(),
        side,
        stride,
        -8i32..8,
        prop::collection::vec(any::<u8>(), 16..64),
        any::<u8>(),
    )
        .prop_map(|(width, height, stride, slack, pixels, pad)| YuyvCase {
            width,
            height,
            stride,
            slack,
            pixels,
            pad,
        })
}

/// Issue 10 finding 15: `yuyv_to_rgb` never panics for any width, height, stride and buffer
/// length (including sizes whose products overflow 32 and 64 bits); it converts exactly when
/// the size is usable (1..=4096 a side, even width) and the buffer holds the frame, neither
/// short nor long (checked with 128-bit arithmetic), and line padding does not change the
/// picture.
#[test]
fn yuyv_conversion() {
    fuzz("yuyv_conversion", 1, 16 * MIB, yuyv_case(), |c| {
        let (w, h) = (u128::from(c.width), u128::from(c.height));
        let stride = match c.stride {
            s if s == u32::MAX - 1 => c
                .width
                .saturating_mul(2)
                .saturating_add(u32::from(c.pad % 8)),
            s => s,
        };
        let row = if stride == 0 {
            w * 2
        } else {
            u128::from(stride)
        };
        let need = if h == 0 { 0 } else { row * (h - 1) + w * 2 };
        // Never build more than a few MiB of input: larger frames get a short buffer.
        let len = (need as i128 + i128::from(c.slack)).clamp(0, 256 << 10) as usize;
        let mut data: Vec<u8> = c.pixels.iter().copied().cycle().take(len).collect();
        let side = 1..=u128::from(MAX_FRAME_SIDE);
        let valid = side.contains(&w)
            && side.contains(&h)
            && w % 2 == 0
            && row >= w * 2
            && len as u128 >= need
            && len as u128 <= row * h;
        let out = yuyv_to_rgb(&data, c.width, c.height, stride);
        match &out {
            Ok(img) => {
                prop_assert!(valid, "converted an invalid frame");
                prop_assert_eq!(img.dimensions(), (c.width, c.height));
            }
            Err(e) => {
                prop_assert!(!valid, "refused a valid frame: {e}");
                prop_assert!(!e.to_string().is_empty());
            }
        }
        if let (Ok(img), true) = (&out, row > w * 2) {
            // Garbage in the padding must not show.
            for r in 0..c.height as usize {
                let start = r * row as usize + c.width as usize * 2;
                let end = ((r + 1) * row as usize).min(data.len());
                data[start.min(end)..end].fill(c.pad);
            }
            let again = yuyv_to_rgb(&data, c.width, c.height, stride);
            prop_assert!(
                again.as_ref().is_ok_and(|a| a == img),
                "padding changed the picture"
            );
        }
        Ok(())
    });
}

/// Issue 10 finding 15, found by `yuyv_conversion` before finding 10 was merged: a
/// 2147483650x4294967294 YUYV frame (stride 0) overflowed `stride * (height - 1)` even on 64
/// bits (a panic in debug builds; a wrapped size check, then out-of-bounds slicing, in
/// release). Kept as a regression case: such a frame is an error.
#[test]
fn yuyv_overflowing_sizes_are_errors() {
    for (w, h, stride) in [
        (2_147_483_650, 4_294_967_294, 0),
        (u32::MAX - 1, u32::MAX, u32::MAX),
        (2, u32::MAX, u32::MAX),
    ] {
        let r = yuyv_to_rgb(&[0; 16], w, h, stride);
        assert!(r.is_err(), "{w}x{h} stride {stride}: {r:?}");
    }
}

/// Issue 10 finding 15, found by `photo_decode_mutated`: a PGM whose header says 0x0 decoded
/// as an empty image (enrolment then reported "no face" instead of a broken file); an image
/// without pixels is now an error naming the file.
#[test]
fn photo_without_pixels_is_an_error() {
    for header in ["P5\n0 0\n255\n", "P5\n0 112\n255\n", "P6\n92 0\n255\n"] {
        let mut data = header.as_bytes().to_vec();
        data.extend_from_slice(&[7; 64]);
        let r = imageio::decode_rgb(&data, Path::new("empty.pgm"));
        assert!(
            r.as_ref()
                .is_err_and(|e| e.to_string().contains("empty.pgm")),
            "{header:?}: {r:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The audit log.

/// Fields as the daemon writes them, plus awkward strings and integers (floats that print
/// in few digits: finding 3's 17-digit floats have their own property below).
fn record_fields() -> Vec<(Event, Value)> {
    vec![
        (
            Event::Start,
            json!({ "version": "0.1.0", "pid": 4242, "config": "/etc/facegate/facegate.toml" }),
        ),
        (
            Event::Decision,
            json!({ "person": "alice", "distance": 0.25, "runner_up": ["bob", 0.5], "decision": "unlock", "reason": "3 of 5" }),
        ),
        (Event::Door, json!({ "person": "alice", "ms": 3000 })),
        (
            Event::Decision,
            json!({ "person": null, "decision": "deny", "reason": "unknown face \u{2028} \"quoted\" \\ Zoë 🚪", "track": -7 }),
        ),
        (
            Event::CameraLost,
            json!({ "error": "x".repeat(4096), "big": u64::MAX, "small": i64::MIN }),
        ),
        (
            Event::EnrollRejected,
            json!({ "version": 7, "enrolled": ["a", "b"], "removed": [], "nested": { "z": { "y": [1, [2, [3]]] } } }),
        ),
        (
            Event::EnrollImport,
            json!({ "version": 9, "key": "0123456789ABCDEF" }),
        ),
        (Event::AuditSealed, json!({ "head": 3 })),
        (Event::Stop, Value::Null),
    ]
}

fn audit_corpus() -> &'static [Vec<u8>] {
    static C: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    C.get_or_init(|| {
        let dir = scratch();
        let mut out = Vec::new();
        for n in [1usize, 3, 7, 12] {
            let path = dir.path().join(format!("audit-{n}.jsonl"));
            let mut log = AuditLog::open(&path).expect("open");
            let fields = record_fields();
            for i in 0..n {
                let (event, f) = &fields[i % fields.len()];
                log.append(*event, f.clone()).expect("append");
            }
            drop(log);
            let bytes = fixed_times(&std::fs::read(&path).expect("read"));
            std::fs::write(&path, &bytes).expect("write");
            let report = audit::verify(&path).expect("verify");
            assert!(
                report.is_intact() && report.records == n as u64,
                "seed log: {report:?}"
            );
            out.push(bytes);
        }
        out
    })
}

/// The parts `audit::render_line` takes, from a record line.
fn record_parts(line: &[u8]) -> Option<(u64, String, String, Value, String)> {
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(line) else {
        return None;
    };
    let text = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
    Some((
        m.get("seq")?.as_u64()?,
        text("time")?,
        text("event")?,
        m.get("fields")?.clone(),
        text("prev")?,
    ))
}

/// A log written by `AuditLog`, with fixed times and the chain recomputed (`render_line`): the
/// corpus (and so every run) does not depend on the clock.
fn fixed_times(log: &[u8]) -> Vec<u8> {
    let mut prev = audit::GENESIS_PREV.to_string();
    let mut out = Vec::new();
    for (i, line) in log
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let (seq, _, event, fields, _) = record_parts(line).expect("AuditLog wrote a record");
        let time = format!("2026-11-30T08:00:{:02}.000000Z", i % 60);
        let line = audit::render_line(seq, &time, &event, &fields, &prev);
        prev = hex::encode(Sha256::digest(line.as_bytes()));
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

#[derive(Clone, Debug)]
enum LineOp {
    Bytes(Mut),
    Delete(Index),
    Swap(Index, Index),
    Duplicate(Index),
    InsertGarbage(Index, Vec<u8>),
    /// Edit a record as an attacker can: new `seq` and/or a field, then recompute its `hash`.
    Rehash {
        line: Index,
        seq: Option<u64>,
        field: Option<String>,
    },
}

fn line_op() -> impl Strategy<Value = LineOp> {
    let seq = prop_oneof![
        prop::sample::select(
            &[
                0u64,
                1,
                2,
                3,
                (1 << 53) - 1,
                1 << 53,
                (1 << 53) + 1,
                i64::MAX as u64,
                u64::MAX - 1,
                u64::MAX
            ][..]
        ),
        any::<u64>(),
    ];
    prop_oneof![
        3 => mutation().prop_map(LineOp::Bytes),
        1 => any::<Index>().prop_map(LineOp::Delete),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| LineOp::Swap(a, b)),
        1 => any::<Index>().prop_map(LineOp::Duplicate),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 0..80)).prop_map(|(i, g)| LineOp::InsertGarbage(i, g)),
        2 => (any::<Index>(), prop::option::of(seq), prop::option::of("(?s).{0,20}"))
            .prop_map(|(line, seq, field)| LineOp::Rehash { line, seq, field }),
    ]
}

/// Re-hashes `line` after setting `seq` / a field (what anyone with write access can do).
fn rehash(line: &[u8], seq: Option<u64>, field: Option<&str>) -> Option<Vec<u8>> {
    let (old_seq, time, event, mut fields, prev) = record_parts(line)?;
    if let (Some(f), Value::Object(m)) = (field, &mut fields) {
        m.insert("person".into(), json!(f));
    }
    Some(audit::render_line(seq.unwrap_or(old_seq), &time, &event, &fields, &prev).into_bytes())
}

#[derive(Clone, Debug)]
struct AuditCase {
    seed: Index,
    ops: Vec<LineOp>,
}

fn audit_case(max_ops: usize) -> impl Strategy<Value = AuditCase> {
    (
        any::<Index>(),
        prop::collection::vec(line_op(), 0..=max_ops),
    )
        .prop_map(|(seed, ops)| AuditCase { seed, ops })
}

impl AuditCase {
    /// The mutated log, and whether an op forged a record (re-hashed it).
    fn bytes(&self, corpus: &[Vec<u8>]) -> (Vec<u8>, bool) {
        let mut data = corpus[pos(&self.seed, corpus.len())].clone();
        let mut forged = false;
        for op in &self.ops {
            if let LineOp::Bytes(m) = op {
                apply(&mut data, m, corpus);
                continue;
            }
            // Lines without the final newline's empty remainder.
            let terminated = data.last() == Some(&b'\n');
            let mut lines = split_lines(&data);
            if terminated {
                lines.pop();
            }
            let n = lines.len();
            match op {
                LineOp::Delete(i) if n > 0 => {
                    lines.remove(pos(i, n));
                }
                LineOp::Swap(a, b) if n > 0 => lines.swap(pos(a, n), pos(b, n)),
                LineOp::Duplicate(i) if n > 0 => {
                    let p = pos(i, n);
                    lines.insert(p, lines[p].clone());
                }
                LineOp::InsertGarbage(i, g) => lines.insert(
                    pos(i, n + 1),
                    g.iter().copied().filter(|&b| b != b'\n').collect(),
                ),
                LineOp::Rehash { line, seq, field } if n > 0 => {
                    let p = pos(line, n);
                    if let Some(new) = rehash(&lines[p], *seq, field.as_deref()) {
                        lines[p] = new;
                        forged = true;
                    }
                }
                _ => {}
            }
            data = lines.join(&b'\n');
            if terminated {
                data.push(b'\n');
            }
        }
        (data, forged)
    }
}

fn parsed_lines(bytes: &[u8]) -> Vec<Option<Value>> {
    bytes
        .split(|&b| b == b'\n')
        .map(|l| serde_json::from_slice(l).ok())
        .collect()
}

/// Issue 10 finding 15: `audit::verify` on any file built from a real log (byte mutations,
/// deleted, swapped, duplicated and garbage lines, records forged with a recomputed hash and
/// huge `seq`) never panics and never errs on a readable file; an untouched log is intact, and
/// a log it calls intact holds (unless a record was forged) the same records as a prefix of
/// the original.
#[test]
fn audit_verify_mutated() {
    let corpus = audit_corpus();
    let dir = scratch();
    let path = dir.path().join("audit.jsonl");
    fuzz("audit_verify_mutated", 2, 32 * MIB, audit_case(4), |case| {
        let (bytes, forged) = case.bytes(corpus);
        std::fs::write(&path, &bytes).expect("write");
        let facts = audit::scan(&path);
        prop_assert!(facts.is_ok(), "scan failed on a readable file: {facts:?}");
        let report = audit::verify(&path);
        prop_assert!(
            report.is_ok(),
            "verify failed on a readable file: {report:?}"
        );
        let report = report.unwrap();
        let lines = bytes.split(|&b| b == b'\n').count() as u64;
        prop_assert!(report.records <= lines);
        if let Some((line, problem)) = &report.first_bad {
            prop_assert!(*line >= 1 && *line <= lines);
            prop_assert!(!problem.to_string().is_empty());
        }
        let original = &corpus[pos(&case.seed, corpus.len())];
        if bytes == *original {
            prop_assert!(report.is_intact());
        }
        if report.is_intact() && !forged {
            let got = parsed_lines(&bytes);
            let want = parsed_lines(original);
            let n = report.records as usize;
            prop_assert!(
                got[..n] == want[..n.min(want.len())],
                "verify calls a changed log intact"
            );
        }
        Ok(())
    });
}

#[derive(Clone, Debug)]
enum TailKind {
    /// Random bytes without a newline: a torn write.
    Torn(Vec<u8>),
    /// A prefix of the genuine next record (a power cut mid-write), maybe whole.
    PrefixOfNext(Index),
    /// A long run of one byte without a newline.
    Long(u8, u32),
    /// Bytes that contain newlines (garbage lines after the last record).
    Lines(Vec<u8>),
}

fn tail_kind() -> impl Strategy<Value = TailKind> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 1..200).prop_map(|b| TailKind::Torn(b.into_iter().filter(|&c| c != b'\n').collect())),
        3 => any::<Index>().prop_map(TailKind::PrefixOfNext),
        1 => (any::<u8>(), 1u32..(2 << 20)).prop_map(|(b, n)| TailKind::Long(if b == b'\n' { b'x' } else { b }, n)),
        2 => prop::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 1..200).prop_map(TailKind::Lines),
    ]
}

/// Issue 10 finding 15: `AuditLog::open` on a real log with a damaged tail (torn writes of
/// any bytes, a prefix of the next record, a 2 MiB fragment, garbage lines, the last record
/// forged with a recomputed hash and any `seq`, including u64::MAX) never panics: it opens
/// (and a torn tail is recovered so that the chain verifies intact after the next append) or
/// refuses with `CorruptTail` naming the file and the fix.
#[test]
fn audit_reopen_damaged_tail() {
    let corpus = audit_corpus();
    let dir = scratch();
    fuzz(
        "audit_reopen_damaged_tail",
        2,
        48 * MIB,
        (
            any::<Index>(),
            prop::collection::vec(line_op(), 0..2),
            tail_kind(),
        ),
        |(seed, ops, tail)| {
            let path = dir.path().join("audit.jsonl");
            let _ = std::fs::remove_file(&path);
            let base = AuditCase {
                seed,
                ops: ops.clone(),
            };
            let (mut bytes, forged) = base.bytes(corpus);
            let intact_base = ops.is_empty();
            let n_base = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
            match &tail {
                TailKind::Torn(b) => bytes.extend_from_slice(b),
                TailKind::Long(b, n) => bytes.extend(std::iter::repeat_n(*b, *n as usize)),
                TailKind::Lines(b) => bytes.extend_from_slice(b),
                TailKind::PrefixOfNext(i) => {
                    if intact_base {
                        std::fs::write(&path, &bytes).expect("write");
                        let mut log = AuditLog::open(&path).expect("open an intact log");
                        log.append(
                            Event::Decision,
                            json!({ "person": "carol", "distance": 0.5 }),
                        )
                        .expect("append");
                        drop(log);
                        let full = std::fs::read(&path).expect("read");
                        // Cut anywhere after the old content, before the final newline.
                        let extra = full.len() - bytes.len();
                        bytes = full[..bytes.len() + pos(i, extra)].to_vec();
                    }
                }
            }
            std::fs::write(&path, &bytes).expect("write");
            let has_newline_tail = matches!(&tail, TailKind::Lines(b) if b.contains(&b'\n'));
            match AuditLog::open(&path) {
                Ok(mut log) => {
                    let (seq, _) = log.head();
                    let appended = log.append(
                        Event::Decision,
                        json!({ "person": "dave", "distance": 0.75 }),
                    );
                    prop_assert!(appended.is_ok(), "append after open: {appended:?}");
                    prop_assert_eq!(appended.unwrap(), seq + 1);
                    drop(log);
                    let report = audit::verify(&path).expect("verify");
                    if intact_base && !has_newline_tail {
                        prop_assert!(report.is_intact(), "after recovery: {report:?}");
                        prop_assert!(report.records > n_base);
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    prop_assert!(matches!(e, AuditError::CorruptTail { .. }), "{msg}");
                    prop_assert!(
                        msg.contains("audit.jsonl") && msg.contains("audit verify"),
                        "{msg}"
                    );
                    prop_assert!(
                        !(intact_base && !has_newline_tail && !forged),
                        "an intact log with a torn tail was refused: {msg}"
                    );
                }
            }
            Ok(())
        },
    );
}

/// Issue 10 finding 15, found by `audit_reopen_damaged_tail`: a last record forged with a
/// recomputed hash and `seq` = u64::MAX made `AuditLog::open` overflow (a panic in debug
/// builds, seq 0 next in release), and u64::MAX - 1 made the next `append` overflow after
/// writing. Such a log is now refused as a damaged tail; a plausible seq still continues.
#[test]
fn audit_forged_huge_seq_is_refused() {
    let dir = scratch();
    let path = dir.path().join("audit.jsonl");
    let forge = |seq: u64| {
        let mut lines = split_lines(&audit_corpus()[1]);
        lines.pop(); // after the final newline
        let last = lines.pop().expect("a record");
        lines.push(rehash(&last, Some(seq), None).expect("a record"));
        let mut bytes = lines.join(&b'\n');
        bytes.push(b'\n');
        std::fs::write(&path, bytes).expect("write");
    };
    for seq in [u64::MAX, u64::MAX - 1, audit::MAX_SEQ] {
        forge(seq);
        match AuditLog::open(&path) {
            Err(e @ AuditError::CorruptTail { .. }) => {
                assert!(e.to_string().contains(&seq.to_string()), "{e}")
            }
            other => panic!("seq {seq}: {other:?}"),
        }
    }
    forge(audit::MAX_SEQ - 2);
    let mut log = AuditLog::open(&path).expect("a plausible seq continues");
    assert_eq!(
        log.append(Event::Stop, Value::Null).expect("append"),
        audit::MAX_SEQ - 1
    );
}

/// Issue 10 findings 3 and 15: random f32 distances and f64 scores, written as the daemon
/// writes them, survive append -> reopen -> verify.
#[test]
fn audit_float_fields_survive_reopen_and_verify() {
    let dir = scratch();
    let values = prop::collection::vec((any::<f32>(), any::<f64>()), 1..6);
    fuzz(
        "audit_float_fields_survive_reopen_and_verify",
        1,
        16 * MIB,
        values,
        |values| {
            let path = dir.path().join("floats.jsonl");
            let _ = std::fs::remove_file(&path);
            let mut log = AuditLog::open(&path).expect("open");
            for (d, s) in &values {
                log.append(
                    Event::Decision,
                    json!({ "person": "alice", "distance": d, "score": s }),
                )
                .expect("append");
                drop(log);
                log = AuditLog::open(&path)
                    .map_err(|e| TestCaseError::fail(format!("reopen: {e}")))?;
            }
            let report = audit::verify(&path).expect("verify");
            prop_assert!(report.is_intact(), "{report:?}");
            prop_assert_eq!(report.records, values.len() as u64);
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// The configuration.

fn config_corpus() -> &'static [Vec<u8>] {
    static C: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    C.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
        let demo = std::fs::read(root.join("demo.toml")).expect("demo.toml");
        let shipped = std::fs::read(root.join("facegate.toml")).expect("facegate.toml");
        // The shipped file with a pinned key and a watch pattern (the signed-bundle setup).
        let signed = String::from_utf8(shipped.clone())
            .expect("utf-8")
            .replacen(
                "admin_keys = []",
                &format!(
                    "admin_keys = [\"{}\"]\nsite = \"fuzz-door-7\"\nwatch = [\"/media/*/*\"]",
                    admin_key().public().base64
                ),
                1,
            )
            .into_bytes();
        vec![demo, shipped, signed]
    })
}

/// Issue 10 finding 15: mutated configuration files (config/demo.toml, config/facegate.toml
/// and a signed-bundle variant; bytes, lines, values such as NaN, infinities, huge integers,
/// deep nesting, long dotted keys) never panic `Config::load`: it refuses with an error naming
/// the file, or loads a configuration whose checked values are in range and whose derived
/// settings (durations) can be built.
#[test]
fn config_load_mutated() {
    let corpus = config_corpus();
    let dir = scratch();
    let path = dir.path().join("facegate.toml");
    for seed in corpus {
        std::fs::write(&path, seed).expect("write");
        if let Err(e) = Config::load(&path) {
            panic!("seed config does not load: {e}");
        }
    }
    fuzz("config_load_mutated", 1, 64 * MIB, text_case(5), |case| {
        std::fs::write(&path, case.bytes(corpus)).expect("write");
        match Config::load(&path) {
            Ok(cfg) => {
                let c = &cfg.camera;
                prop_assert!((1..=120).contains(&c.fps));
                prop_assert!((64..=4096).contains(&c.width) && (64..=4096).contains(&c.height));
                prop_assert!(c.stall_timeout_s > 0.0 && c.stall_timeout_s <= 600.0);
                prop_assert!(
                    cfg.lock.unlock_ms > 0 && cfg.lock.unlock_ms <= cfg.lock.max_unlock_ms
                );
                prop_assert!(cfg.lock.max_unlock_ms <= facegate::config::HARD_MAX_UNLOCK_MS);
                prop_assert!(
                    cfg.policy.k >= 1 && cfg.policy.k <= cfg.policy.n && cfg.policy.n <= 100
                );
                let _ = cfg.policy_settings();
                let _ = cfg.model_options();
                let _ = Duration::from_secs_f64(c.stall_timeout_s);
                let _ = Duration::from_secs_f64(cfg.gallery.poll_s);
                for k in &cfg.gallery.admin_keys {
                    prop_assert!(AdminKey::parse(k).is_ok());
                }
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(
                    msg.contains("facegate.toml"),
                    "error does not name the file: {msg}"
                );
            }
        }
        Ok(())
    });
}

/// Issue 10 finding 15: `audit::verify` and `BundleManifest::parse` on arbitrary bytes (no seed at
/// all) never panic.
#[test]
fn arbitrary_bytes() {
    let dir = scratch();
    let path = dir.path().join("any.jsonl");
    fuzz(
        "arbitrary_bytes",
        1,
        16 * MIB,
        prop::collection::vec(
            prop_oneof![4 => any::<u8>(), 1 => Just(b'\n'), 1 => Just(b'{'), 1 => Just(b'"')],
            0..512,
        ),
        |bytes| {
            std::fs::write(&path, &bytes).expect("write");
            let report = audit::verify(&path);
            prop_assert!(report.is_ok());
            prop_assert!(audit::scan(&path).is_ok());
            check_manifest_parse(&bytes)?;
            check_decode(&bytes)?;
            let _ = Problem::TornTail.is_tampering();
            Ok(())
        },
    );
}
