//! Which GPIO line: one typed [`LineSpec`] and one textual form for the lock output and the door
//! inputs (exit button, door contact), parsed once when the configuration is loaded.
//!
//! | text                      | meaning                                                      |
//! |---------------------------|--------------------------------------------------------------|
//! | `"GPIO17"`                | the line named `GPIO17`, searched on every chip               |
//! | `"/dev/gpiochip0:GPIO17"` | the line named `GPIO17` on `/dev/gpiochip0` only              |
//! | `"/dev/gpiochip0:17"`     | line offset 17 on `/dev/gpiochip0` (boards without line names) |
//!
//! A bare number (`"17"`) is refused: an offset means nothing without its chip, and reading it
//! as a line name would look for a line called "17". Prefer names on a Raspberry Pi: the
//! header's lines are `gpiochip0` on a Pi 4 but `gpiochip4` or `gpiochip0` on a Pi 5,
//! depending on the kernel. The `[lock]` section's older spelling, `chip = "/dev/gpiochip0"`
//! beside `line = "17"` or `line = "GPIO17"`, reads as the same spec ([`LineSpec::on_chip`]).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Which GPIO line to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineSpec {
    /// A line name from the device tree, e.g. `"GPIO17"`, searched on every chip.
    Name(String),
    /// A line name looked up on one chip only, e.g. `GPIO17` on `/dev/gpiochip4`.
    ChipName {
        /// Path of the chip, e.g. `/dev/gpiochip0`.
        chip: PathBuf,
        /// The line's name on that chip.
        name: String,
    },
    /// A chip device and a line offset on it, e.g. `/dev/gpiochip0` and 17.
    ChipOffset {
        /// Path of the chip, e.g. `/dev/gpiochip0`.
        chip: PathBuf,
        /// Line offset on that chip.
        offset: u32,
    },
}

/// The forms a line may take, for error messages.
const FORMS: &str = "a line name such as \"GPIO17\", a name on one chip such as \
                     \"/dev/gpiochip0:GPIO17\", or a chip and offset such as \"/dev/gpiochip0:17\"";

impl LineSpec {
    /// The `[lock]` section's older spelling: `line` (a name or an offset) with a separate
    /// `chip`. The chip is honoured for a name too (it was dropped before issue 11); a `line`
    /// that names its own chip as well is refused.
    pub fn on_chip(chip: PathBuf, line: &str) -> Result<LineSpec, String> {
        let line = line.trim();
        if line.starts_with('/') {
            return Err(format!(
                "chip = \"{}\" and line = \"{line}\" both name a chip: remove chip \
                 (line = \"{line}\" says it all)",
                chip.display()
            ));
        }
        if line.is_empty() {
            return Err(format!("line is empty: use {FORMS}"));
        }
        Ok(match line.parse::<u32>() {
            Ok(offset) => LineSpec::ChipOffset { chip, offset },
            Err(_) => LineSpec::ChipName {
                chip,
                name: line.to_string(),
            },
        })
    }
}

impl FromStr for LineSpec {
    type Err = String;

    /// `"GPIO17"`, `"/dev/gpiochip0:GPIO17"` or `"/dev/gpiochip0:17"`; errors name the fix.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(format!("empty GPIO line: use {FORMS}"));
        }
        if s.starts_with('/') {
            let (chip, line) = s.rsplit_once(':').ok_or_else(|| {
                format!(
                    "\"{s}\" names a chip but no line: write \"{s}:17\" for offset 17 \
                     or \"{s}:GPIO17\" for the line named GPIO17"
                )
            })?;
            if chip.is_empty() || line.trim().is_empty() {
                return Err(format!("\"{s}\" is not a GPIO line: use {FORMS}"));
            }
            return LineSpec::on_chip(chip.into(), line);
        }
        if s.parse::<u32>().is_ok() {
            return Err(format!(
                "\"{s}\" is a line offset without its chip: write \"/dev/gpiochip0:{s}\" \
                 (the chip from `gpiodetect`), or use the line's name such as \"GPIO{s}\""
            ));
        }
        Ok(LineSpec::Name(s.to_string()))
    }
}

impl fmt::Display for LineSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineSpec::Name(n) => write!(f, "line \"{n}\""),
            LineSpec::ChipName { chip, name } => {
                write!(f, "line \"{name}\" on {}", chip.display())
            }
            LineSpec::ChipOffset { chip, offset } => {
                write!(f, "line {offset} on {}", chip.display())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_textual_form_for_every_line() {
        assert_eq!("GPIO17".parse(), Ok(LineSpec::Name("GPIO17".into())));
        assert_eq!(
            " /dev/gpiochip0:17 ".parse(),
            Ok(LineSpec::ChipOffset {
                chip: "/dev/gpiochip0".into(),
                offset: 17
            })
        );
        assert_eq!(
            "/dev/gpiochip4:GPIO17".parse(),
            Ok(LineSpec::ChipName {
                chip: "/dev/gpiochip4".into(),
                name: "GPIO17".into()
            })
        );
    }

    /// Each refusal names what to write instead.
    #[test]
    fn bad_lines_name_the_fix() {
        let err = |s: &str| s.parse::<LineSpec>().expect_err(s);
        assert!(err("17").contains("\"/dev/gpiochip0:17\""), "{}", err("17"));
        assert!(err("").contains("GPIO17"));
        let e = err("/dev/gpiochip0");
        assert!(e.contains("\"/dev/gpiochip0:17\""), "{e}");
        assert!(err("/dev/gpiochip0:").contains("GPIO17"));
    }

    /// `chip` beside `line` (the `[lock]` section's older spelling) is honoured for a name as
    /// well as an offset, and refused when the line already names a chip.
    #[test]
    fn a_separate_chip_is_honoured_or_refused() {
        let chip = PathBuf::from("/dev/gpiochip4");
        assert_eq!(
            LineSpec::on_chip(chip.clone(), "GPIO17"),
            Ok(LineSpec::ChipName {
                chip: chip.clone(),
                name: "GPIO17".into()
            })
        );
        assert_eq!(
            LineSpec::on_chip(chip.clone(), "17"),
            Ok(LineSpec::ChipOffset {
                chip: chip.clone(),
                offset: 17
            })
        );
        let e = LineSpec::on_chip(chip, "/dev/gpiochip0:17").unwrap_err();
        assert!(e.contains("remove chip"), "{e}");
    }
}
