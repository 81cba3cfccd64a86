//! Converts images (e.g. the demo clip, `tests/fixtures/clip/hamilton/*.jpg`) into raw frames for
//! the VM test's "face" check (tools/vm-test.sh, tools/vm/README.md): packed YUYV 4:2:2, BT.601
//! limited range (what `facegate::camera::decode::yuyv_to_rgb` reads back), WIDTH x HEIGHT, the
//! picture centred unscaled on black (faces keep their size in pixels, so the detector and the
//! quality gates see what they see in the replay demo). vivid's video output takes these frames
//! and, looped, its capture device delivers them to facegate through the V4L2 driver.
//!
//! Usage: `vm_frames WIDTH HEIGHT OUT_DIR IMAGE...` writes OUT_DIR/<image stem>.yuv for each.
use std::path::{Path, PathBuf};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("vm_frames: {e}");
        std::process::exit(2);
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let usage = "usage: vm_frames WIDTH HEIGHT OUT_DIR IMAGE...";
    if args.len() < 4 {
        return Err(usage.into());
    }
    let dim = |s: &str| -> Result<u32, String> {
        s.parse::<u32>()
            .ok()
            .filter(|n| *n > 0 && n % 2 == 0)
            .ok_or_else(|| format!("{s}: WIDTH and HEIGHT must be even positive numbers ({usage})"))
    };
    let (w, h) = (dim(&args[0])?, dim(&args[1])?);
    let out = PathBuf::from(&args[2]);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    for src in &args[3..] {
        let src = Path::new(src);
        let img = image::open(src)
            .map_err(|e| format!("{}: {e}", src.display()))?
            .to_rgb8();
        if img.width() > w || img.height() > h {
            return Err(format!(
                "{}: {}x{} does not fit in {w}x{h} (frames are centred, not scaled)",
                src.display(),
                img.width(),
                img.height()
            ));
        }
        let stem = src.file_stem().unwrap_or_default().to_string_lossy();
        let dst = out.join(format!("{stem}.yuv"));
        std::fs::write(&dst, to_yuyv(&img, w, h)).map_err(|e| format!("{}: {e}", dst.display()))?;
    }
    Ok(())
}

/// `img` centred on a black `w` x `h` frame, as YUYV (chroma averaged over each pixel pair).
fn to_yuyv(img: &image::RgbImage, w: u32, h: u32) -> Vec<u8> {
    let (x0, y0) = ((w - img.width()) / 2, (h - img.height()) / 2);
    let rgb = |x: u32, y: u32| -> [f32; 3] {
        match (x.checked_sub(x0), y.checked_sub(y0)) {
            (Some(ix), Some(iy)) if ix < img.width() && iy < img.height() => {
                img.get_pixel(ix, iy).0.map(f32::from)
            }
            _ => [0.0; 3],
        }
    };
    let yuv = |[r, g, b]: [f32; 3]| {
        (
            16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0,
            128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0,
            128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0,
        )
    };
    let q = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    let mut out = Vec::with_capacity((w * h * 2) as usize);
    for y in 0..h {
        for x in (0..w).step_by(2) {
            let (ya, ua, va) = yuv(rgb(x, y));
            let (yb, ub, vb) = yuv(rgb(x + 1, y));
            out.extend_from_slice(&[q(ya), q((ua + ub) / 2.0), q(yb), q((va + vb) / 2.0)]);
        }
    }
    out
}
