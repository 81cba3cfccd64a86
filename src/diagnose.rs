//! The installer's view of a camera (`facegate camera check`, issue 13 item 7): every face in a
//! frame, measured against the door's quality gates, matched against the gallery, and drawn.
//!
//! ```text
//!   frame ─> frame::evidence (the door's own path: largest face, gates, match, liveness)
//!         │        └─> policy::verdict::classify ─> the door's frame verdict
//!         └─> every detected face: landmarks, quality, brightness, [gates pass] nearest person
//!                                                  ─> FrameCheck ─> summary line, reasons, PNG
//! ```
//!
//! The door's face (the one [`DOOR_PICK`] takes) is judged by the door's own per-frame path, so
//! the verdict shown is the one the door would count; the other faces are measured with the same
//! stages (they are what the door would see if that person stood nearest). A gate's pass or fail
//! comes from [`PolicySettings::quality_gate`] itself (each gate judged alone, the others given
//! passing values), so the picture can never disagree with the door.
//!
//! Nothing here drives a lock or writes an audit record.

use crate::error::{Error, Result};
use crate::face::detect::Detection;
use crate::face::landmarks::Landmarks;
use crate::face::quality::Quality;
use crate::face::FaceEngine;
use crate::frame::{evidence, FrameTimes, LivenessCheck, DOOR_PICK};
use crate::gallery::{Gallery, Match};
use crate::policy::verdict::classify;
use crate::policy::{Evidence, FrameVerdict, Liveness, PolicySettings};
use image::RgbImage;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::time::{Duration, Instant};

/// Mean grey level (0-255) of a face chip below which the face is called dark, and above which
/// it is called washed out (advice only: no door gate uses it).
pub const DARK_BELOW: f32 = 60.0;
pub const BRIGHT_ABOVE: f32 = 210.0;

/// One of the door's quality gates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateKind {
    /// Distance between the eye centres in frame pixels, at least `min_eye_distance_px`.
    Size,
    /// Nose offset from the eyes' midline (a yaw proxy), at most `max_yaw` either way.
    Yaw,
    /// Variance of the Laplacian of the aligned chip, at least `min_sharpness`.
    Sharpness,
}

/// One gate's measured value, its limit and whether it passes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gate {
    pub kind: GateKind,
    pub value: f32,
    pub limit: f32,
    pub pass: bool,
}

impl Gate {
    /// The gates in the order the door applies them, each judged by
    /// [`PolicySettings::quality_gate`] alone (the other two measures set to passing values).
    pub fn all(s: &PolicySettings, q: &Quality) -> [Gate; 3] {
        let alone = |eye: f32, yaw: f32, sharpness: f32| {
            s.quality_gate(&Quality {
                eye_distance_px: eye,
                yaw,
                sharpness,
            })
            .is_ok()
        };
        let inf = f32::INFINITY;
        [
            Gate {
                kind: GateKind::Size,
                value: q.eye_distance_px,
                limit: s.min_eye_distance_px,
                pass: alone(q.eye_distance_px, 0.0, inf),
            },
            Gate {
                kind: GateKind::Yaw,
                value: q.yaw,
                limit: s.max_yaw,
                pass: alone(inf, q.yaw, inf),
            },
            Gate {
                kind: GateKind::Sharpness,
                value: q.sharpness,
                limit: s.min_sharpness,
                pass: alone(inf, 0.0, q.sharpness),
            },
        ]
    }

    /// Short form for the picture: "eyes 48/32 px".
    pub fn short(&self) -> String {
        match self.kind {
            GateKind::Size => format!("eyes {:.0}/{:.0} px", self.value, self.limit),
            GateKind::Yaw => format!("yaw {:+.2}/{:.2}", self.value, self.limit),
            GateKind::Sharpness => format!("sharp {:.1}/{:.0}", self.value, self.limit),
        }
    }

    /// Why this gate rejects the face, and what the installer can do about it.
    pub fn reason(&self) -> String {
        match self.kind {
            GateKind::Size => format!(
                "eyes {} px apart, need {}: move the camera closer or use a longer lens \
                 (or a larger [camera] width/height)",
                apart(self.value, self.limit, 0),
                apart(self.limit, self.value, 0)
            ),
            GateKind::Yaw => format!(
                "face turned (yaw {}, limit {}): aim the camera along the path people walk to \
                 the door, at face height",
                apart(self.value, self.limit, 2),
                apart(self.limit, self.value.abs(), 2)
            ),
            GateKind::Sharpness => format!(
                "blurred (sharpness {}, need {}): focus and clean the lens, or add light so the \
                 exposure is shorter",
                apart(self.value, self.limit, 1),
                apart(self.limit, self.value, 0)
            ),
        }
    }
}

/// `v` with `decimals` decimals, or more (up to 3) while it would read the same as `other`
/// ("eyes 31.9 px apart, need 32.0", not "32 px apart, need 32").
fn apart(v: f32, other: f32, decimals: usize) -> String {
    let mut d = decimals;
    while d < 3 && format!("{:.d$}", v.abs()) == format!("{:.d$}", other.abs()) {
        d += 1;
    }
    format!("{v:.d$}")
}

/// One detected face, measured.
#[derive(Debug, Clone)]
pub struct FaceCheck {
    pub detection: Detection,
    pub landmarks: Landmarks,
    pub quality: Quality,
    /// Mean grey level (0-255) of the aligned chip.
    pub brightness: f32,
    /// The face the door uses in this frame ([`DOOR_PICK`]).
    pub door_face: bool,
    /// Nearest enrolled person (faces that pass the gates; `None` with an empty gallery).
    pub nearest: Option<Match>,
    /// Presentation-attack detection on the door's face ([`Liveness::NotChecked`] elsewhere).
    pub liveness: Liveness,
    /// How the door would judge this face (for the door's face: the door's own verdict on the
    /// frame; for the others, the same rules with their liveness not checked).
    pub verdict: FrameVerdict,
    /// The door itself ran the liveness check (a match within the threshold); otherwise the
    /// score was taken for the installer only.
    pub liveness_by_door: bool,
}

impl FaceCheck {
    pub fn gates(&self, s: &PolicySettings) -> [Gate; 3] {
        Gate::all(s, &self.quality)
    }

    /// The face passes every quality gate (the door's own test).
    pub fn passes(&self, s: &PolicySettings) -> bool {
        s.quality_gate(&self.quality).is_ok()
    }

    /// Every reason this face would not open the door, each with its fix, plus lighting advice.
    pub fn reasons(&self, s: &PolicySettings) -> Vec<String> {
        let mut why: Vec<String> = self
            .gates(s)
            .iter()
            .filter(|g| !g.pass)
            .map(Gate::reason)
            .collect();
        if let Some(light) = light_advice(self.brightness) {
            why.push(light);
        }
        match &self.verdict {
            FrameVerdict::Unknown {
                nearest: Some(id),
                distance: Some(d),
            } => why.push(format!(
                "nearest enrolled person {id} at {d:.3}, threshold {:.2}: not a match (a \
                 stranger, or enrol a photo of {id} taken at this door)",
                s.threshold
            )),
            FrameVerdict::Unknown { .. } => why.push(
                "nobody is enrolled: enrol staff ([gallery] or a signed bundle) to see distances"
                    .into(),
            ),
            FrameVerdict::Ambiguous {
                id,
                distance,
                runner_up,
                margin,
            } => why.push(format!(
                "ambiguous: {id} at {distance:.3}, {runner_up} only {margin:.3} further (need \
                 {:.2})",
                s.min_margin
            )),
            FrameVerdict::NotAllowed { id, reason, .. } => {
                why.push(format!("{id} matched but is not allowed now: {reason}"))
            }
            FrameVerdict::Invalid { reason } => why.push(reason.clone()),
            _ => {}
        }
        if let Liveness::Attack { reason, .. } = &self.liveness {
            let info = if self.liveness_by_door {
                ""
            } else {
                " (for information: the door checks matched faces only)"
            };
            why.push(format!(
                "not live, {reason}{info}: light the face from the front; a bright window or \
                 lamp behind the person lowers the score"
            ));
        }
        why
    }

    /// "140x166 px" (the detector's box).
    pub fn size(&self) -> String {
        format!(
            "{:.0}x{:.0} px",
            self.detection.width, self.detection.height
        )
    }
}

/// Lighting advice for a chip's mean grey level (no door gate uses it).
pub fn light_advice(brightness: f32) -> Option<String> {
    if brightness < DARK_BELOW {
        Some(format!(
            "dark face (mean grey {brightness:.0} of 255): add light at the door, or avoid a \
             bright window behind the person"
        ))
    } else if brightness > BRIGHT_ABOVE {
        Some(format!(
            "washed-out face (mean grey {brightness:.0} of 255): shade direct sun or lower the \
             camera's exposure"
        ))
    } else {
        None
    }
}

/// One checked frame.
#[derive(Debug, Clone)]
pub struct FrameCheck {
    pub seq: u64,
    pub width: u32,
    pub height: u32,
    /// Largest first: `#1` is the door's face.
    pub faces: Vec<FaceCheck>,
    /// The door's verdict on this frame (what its K-of-N rule counts).
    pub verdict: FrameVerdict,
    /// The door's own per-frame path ([`evidence`]).
    pub door_time: Duration,
    /// The whole check of the frame (the door's path and every other face).
    pub check_time: Duration,
}

impl FrameCheck {
    /// Some face in the frame passes every quality gate.
    pub fn any_face_passes(&self, s: &PolicySettings) -> bool {
        self.faces.iter().any(|f| f.passes(s))
    }

    /// One line: the faces, the door's face's measures, the nearest person and the verdict.
    pub fn summary(&self, s: &PolicySettings) -> String {
        let head = format!("frame {}: ", self.seq);
        let Some(door) = self.faces.iter().find(|f| f.door_face) else {
            return format!("{head}no face => {}", verdict_text(&self.verdict));
        };
        let q = &door.quality;
        let n = self.faces.len();
        let mut line = format!(
            "{head}{n} face{}, door's face #1 {}: eyes {:.1} px, sharpness {:.1}, yaw {:+.3}, \
             light {:.0}: {}",
            if n == 1 { "" } else { "s" },
            door.size(),
            q.eye_distance_px,
            q.sharpness,
            q.yaw,
            door.brightness,
            if door.passes(s) { "passes" } else { "fails" }
        );
        if let Some(m) = &door.nearest {
            let cmp = if m.distance < s.threshold { "<" } else { ">=" };
            line += &format!(
                "; nearest {} {:.3} ({cmp} {:.2})",
                m.id, m.distance, s.threshold
            );
        }
        if let Some(l) = liveness_text(&door.liveness) {
            line += &format!("; {l}");
        }
        line + &format!(" => {}", verdict_text(&self.verdict))
    }

    /// "#2: eyes 24 px apart, need 32: ..." for every reason of every face.
    pub fn reasons(&self, s: &PolicySettings) -> Vec<String> {
        self.faces
            .iter()
            .enumerate()
            .flat_map(|(i, f)| {
                f.reasons(s)
                    .into_iter()
                    .map(move |r| format!("#{}: {r}", i + 1))
            })
            .collect()
    }
}

/// "live 0.93", "not live 0.21", "liveness off"; `None` when not checked.
fn liveness_text(l: &Liveness) -> Option<String> {
    match l {
        Liveness::NotChecked => None,
        Liveness::Off => Some("liveness off".into()),
        Liveness::Live { score } => Some(format!("live {score:.2}")),
        Liveness::Attack { score: Some(v), .. } => Some(format!("not live {v:.2}")),
        Liveness::Attack { score: None, .. } => Some("liveness failed".into()),
    }
}

/// The door's verdict in a few words.
pub fn verdict_text(v: &FrameVerdict) -> String {
    match v {
        FrameVerdict::NoFace => "no face".into(),
        FrameVerdict::LowQuality { reason } => format!("low quality ({reason})"),
        FrameVerdict::Spoof { id, .. } => format!("spoof ({id} matched but not live)"),
        FrameVerdict::Invalid { reason } => format!("invalid ({reason})"),
        FrameVerdict::Unknown {
            nearest: Some(id),
            distance: Some(d),
        } => format!("unknown (nearest {id} {d:.3})"),
        FrameVerdict::Unknown { .. } => "unknown".into(),
        FrameVerdict::Ambiguous { id, runner_up, .. } => {
            format!("ambiguous ({id} or {runner_up})")
        }
        FrameVerdict::NotAllowed { id, reason, .. } => format!("not allowed ({id}: {reason})"),
        FrameVerdict::Match { id, distance } => format!("match {id} {distance:.3}"),
    }
}

/// Mean grey level of an image.
fn mean_grey(img: &RgbImage) -> f32 {
    let raw = img.as_raw();
    if raw.is_empty() {
        return 0.0;
    }
    let sum: u64 = raw.iter().map(|&v| u64::from(v)).sum();
    sum as f32 / raw.len() as f32
}

/// Checks one frame: the door's own per-frame path for its verdict, then every face measured.
pub fn check_frame(
    engine: &mut FaceEngine,
    gallery: &Gallery,
    settings: &PolicySettings,
    liveness: &mut dyn LivenessCheck,
    img: &RgbImage,
    seq: u64,
) -> Result<FrameCheck> {
    let t0 = Instant::now();
    let mut times = FrameTimes::default();
    let ev = evidence(engine, gallery, settings, liveness, img, &mut times)?;
    let door_time = t0.elapsed();
    let verdict = classify(settings, &ev);
    let mut detections = engine.detect(img)?;
    let door_det = DOOR_PICK.pick(&detections).copied();
    detections.sort_by(|a, b| (b.width * b.height).total_cmp(&(a.width * a.height)));
    let mut faces = Vec::with_capacity(detections.len());
    // The door checks liveness on its own face only: the others are judged without it.
    let other_faces = PolicySettings {
        liveness_required: false,
        ..settings.clone()
    };
    for det in detections {
        let landmarks = engine.landmarks(img, &det);
        let chip = engine.align(img, &landmarks);
        let quality = Quality::measure(&landmarks, chip);
        let brightness = mean_grey(chip);
        let door_face = door_det == Some(det) && !faces.iter().any(|f: &FaceCheck| f.door_face);
        let mut face = FaceCheck {
            detection: det,
            landmarks,
            quality,
            brightness,
            door_face,
            nearest: None,
            verdict: FrameVerdict::NoFace,
            liveness: Liveness::NotChecked,
            liveness_by_door: false,
        };
        match &ev {
            Evidence::Face {
                quality: q,
                best,
                liveness: l,
                ..
            } if door_face => {
                if *q != quality {
                    return Err(Error::Invalid(format!(
                        "frame {seq}: the door's face measured {q:?} in the door's path and \
                         {quality:?} here (a nondeterministic stage?)"
                    )));
                }
                face.nearest = best.clone();
                face.verdict = verdict.clone();
                face.liveness_by_door = *l != Liveness::NotChecked;
                face.liveness = l.clone();
                if !face.liveness_by_door && liveness.enabled() && face.passes(settings) {
                    // Not a match, so the door skipped it: the score, for the installer only.
                    face.liveness = liveness.check(img, &det);
                }
            }
            _ => judge_other(engine, gallery, &other_faces, &mut face)?,
        }
        faces.push(face);
    }
    Ok(FrameCheck {
        seq,
        width: img.width(),
        height: img.height(),
        faces,
        verdict,
        door_time,
        check_time: t0.elapsed(),
    })
}

/// A face other than the door's: encoded and matched if it passes the gates, and classified by
/// the door's rules (`settings` without liveness: the door checks its own face only).
fn judge_other(
    engine: &mut FaceEngine,
    gallery: &Gallery,
    settings: &PolicySettings,
    face: &mut FaceCheck,
) -> Result<()> {
    // The engine's chip is still this face's (aligned by the caller).
    let embedding = match face.passes(settings) {
        true => Some(engine.encode_chip()?),
        false => None,
    };
    face.nearest = embedding.as_ref().and_then(|e| gallery.best_match(e));
    let now = jiff::ZonedDateTime::now();
    let access = face
        .nearest
        .as_ref()
        .and_then(|m| gallery.get(&m.id))
        .map_or(Ok(()), |p| p.access.check(&now));
    face.verdict = classify(
        settings,
        &Evidence::Face {
            quality: face.quality,
            liveness: Liveness::NotChecked,
            best: face.nearest.clone(),
            access,
            embedding,
        },
    );
    Ok(())
}

/// Faces listed in the picture's panel (every face is boxed and numbered on the frame).
const PANEL_FACES: usize = 3;

/// Font size and line height of the picture's text for a frame `width` pixels wide.
fn text_metrics(width: u32) -> (u32, u32) {
    let font = (width / 40).clamp(12, 28);
    (font, font * 3 / 2)
}

/// Size of the annotated picture of a `width` x `height` frame: the frame, and below it a
/// panel of 2 + 2 x [`PANEL_FACES`] text lines (the verdict, two per face, "+n more").
pub fn annotated_size(width: u32, height: u32) -> (u32, u32) {
    let (_, line) = text_metrics(width);
    (
        width,
        height + line * (2 + 2 * PANEL_FACES as u32) + line / 2,
    )
}

const PASS: RGBColor = RGBColor(40, 200, 70);
const FAIL: RGBColor = RGBColor(235, 50, 40);
const NOTE: RGBColor = RGBColor(230, 230, 230);
const LANDMARK: RGBColor = RGBColor(255, 220, 0);
const KEYPOINT: RGBColor = RGBColor(0, 210, 255);

fn pass_color(pass: bool) -> RGBColor {
    if pass {
        PASS
    } else {
        FAIL
    }
}

/// The frame with every face drawn (box, the 5 landmarks as yellow dots with the eye line,
/// BlazeFace's 6 keypoints as cyan crosses, a "#n" label with the eye distance), green when the
/// face passes the gates and red when not (the door's face thicker), above a panel with the
/// door's verdict and, per face, each gate's value against its limit, the light, the nearest
/// person against the threshold and the liveness score.
pub fn annotate(img: &RgbImage, check: &FrameCheck, s: &PolicySettings) -> Result<RgbImage> {
    crate::plot::ensure_font();
    let (w, h) = annotated_size(img.width(), img.height());
    let mut buf = vec![24u8; (w * h * 3) as usize];
    buf[..img.as_raw().len()].copy_from_slice(img.as_raw());
    let err =
        |e: &dyn std::fmt::Display| Error::Invalid(format!("drawing frame {}: {e}", check.seq));
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let (frame, panel) = root.split_vertically(img.height());
        for (i, f) in check.faces.iter().enumerate() {
            draw_face(&frame, i + 1, f, s).map_err(|e| err(&e))?;
        }
        draw_panel(&panel, check, s).map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(RgbImage::from_raw(w, h, buf).expect("buffer sized for the image"))
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type DrawResult<'a> =
    std::result::Result<(), DrawingAreaErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>>;

fn draw_face<'a>(area: &Area<'a>, n: usize, f: &FaceCheck, s: &PolicySettings) -> DrawResult<'a> {
    let color = pass_color(f.passes(s));
    let d = &f.detection;
    let (x0, y0) = (d.x.round() as i32, d.y.round() as i32);
    let (x1, y1) = (
        (d.x + d.width).round() as i32,
        (d.y + d.height).round() as i32,
    );
    let stroke = if f.door_face { 3 } else { 1 };
    area.draw(&Rectangle::new(
        [(x0, y0), (x1, y1)],
        color.stroke_width(stroke),
    ))?;
    let p = &f.landmarks.0;
    let px = |k: usize| (p[k].x.round() as i32, p[k].y.round() as i32);
    let mid = |a: usize, b: usize| {
        (
            ((p[a].x + p[b].x) / 2.0).round() as i32,
            ((p[a].y + p[b].y) / 2.0).round() as i32,
        )
    };
    area.draw(&PathElement::new(
        vec![mid(0, 1), mid(2, 3)],
        LANDMARK.stroke_width(1),
    ))?;
    let r = (d.width / 60.0).clamp(1.5, 4.0).round() as i32;
    for k in 0..5 {
        area.draw(&Circle::new(px(k), r, LANDMARK.filled()))?;
    }
    for k in &d.keypoints {
        let c = (k[0].round() as i32, k[1].round() as i32);
        area.draw(&Cross::new(c, r + 1, KEYPOINT.stroke_width(1)))?;
    }
    let (font, _) = text_metrics(area.dim_in_pixel().0);
    let label = format!("#{n} eyes {:.0}px", f.quality.eye_distance_px);
    let style = ("sans-serif", font).into_font().color(&BLACK);
    let (tw, th) = area.estimate_text_size(&label, &style)?;
    let ly = if y0 >= th as i32 + 4 {
        y0 - th as i32 - 4
    } else {
        y1 + 2
    };
    area.draw(&Rectangle::new(
        [(x0, ly), (x0 + tw as i32 + 6, ly + th as i32 + 3)],
        color.filled(),
    ))?;
    area.draw_text(&label, &style, (x0 + 3, ly + 2))
}

/// Draws `parts` left to right from `(x, y)`, each in its colour.
fn draw_parts<'a>(
    area: &Area<'a>,
    font: u32,
    x: i32,
    y: i32,
    parts: &[(String, RGBColor)],
) -> DrawResult<'a> {
    let mut x = x;
    for (text, color) in parts {
        let style = ("sans-serif", font)
            .into_font()
            .color(color)
            .pos(Pos::new(HPos::Left, VPos::Top));
        area.draw_text(text, &style, (x, y))?;
        x += area.estimate_text_size(text, &style)?.0 as i32 + font as i32 / 2;
    }
    Ok(())
}

fn draw_panel<'a>(area: &Area<'a>, check: &FrameCheck, s: &PolicySettings) -> DrawResult<'a> {
    let (font, line) = text_metrics(area.dim_in_pixel().0);
    let (x, mut y) = (font as i32 / 2, line as i32 / 4);
    let ok = matches!(check.verdict, FrameVerdict::Match { .. });
    draw_parts(
        area,
        font,
        x,
        y,
        &[
            (format!("frame {}", check.seq), NOTE),
            (
                format!("door: {}", verdict_text(&check.verdict)),
                pass_color(ok),
            ),
            (
                format!(
                    "{} face(s), {:.0} ms",
                    check.faces.len(),
                    check.door_time.as_secs_f64() * 1e3
                ),
                NOTE,
            ),
        ],
    )?;
    for (i, f) in check.faces.iter().take(PANEL_FACES).enumerate() {
        y += line as i32;
        let mut parts = vec![(
            format!(
                "#{}{} {}",
                i + 1,
                if f.door_face { " (door)" } else { "" },
                f.size()
            ),
            pass_color(f.passes(s)),
        )];
        parts.extend(f.gates(s).iter().map(|g| (g.short(), pass_color(g.pass))));
        parts.push((
            format!("light {:.0}", f.brightness),
            pass_color(light_advice(f.brightness).is_none()),
        ));
        draw_parts(area, font, x, y, &parts)?;
        y += line as i32;
        let mut parts = Vec::new();
        match &f.nearest {
            Some(m) => parts.push((
                format!("nearest {} {:.3}/{:.2}", m.id, m.distance, s.threshold),
                pass_color(m.distance < s.threshold),
            )),
            None if f.passes(s) => parts.push(("nobody enrolled".into(), NOTE)),
            None => parts.push(("not matched (fails the gates)".into(), NOTE)),
        }
        if let Some(l) = liveness_text(&f.liveness) {
            let live = matches!(f.liveness, Liveness::Live { .. } | Liveness::Off);
            let by = if f.liveness_by_door {
                ""
            } else {
                " (info only)"
            };
            parts.push((format!("{l}{by}"), pass_color(live)));
        }
        draw_parts(area, font, x + font as i32, y, &parts)?;
    }
    if check.faces.len() > PANEL_FACES {
        y += line as i32;
        let more = format!(
            "+{} more faces (boxed above; see the printed reasons)",
            check.faces.len() - PANEL_FACES
        );
        draw_parts(area, font, x, y, &[(more, NOTE)])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::geometry::Point;

    fn quality(eye: f32, yaw: f32, sharpness: f32) -> Quality {
        Quality {
            eye_distance_px: eye,
            yaw,
            sharpness,
        }
    }

    /// A face with its box at (x, y), `side` pixels wide, the 5 landmarks inside it.
    fn face(x: f32, y: f32, side: f32, q: Quality, verdict: FrameVerdict) -> FaceCheck {
        let at = |fx: f32, fy: f32| Point::new(f64::from(x + fx * side), f64::from(y + fy * side));
        let kp = |fx: f32, fy: f32| [x + fx * side, y + fy * side];
        FaceCheck {
            detection: Detection {
                x,
                y,
                width: side,
                height: side,
                score: 0.9,
                keypoints: [
                    kp(0.35, 0.4),
                    kp(0.65, 0.4),
                    kp(0.5, 0.55),
                    kp(0.5, 0.7),
                    kp(0.3, 0.45),
                    kp(0.7, 0.45),
                ],
            },
            landmarks: Landmarks([
                at(0.7, 0.4),
                at(0.6, 0.4),
                at(0.3, 0.4),
                at(0.4, 0.4),
                at(0.5, 0.6),
            ]),
            quality: q,
            brightness: 120.0,
            door_face: false,
            nearest: None,
            verdict,
            liveness: Liveness::NotChecked,
            liveness_by_door: false,
        }
    }

    /// Each gate is the door's own: every gate passes exactly when `quality_gate` does, and the
    /// first failing gate (in the door's order) is the one `quality_gate` names, NaN included.
    #[test]
    fn gates_agree_with_the_doors_quality_gate() {
        let s = PolicySettings::default();
        let eyes = [f32::NAN, 0.0, 31.9, 32.0, 32.1, 200.0];
        let yaws = [f32::NAN, -0.3, -0.25, 0.0, 0.2501, 0.6];
        let sharp = [f32::NAN, 0.0, 14.99, 15.0, 300.0];
        let mut failing = 0;
        for &e in &eyes {
            for &y in &yaws {
                for &sh in &sharp {
                    let q = quality(e, y, sh);
                    let gates = Gate::all(&s, &q);
                    let door = s.quality_gate(&q);
                    assert_eq!(gates.iter().all(|g| g.pass), door.is_ok(), "{q:?}");
                    if let Some(first) = gates.iter().find(|g| !g.pass) {
                        failing += 1;
                        let named = door.unwrap_err();
                        let expect = match first.kind {
                            GateKind::Size => "face too small",
                            GateKind::Yaw => "face turned",
                            GateKind::Sharpness => "blurred",
                        };
                        assert!(named.starts_with(expect), "{q:?}: {named} vs {first:?}");
                    }
                }
            }
        }
        assert!(failing > 100 && failing < eyes.len() * yaws.len() * sharp.len());
    }

    #[test]
    fn reasons_say_what_failed_by_how_much_and_the_fix() {
        let s = PolicySettings::default();
        let small = face(
            0.0,
            0.0,
            60.0,
            quality(24.2, 0.0, 80.0),
            FrameVerdict::NoFace,
        );
        assert_eq!(
            small.reasons(&s),
            [
                "eyes 24 px apart, need 32: move the camera closer or use a longer lens \
              (or a larger [camera] width/height)"
            ]
        );
        let nearly = face(
            0.0,
            0.0,
            60.0,
            quality(31.9, 0.2501, 14.96),
            FrameVerdict::NoFace,
        );
        let why = nearly.reasons(&s);
        assert_eq!(why.len(), 3, "{why:?}");
        assert!(
            why[0].starts_with("eyes 31.9 px apart, need 32.0:"),
            "{why:?}"
        );
        assert!(
            why[1].starts_with("face turned (yaw 0.250, limit 0.250)"),
            "{}",
            why[1]
        );
        assert!(
            why[2].starts_with("blurred (sharpness 14.96, need 15.00)"),
            "{}",
            why[2]
        );

        let stranger = FrameVerdict::Unknown {
            nearest: Some("lmm".into()),
            distance: Some(0.52),
        };
        let mut f = face(0.0, 0.0, 100.0, quality(40.0, 0.0, 80.0), stranger);
        f.brightness = 30.0;
        let why = f.reasons(&s);
        assert!(
            why[0].starts_with("dark face (mean grey 30 of 255)"),
            "{why:?}"
        );
        assert!(
            why[1].starts_with("nearest enrolled person lmm at 0.520, threshold 0.47: not a match"),
            "{why:?}"
        );
        f.verdict = FrameVerdict::Unknown {
            nearest: None,
            distance: None,
        };
        assert!(f.reasons(&s)[1].starts_with("nobody is enrolled"));
        f.brightness = 120.0;
        f.verdict = FrameVerdict::Match {
            id: "lmm".into(),
            distance: 0.4,
        };
        assert!(f.reasons(&s).is_empty(), "{:?}", f.reasons(&s));
        f.liveness = Liveness::Attack {
            score: Some(0.3),
            reason: "live score 0.300 below 0.60 (v2)".into(),
        };
        let why = f.reasons(&s);
        assert!(
            why[0].starts_with("not live, live score 0.300 below 0.60 (v2) (for information"),
            "{why:?}"
        );
    }

    /// The picture: the frame untouched outside the drawings, each box in its face's colour
    /// (green passes the gates, red fails), the panel below with text in it.
    #[test]
    fn annotate_draws_each_face_in_its_gate_colour_above_the_panel() {
        let s = PolicySettings::default();
        let img = RgbImage::from_pixel(320, 240, image::Rgb([128, 128, 128]));
        let mut good = face(
            40.0,
            60.0,
            100.0,
            quality(40.0, 0.0, 80.0),
            FrameVerdict::NoFace,
        );
        good.door_face = true;
        good.verdict = FrameVerdict::Match {
            id: "lmm".into(),
            distance: 0.4,
        };
        good.nearest = Some(Match {
            id: "lmm".into(),
            distance: 0.4,
            runner_up: None,
        });
        let small = face(
            220.0,
            100.0,
            50.0,
            quality(20.0, 0.0, 80.0),
            FrameVerdict::NoFace,
        );
        let check = FrameCheck {
            seq: 7,
            width: 320,
            height: 240,
            faces: vec![good, small],
            verdict: FrameVerdict::Match {
                id: "lmm".into(),
                distance: 0.4,
            },
            door_time: Duration::from_millis(40),
            check_time: Duration::from_millis(90),
        };
        let out = annotate(&img, &check, &s).unwrap();
        assert_eq!(out.dimensions(), annotated_size(320, 240));
        assert!(out.height() > 240);
        let px = |x: u32, y: u32| RGBColor(out[(x, y)][0], out[(x, y)][1], out[(x, y)][2]);
        assert_eq!(px(40, 110), PASS, "the door's face passes: green box");
        assert_eq!(px(220, 125), FAIL, "too small: red box");
        assert_eq!(
            px(5, 230),
            RGBColor(128, 128, 128),
            "the frame elsewhere is untouched"
        );
        let panel_colours: std::collections::HashSet<_> = (240..out.height())
            .flat_map(|y| (0..320).map(move |x| (x, y)))
            .map(|(x, y)| out[(x, y)])
            .collect();
        assert!(panel_colours.len() > 5, "no text in the panel");
    }

    #[test]
    fn numbers_get_decimals_until_they_read_differently_from_their_limit() {
        assert_eq!(apart(24.2, 32.0, 0), "24");
        assert_eq!(apart(31.9, 32.0, 0), "31.9");
        assert_eq!(apart(32.0, 31.9, 0), "32.0");
        assert_eq!(apart(-0.2501, 0.25, 2), "-0.250");
        assert_eq!(apart(0.3, 0.3, 2), "0.300");
    }
}
