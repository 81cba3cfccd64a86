//! Frame sources on the real replay fixture (tests/fixtures/clip/hamilton, 46 frames at 5 fps):
//! replay pacing, corrupt frames, and the supervisor's lost / restored / backoff behaviour.

use crate::heap;
use facegate::camera::replay::{FailingSource, Failure, Pacing, ReplaySource};
use facegate::camera::supervisor::{CameraEvent, Opener, Supervisor, SupervisorConfig};
use facegate::camera::{CameraError, FrameSource};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIP_FRAMES: u64 = 46;

/// Runs `f`; returns its result, the largest single allocation it made and how long it took.
fn measured<T>(f: impl FnOnce() -> T) -> (T, usize, Duration) {
    let t = Instant::now();
    let (r, largest) = heap::largest_of(f);
    let took = t.elapsed();
    (r, largest, took)
}

fn clip_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip/hamilton")
}

fn clip(pacing: Pacing, looping: bool) -> ReplaySource {
    ReplaySource::open(clip_dir(), pacing, looping).expect("fixture clip opens")
}

#[test]
fn replay_plays_the_clip_in_order_then_finishes() {
    let mut src = clip(Pacing::EveryFrame, false);
    assert_eq!(src.len() as u64, CLIP_FRAMES);
    for k in 0..CLIP_FRAMES {
        let f = src.next_frame(Duration::ZERO).unwrap().expect("a frame");
        assert_eq!(f.seq, k);
        assert_eq!(f.image.dimensions(), (640, 360));
    }
    assert!(matches!(
        src.next_frame(Duration::ZERO),
        Err(CameraError::Finished)
    ));
    assert!(matches!(
        src.next_frame(Duration::ZERO),
        Err(CameraError::Finished)
    ));
    assert!(src.describe().contains("46 frames"));
}

#[test]
fn replay_loops_with_increasing_seq() {
    let mut src = clip(Pacing::EveryFrame, true);
    let first = src.next_frame(Duration::ZERO).unwrap().unwrap();
    for _ in 1..CLIP_FRAMES {
        src.next_frame(Duration::ZERO).unwrap().unwrap();
    }
    let again = src.next_frame(Duration::ZERO).unwrap().unwrap();
    assert_eq!(again.seq, CLIP_FRAMES);
    assert!(again.image == first.image, "frame 46 is frame 0 again");
}

#[test]
fn realtime_replay_drops_frames_for_a_slow_consumer_and_never_queues() {
    let fps = 20.0;
    let period = Duration::from_secs_f64(1.0 / fps);
    let mut src = clip(Pacing::RealTime { fps }, false);
    let mut seqs = Vec::new();
    let t0 = Instant::now();
    loop {
        match src.next_frame(Duration::from_millis(500)) {
            Ok(Some(f)) => {
                // The frame handed out is the newest due one: it is never older than one period
                // (plus decode time), however slow the consumer.
                let age = f.captured.elapsed();
                assert!(
                    age < period + Duration::from_millis(60),
                    "frame {} is {age:?} old",
                    f.seq
                );
                seqs.push(f.seq);
                std::thread::sleep(Duration::from_millis(130)); // ~2.6 frame periods of work
            }
            Ok(None) => panic!("a 500 ms timeout always covers a 50 ms period"),
            Err(CameraError::Finished) => break,
            Err(e) => panic!("{e}"),
        }
    }
    let wall = t0.elapsed();
    // 46 frames at 20 fps = 2.3 s: the replay keeps wall-clock pace despite the slow consumer.
    assert!(wall < Duration::from_millis(2300 + 400), "took {wall:?}");
    assert!(seqs.windows(2).all(|w| w[1] > w[0]));
    assert!(
        seqs.windows(2).any(|w| w[1] - w[0] >= 2),
        "no frame was dropped: {seqs:?}"
    );
    assert!(
        seqs.len() < 25,
        "delivered {} of 46: frames were queued",
        seqs.len()
    );
    assert_eq!(
        src.delivered() + src.dropped(),
        CLIP_FRAMES,
        "each frame is delivered or dropped"
    );
    assert!(src.dropped() >= 20, "dropped {}", src.dropped());
}

#[test]
fn realtime_replay_waits_at_most_the_timeout() {
    let mut src = clip(Pacing::RealTime { fps: 2.0 }, false);
    let t = Instant::now();
    let f0 = src
        .next_frame(Duration::from_millis(50))
        .unwrap()
        .expect("frame 0 is due at once");
    assert_eq!(f0.seq, 0);
    assert!(t.elapsed() < Duration::from_millis(100));
    // Frame 1 is due at 500 ms: a 50 ms wait returns None after ~50 ms, not later.
    let t = Instant::now();
    assert!(src.next_frame(Duration::from_millis(50)).unwrap().is_none());
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(45) && waited < Duration::from_millis(120),
        "{waited:?}"
    );
    // A long timeout returns frame 1 when it is due (~500 ms after the first call).
    let f1 = src
        .next_frame(Duration::from_secs(2))
        .unwrap()
        .expect("frame 1");
    assert_eq!(f1.seq, 1);
    let at = f1.captured.duration_since(f0.captured);
    assert!(
        at >= Duration::from_millis(490) && at < Duration::from_millis(530),
        "{at:?}"
    );
}

/// Copies frames `range` of the clip into a temporary directory.
fn copy_frames(range: std::ops::Range<u32>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for k in range {
        let name = format!("{k:03}.jpg");
        std::fs::copy(clip_dir().join(&name), dir.path().join(&name)).unwrap();
    }
    dir
}

#[test]
fn corrupt_frames_are_skipped_not_fatal() {
    let dir = copy_frames(14..20);
    // 016: truncated JPEG (half the file); 017: not an image at all; plus a non-image file.
    let p16 = dir.path().join("016.jpg");
    let bytes = std::fs::read(&p16).unwrap();
    std::fs::write(&p16, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(dir.path().join("017.jpg"), b"this is not a JPEG").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();

    let mut src = ReplaySource::open(dir.path(), Pacing::EveryFrame, false).unwrap();
    assert_eq!(src.len(), 6);
    let mut seqs = Vec::new();
    loop {
        match src.next_frame(Duration::ZERO) {
            Ok(Some(f)) => seqs.push(f.seq),
            Ok(None) => panic!("every-frame pacing never idles"),
            Err(CameraError::Finished) => break,
            Err(e) => panic!("a corrupt frame must not be fatal: {e}"),
        }
    }
    assert_eq!(seqs, vec![0, 1, 4, 5]);
    assert_eq!(src.corrupt(), 2);
}

#[test]
fn unusable_replay_directories_are_config_errors_naming_the_fix() {
    let empty = tempfile::tempdir().unwrap();
    match ReplaySource::open(empty.path(), Pacing::EveryFrame, false) {
        Err(CameraError::Config(m)) => assert!(m.contains("extract_clip.sh"), "{m}"),
        other => panic!("{other:?}"),
    }
    match ReplaySource::open(empty.path().join("missing"), Pacing::EveryFrame, false) {
        Err(CameraError::Config(m)) => assert!(m.contains("missing"), "{m}"),
        other => panic!("{other:?}"),
    }
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(bad.path().join("a.jpg"), b"garbage").unwrap();
    std::fs::write(bad.path().join("b.png"), b"garbage").unwrap();
    let mut src = ReplaySource::open(bad.path(), Pacing::EveryFrame, true).unwrap();
    assert!(matches!(
        src.next_frame(Duration::ZERO),
        Err(CameraError::Config(_))
    ));
    assert!(ReplaySource::open(clip_dir(), Pacing::RealTime { fps: 0.0 }, false).is_err());
}

fn fast_config() -> SupervisorConfig {
    SupervisorConfig {
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        stall_timeout: Duration::from_millis(300),
    }
}

/// Polls until `stop` says so or 10 s pass (a hang fails the test), checking each poll returns
/// within its timeout plus decode slack.
fn drive(
    sup: &mut Supervisor,
    timeout: Duration,
    mut stop: impl FnMut(&CameraEvent) -> bool,
) -> Vec<String> {
    let mut log = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        let t = Instant::now();
        let ev = sup.poll(timeout);
        let took = t.elapsed();
        assert!(
            took < timeout + Duration::from_millis(60),
            "poll took {took:?} for {timeout:?}: {ev:?}"
        );
        log.push(match &ev {
            CameraEvent::Frame(f) => format!("F{}", f.seq),
            CameraEvent::Idle => "I".into(),
            CameraEvent::Lost(_) => "L".into(),
            CameraEvent::Restored => "R".into(),
            CameraEvent::Finished => "E".into(),
        });
        if stop(&ev) {
            return log;
        }
    }
    panic!("supervisor did not reach the expected event in 10 s: {log:?}");
}

#[test]
fn supervisor_reports_lost_then_restored_after_an_unplug() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let open: Opener = Box::new(move || {
        let n = c.fetch_add(1, Ordering::SeqCst);
        match n {
            // first camera: 3 frames, then unplugged
            0 => Ok(Box::new(FailingSource::lost_after(
                Box::new(clip(Pacing::EveryFrame, true)),
                3,
            )) as Box<dyn FrameSource>),
            // still unplugged for two reopen attempts
            1 | 2 => Err(CameraError::Lost("/dev/video0: no such device".into())),
            _ => Ok(Box::new(clip(Pacing::EveryFrame, true)) as Box<dyn FrameSource>),
        }
    });
    let mut sup = Supervisor::new(open, fast_config());
    let mut frames_after = 0;
    let mut restored = false;
    let log = drive(&mut sup, Duration::from_millis(40), |ev| {
        if matches!(ev, CameraEvent::Restored) {
            restored = true;
        }
        if restored && matches!(ev, CameraEvent::Frame(_)) {
            frames_after += 1;
        }
        frames_after == 2
    });
    let compact: Vec<&str> = log
        .iter()
        .map(String::as_str)
        .filter(|s| *s != "I")
        .collect();
    assert_eq!(compact, ["F0", "F1", "F2", "L", "R", "F0", "F1"], "{log:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(sup.losses(), 1);
    assert!(sup.is_up());
}

#[test]
fn supervisor_backoff_doubles_to_its_cap_and_poll_never_hangs() {
    let attempts = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let a = attempts.clone();
    let open: Opener = Box::new(move || {
        a.lock().unwrap().push(Instant::now());
        Err(CameraError::Lost("/dev/video0: no such device".into()))
    });
    let mut sup = Supervisor::new(open, fast_config());
    let t0 = Instant::now();
    let mut lost = 0;
    let mut polls = 0;
    while t0.elapsed() < Duration::from_millis(1500) {
        let t = Instant::now();
        match sup.poll(Duration::from_millis(30)) {
            CameraEvent::Lost(m) => {
                lost += 1;
                assert!(m.contains("/dev/video0"));
            }
            CameraEvent::Idle => {}
            other => panic!("{other:?}"),
        }
        polls += 1;
        assert!(
            t.elapsed() < Duration::from_millis(30 + 30),
            "poll took {:?}",
            t.elapsed()
        );
    }
    assert_eq!(lost, 1, "Lost is reported once per outage");
    let times = attempts.lock().unwrap().clone();
    let gaps: Vec<u128> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    // 50, 100, 200, 200, ... ms (each >= its backoff, and not much later: polls are 30 ms).
    let expected = [50u128, 100, 200, 200, 200];
    assert!(gaps.len() >= expected.len(), "gaps {gaps:?}");
    for (g, e) in gaps.iter().zip(expected) {
        assert!(*g >= e && *g < e + 45, "gaps {gaps:?}");
    }
    assert!(polls > 30, "polls return at their timeout ({polls})");
}

#[test]
fn supervisor_treats_a_stalled_camera_as_lost_and_reopens_it() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let open: Opener = Box::new(move || {
        let inner = Box::new(clip(Pacing::EveryFrame, true));
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            Ok(Box::new(FailingSource::new(inner, 2, Failure::Stall)) as Box<dyn FrameSource>)
        } else {
            Ok(inner as Box<dyn FrameSource>)
        }
    });
    let mut sup = Supervisor::new(open, fast_config());
    let t0 = Instant::now();
    let mut lost_at = None;
    let log = drive(&mut sup, Duration::from_millis(50), |ev| {
        if matches!(ev, CameraEvent::Lost(m) if m.contains("stalled")) {
            lost_at = Some(t0.elapsed());
        }
        matches!(ev, CameraEvent::Frame(_)) && lost_at.is_some()
    });
    let compact: Vec<&str> = log
        .iter()
        .map(String::as_str)
        .filter(|s| *s != "I")
        .collect();
    assert_eq!(compact, ["F0", "F1", "L", "R", "F0"], "{log:?}");
    let lost_at = lost_at.unwrap();
    assert!(
        lost_at >= Duration::from_millis(300) && lost_at < Duration::from_millis(450),
        "{lost_at:?}"
    );
}

#[test]
fn supervisor_reports_the_end_of_a_replay() {
    let open: Opener =
        Box::new(|| Ok(Box::new(clip(Pacing::EveryFrame, false)) as Box<dyn FrameSource>));
    let mut sup = Supervisor::new(open, fast_config());
    let log = drive(&mut sup, Duration::from_millis(40), |ev| {
        matches!(ev, CameraEvent::Finished)
    });
    assert_eq!(log.len() as u64, CLIP_FRAMES + 1);
    assert!(matches!(sup.poll(Duration::ZERO), CameraEvent::Finished));
}

/// Decode cost per 640x480 frame (dev profile). Run with
/// `cargo test --test main camera::decode_timings -- --ignored --nocapture`.
#[test]
#[ignore]
fn decode_timings() {
    use facegate::camera::decode::{decode_mjpeg, yuyv_to_rgb};
    let img = facegate::imageio::load_rgb(&clip_dir().join("025.jpg")).unwrap();
    let img = image::imageops::resize(&img, 640, 480, image::imageops::FilterType::Triangle);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80)
        .encode_image(&img)
        .unwrap();
    // Any plausible YUYV content: the loop's cost does not depend on it.
    let yuyv: Vec<u8> = img
        .as_raw()
        .iter()
        .cycle()
        .take(640 * 480 * 2)
        .copied()
        .collect();
    let time = |f: &mut dyn FnMut()| {
        let n = 100;
        let mut best = f64::MAX;
        let t = Instant::now();
        for _ in 0..n {
            let s = Instant::now();
            f();
            best = best.min(s.elapsed().as_secs_f64());
        }
        (best * 1e3, t.elapsed().as_secs_f64() * 1e3 / n as f64)
    };
    let (b, m) = time(&mut || {
        std::hint::black_box(yuyv_to_rgb(&yuyv, 640, 480, 0).unwrap());
    });
    println!("YUYV->RGB 640x480: best {b:.2} ms, mean {m:.2} ms");
    let (b, m) = time(&mut || {
        std::hint::black_box(decode_mjpeg(&jpeg, 640, 480).unwrap());
    });
    println!(
        "MJPEG decode 640x480 ({} KB): best {b:.2} ms, mean {m:.2} ms",
        jpeg.len() / 1024
    );
}

/// A real 640x480 camera-like frame (a clip frame resized) and its JPEG encoding.
fn frame_640x480() -> (image::RgbImage, Vec<u8>) {
    let img = facegate::imageio::load_rgb(&clip_dir().join("025.jpg")).unwrap();
    let img = image::imageops::resize(&img, 640, 480, image::imageops::FilterType::Triangle);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80)
        .encode_image(&img)
        .unwrap();
    (img, jpeg)
}

/// Rewrites the size in a JPEG's SOF0 frame header.
fn with_sof_size(jpeg: &[u8], width: u16, height: u16) -> Vec<u8> {
    let mut out = jpeg.to_vec();
    let i = out
        .windows(2)
        .position(|w| w == [0xff, 0xc0])
        .expect("a baseline frame header");
    out[i + 5..i + 7].copy_from_slice(&height.to_be_bytes());
    out[i + 7..i + 9].copy_from_slice(&width.to_be_bytes());
    out
}

/// Issue 10, finding 10: a hostile camera's MJPEG frame claiming 65535x65535 (old code
/// allocated 65535 * 65535 * 3 = 12.9 GB from the header) is refused from its header, fast and
/// without any large allocation; so is any other size than the negotiated one, and a frame
/// with two frame headers. Correct frames still decode, to the same pixels as a plain decode.
#[test]
fn mjpeg_frames_of_another_size_are_refused_before_allocating() {
    use facegate::camera::decode::{decode_mjpeg, jpeg_dimensions, FrameError};
    let (_, jpeg) = frame_640x480();
    assert_eq!(jpeg_dimensions(&jpeg), Ok((640, 480)));

    let (ok, _, _) = measured(|| decode_mjpeg(&jpeg, 640, 480));
    let ok = ok.expect("a correct frame decodes");
    assert!(ok == image::load_from_memory(&jpeg).unwrap().into_rgb8());

    for (w, h) in [(65535, 65535), (1280, 720), (640, 481), (0, 480)] {
        let hostile = with_sof_size(&jpeg, w, h);
        let (r, largest, took) = measured(|| decode_mjpeg(&hostile, 640, 480));
        assert_eq!(
            r.unwrap_err(),
            FrameError::SizeMismatch {
                got_width: u32::from(w),
                got_height: u32::from(h),
                width: 640,
                height: 480
            }
        );
        assert!(largest < 4096, "{w}x{h}: allocated {largest} bytes");
        assert!(took < Duration::from_millis(50), "{w}x{h}: took {took:?}");
    }
    // a frame size the door never negotiates is refused as such
    let hostile = with_sof_size(&jpeg, 65535, 65535);
    let (r, largest, _) = measured(|| decode_mjpeg(&hostile, 65535, 65535));
    assert!(matches!(r, Err(FrameError::BadSize { .. })), "{r:?}");
    assert!(largest < 4096);
    // two frame headers (one to show the scan, one for the decoder) are refused
    let sof = jpeg.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
    let len = usize::from(u16::from_be_bytes([jpeg[sof + 2], jpeg[sof + 3]]));
    let mut twice = jpeg[..sof + 2 + len].to_vec();
    twice.extend_from_slice(&with_sof_size(&jpeg, 65535, 65535)[sof..]);
    let r = decode_mjpeg(&twice, 640, 480);
    assert!(
        matches!(&r, Err(FrameError::Corrupt(why)) if why.contains("more than one")),
        "{r:?}"
    );
    // garbage and truncated headers are refused, not panics
    for bad in [
        &b""[..],
        b"\xff\xd8",
        b"\xff\xd8\xff\xc0\xff\xff",
        &jpeg[..sof + 6],
    ] {
        assert!(matches!(
            decode_mjpeg(bad, 640, 480),
            Err(FrameError::Corrupt(_))
        ));
    }
}

/// Issue 10, finding 10: YUYV size arithmetic is checked and the buffer must be the
/// negotiated frame: short or long buffers and impossible sizes (whose products overflow a
/// 32-bit `usize`) are refused without allocating; a correct frame decodes.
#[test]
fn yuyv_frames_of_the_wrong_length_are_refused() {
    use facegate::camera::decode::{yuyv_to_rgb, FrameError};
    let (w, h) = (640u32, 480u32);
    let frame: Vec<u8> = [16u8, 128, 235, 128].repeat((w * h / 2) as usize);
    let (img, _, _) = measured(|| yuyv_to_rgb(&frame, w, h, 0));
    let img = img.expect("a correct frame decodes");
    assert_eq!(img.dimensions(), (w, h));
    assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
    assert_eq!(img.get_pixel(1, 0).0, [255, 255, 255]);

    let (r, largest, _) = measured(|| yuyv_to_rgb(&frame[..frame.len() - 1], w, h, 0));
    assert!(matches!(r, Err(FrameError::Truncated { .. })), "{r:?}");
    assert!(largest < 4096);
    let mut long = frame.clone();
    long.push(0);
    let (r, largest, _) = measured(|| yuyv_to_rgb(&long, w, h, 0));
    assert!(matches!(r, Err(FrameError::Oversized { .. })), "{r:?}");
    assert!(largest < 4096);
    // a padded stride: stride * height bytes is a whole frame, one more is not
    let stride = w * 2 + 64;
    let padded = vec![128u8; (stride * h) as usize];
    assert!(yuyv_to_rgb(&padded, w, h, stride).is_ok());
    assert!(yuyv_to_rgb(&padded[..padded.len() - 65], w, h, stride).is_err());
    // sizes whose products overflow (32-bit usize too) or exceed the frame limit
    for (w, h, stride) in [
        (u32::MAX - 1, u32::MAX, 0),
        (65534, 65535, 0),
        (4096, 4096, u32::MAX),
        (3, 2, 0),
        (0, 480, 0),
    ] {
        let (r, largest, _) = measured(|| yuyv_to_rgb(&frame, w, h, stride));
        assert!(
            matches!(
                r,
                Err(FrameError::BadSize { .. } | FrameError::Truncated { .. })
            ),
            "{w}x{h} stride {stride}: {r:?}"
        );
        assert!(largest < 4096, "{w}x{h}: allocated {largest}");
    }
}

/// Issue 11 item 7: `[camera] format` is "auto" or one camera pixel format (one type,
/// `camera::decode::PixelFormat`); anything else is refused with the choices.
#[test]
fn camera_format_is_auto_or_one_pixel_format() {
    use facegate::camera::decode::PixelFormat;
    use facegate::config::Config;
    let parse = |format: Option<&str>| {
        let format = format.map_or(String::new(), |f| format!("format = \"{f}\"\n"));
        let text = format!(
            "[camera]\nsource = \"v4l2\"\n{format}[gallery]\nphotos_dir = \"staff\"\n\
             [lock]\nbackend = \"simulated\"\nsafe_state = \"locked\"\n\
             [audit]\npath = \"audit.jsonl\"\n"
        );
        Config::parse(&text, std::path::Path::new("facegate.toml")).map(|c| c.camera)
    };
    assert_eq!(parse(Some("auto")).unwrap().format.requested(), None);
    assert_eq!(
        parse(Some("yuyv")).unwrap().format.requested(),
        Some(PixelFormat::Yuyv)
    );
    assert_eq!(
        parse(Some("mjpeg")).unwrap().format.requested(),
        Some(PixelFormat::Mjpeg)
    );
    let default = parse(None).unwrap();
    assert_eq!(default.format.requested(), None, "the default is auto");
    let e = parse(Some("h264")).unwrap_err().to_string();
    assert!(
        e.contains("h264") && e.contains("\"auto\", \"mjpeg\" or \"yuyv\""),
        "{e}"
    );
}
