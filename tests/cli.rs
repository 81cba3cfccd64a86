//! The command line as a script would use it: exit codes 0 (yes), 1 (no), 2 (error).

use crate::common;
use common::facegate;

use common::face;

fn p(name: &str) -> String {
    face(name).to_string_lossy().into()
}

#[test]
fn verify_exit_codes() {
    let (code, out, _) = facegate(&["verify", &p("biden1.jpg"), &p("biden2.jpg")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("same person"));
    let (code, out, _) = facegate(&["verify", &p("biden1.jpg"), &p("obama2.jpg")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("different people"));
    let (code, _, err) = facegate(&["verify", &p("biden1.jpg"), &p("no_face.jpg")]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no_face.jpg") && err.contains("no face"),
        "{err}"
    );
    let (code, _, err) = facegate(&["verify", &p("biden1.jpg"), "/nonexistent.jpg"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent.jpg"), "{err}");
}

#[test]
fn embed_prints_one_json_line_per_image() {
    let (code, out, _) = facegate(&["embed", &p("two_people.jpg"), &p("orl_s1_1.pgm")]);
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["faces"].as_array().unwrap().len(), 2);
    assert_eq!(
        lines[1]["faces"][0]["embedding"].as_array().unwrap().len(),
        128
    );
}

#[test]
fn identify_against_a_photo_gallery() {
    let g = tempfile::tempdir().unwrap();
    for (who, file) in [
        ("obama", "obama1.jpg"),
        ("biden", "biden1.jpg"),
        ("lacamoire", "alex-lacamoire.png"),
    ] {
        std::fs::create_dir(g.path().join(who)).unwrap();
        std::fs::copy(face(file), g.path().join(who).join(file)).unwrap();
    }
    let gal = g.path().to_string_lossy().to_string();
    let (code, out, _) = facegate(&["identify", &p("obama2.jpg"), "--gallery", &gal]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("obama "), "{out}");
    let (code, out, _) = facegate(&["identify", &p("lin-manuel-miranda.png"), "--gallery", &gal]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("no match"), "{out}");
}

#[test]
fn help_explains_commands() {
    let (code, out, _) = facegate(&["--help"]);
    assert_eq!(code, 0);
    for cmd in ["verify", "embed", "identify", "eval", "bench", "Exit codes"] {
        assert!(out.contains(cmd), "{cmd} missing from --help");
    }
}

/// `facegate lock test`: the installer's wiring check pulses the configured relay once,
/// relocks, and audits it; a lock that cannot be opened is an error naming the line.
#[test]
fn lock_test_pulses_once_and_audits() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("door.toml");
    let write = |lock: &str| {
        std::fs::write(
            &cfg,
            format!(
                "[camera]\nsource = \"replay\"\nreplay_dir = \"{}\"\n\n[gallery]\n\
                 [[gallery.person]]\nid = \"lmm\"\nphotos = [\"{}\"]\n\n[lock]\n{lock}\n\n\
                 [audit]\npath = \"audit.jsonl\"\n",
                common::fixture("clip/hamilton").display(),
                face("lin-manuel-miranda.png").display()
            ),
        )
        .unwrap();
    };
    write("backend = \"simulated\"\nsafe_state = \"locked\"\nunlock_ms = 300");
    let cfg_s = cfg.to_string_lossy().to_string();
    let (code, out, err) = facegate(&["lock", "test", "--config", &cfg_s]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("fail-secure"), "{out}");
    assert!(out.contains("events: unlocked, relocked"), "{out}");
    let ms: u64 = out
        .split("OK: unlocked for ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no duration in {out}"));
    assert!(ms >= 300, "relocked early, after {ms} ms");
    let audit = dir.path().join("audit.jsonl");
    let log = std::fs::read_to_string(&audit).unwrap();
    assert_eq!(log.matches("\"lock_test\"").count(), 1, "{log}");
    let (code, out, _) = facegate(&["audit", "verify", &audit.to_string_lossy()]);
    assert_eq!(code, 0, "{out}");

    // No such GPIO line here (nor on a board whose lines are named otherwise): a clear error,
    // exit 2, and nothing pulsed.
    write("backend = \"gpiocdev\"\nline = \"NO_SUCH_LINE\"\nsafe_state = \"locked\"");
    let (code, _, err) = facegate(&["lock", "test", "--config", &cfg_s]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("NO_SUCH_LINE"), "{err}");
    assert_eq!(std::fs::read_to_string(&audit).unwrap(), log);
}

/// tools/setup.sh decides whether to install libclang (the v4l crate's bindgen needs it). A fresh
/// machine of the CI image lists only `libclang-cpp.so.14`, which bindgen cannot load: the
/// detection must say "missing" there (it said "present", and the demo build failed).
#[test]
fn setup_detects_only_a_libclang_bindgen_can_load() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let detect = |listing: &str| -> i32 {
        let f = dir.path().join("ldconfig.txt");
        std::fs::write(&f, listing).unwrap();
        std::process::Command::new("bash")
            .arg(root.join("tools/setup.sh"))
            .arg("--detect")
            .env("FACEGATE_LDCONFIG_OUTPUT", &f)
            .status()
            .unwrap()
            .code()
            .unwrap()
    };
    let head = "1234 libs found in cache `/etc/ld.so.cache'\n";
    let cpp = "\tlibclang-cpp.so.14 (libc6,x86-64) => /lib/x86_64-linux-gnu/libclang-cpp.so.14\n";
    assert_eq!(detect(&format!("{head}{cpp}")), 1, "libclang-cpp only");
    assert_eq!(detect(head), 1, "no libclang at all");
    for usable in [
        "\tlibclang-14.so.13 (libc6,x86-64) => /lib/x86_64-linux-gnu/libclang-14.so.13\n",
        "\tlibclang-14.so (libc6,x86-64) => /lib/x86_64-linux-gnu/libclang-14.so\n",
        "\tlibclang.so.1 (libc6,x86-64) => /usr/lib/libclang.so.1\n",
        "\tlibclang.so (libc6,x86-64) => /usr/lib/libclang.so\n",
    ] {
        assert_eq!(detect(&format!("{head}{cpp}{usable}")), 0, "{usable}");
    }
}

/// `tools/setup.sh --vm` installs what the VM test (tools/vm-test.sh) needs on a fresh machine:
/// `--detect vm` lists the missing packages. Only a package dpkg calls "installed" counts: a
/// removed one whose configuration remains does not, and the headers must be those of the kernel
/// the VM boots (`linux-headers-KV`, not `-common` nor another version).
#[test]
fn setup_detects_the_vm_test_packages_for_the_booted_kernel() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let detect = |listing: &str| -> (i32, Vec<String>) {
        let f = dir.path().join("dpkg.txt");
        std::fs::write(&f, listing).unwrap();
        let out = std::process::Command::new("bash")
            .arg(root.join("tools/setup.sh"))
            .args(["--detect", "vm"])
            .env("FACEGATE_DPKG_OUTPUT", &f)
            .env("FACEGATE_VM_KERNEL", "6.1.0-57-amd64")
            .output()
            .unwrap();
        let missing = String::from_utf8(out.stdout).unwrap();
        let missing = missing.lines().map(str::to_string).collect();
        (out.status.code().unwrap(), missing)
    };
    let all = [
        "qemu-system-x86",
        "kmod",
        "cpio",
        "make",
        "gcc",
        "linux-headers-6.1.0-57-amd64",
    ];
    let full: String = all.iter().map(|p| format!("{p} installed\n")).collect();
    assert_eq!(detect(&full), (0, vec![]), "everything installed");
    assert_eq!(
        detect(""),
        (1, all.map(String::from).to_vec()),
        "fresh machine"
    );
    // the traps: removed kmod with its configuration left, the headers of another kernel and
    // the -common half only, qemu's data package without the emulator
    let listing = full
        .replace("kmod installed", "kmod config-files")
        .replace(
            "linux-headers-6.1.0-57-amd64 installed",
            "linux-headers-6.1.0-56-amd64 installed\nlinux-headers-6.1.0-57-common installed",
        )
        .replace(
            "qemu-system-x86 installed",
            "qemu-system-data installed\nqemu-system-x86 not-installed",
        );
    let want = ["qemu-system-x86", "kmod", "linux-headers-6.1.0-57-amd64"];
    assert_eq!(detect(&listing), (1, want.map(String::from).to_vec()));
}

/// Issue 10 finding 2: `facegate lock safe` (the unit's ExecStopPost=) only opens the lock
/// output and de-energises it: no models (a missing model directory does not matter), and an
/// audit log that cannot be continued (here a damaged last record) is reported but does not
/// stop it, nor is the log touched.
#[test]
fn lock_safe_releases_the_relay_without_models_even_when_the_audit_log_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("door.toml");
    std::fs::write(
        &cfg,
        format!(
            "[camera]\nsource = \"replay\"\nreplay_dir = \"{}\"\n\n[gallery]\n\
             [[gallery.person]]\nid = \"lmm\"\nphotos = [\"{}\"]\n\n[lock]\n\
             backend = \"simulated\"\nsafe_state = \"locked\"\nsim_state_file = \"relay.state\"\n\n\
             [audit]\npath = \"audit.jsonl\"\n",
            common::fixture("clip/hamilton").display(),
            face("lin-manuel-miranda.png").display()
        ),
    )
    .unwrap();
    let state = dir.path().join("relay.state");
    std::fs::write(&state, "energised\n").unwrap();
    let audit = dir.path().join("audit.jsonl");
    std::fs::write(&audit, "this is not an audit record\n").unwrap();
    let cfg_s = cfg.to_string_lossy().to_string();
    let (code, out, err) = facegate(&[
        "--models",
        "/nonexistent/models",
        "lock",
        "safe",
        "--config",
        &cfg_s,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("de-energised"), "{out}");
    assert!(err.contains("not audited"), "{err}");
    assert_eq!(
        facegate::door::output::sim::read_state_file(&state),
        Some(false),
        "{out}{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&audit).unwrap(),
        "this is not an audit record\n"
    );
    // with a healthy log, the action is on record
    std::fs::remove_file(&audit).unwrap();
    let (code, out, err) = facegate(&["lock", "safe", "--config", &cfg_s]);
    assert_eq!(code, 0, "{out}{err}");
    let log = std::fs::read_to_string(&audit).unwrap();
    assert!(log.contains("\"lock_safe\""), "{log}");
}

/// Issue 11 item 4: `--detector` and `[models] detector` have one default, the door's
/// (short_range), and the flag refuses an unknown detector naming the choices.
#[test]
fn detector_default_is_the_same_for_the_command_line_and_the_config() {
    use clap::Parser;
    use facegate::face::DetectorChoice;
    let cli = facegate::cli::Cli::parse_from(["facegate", "verify", "a.jpg", "b.jpg"]);
    let from_cli = cli.models.options().detector;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("door.toml");
    std::fs::write(
        &cfg,
        "[camera]\nsource = \"v4l2\"\n[gallery]\nphotos_dir = \"staff\"\n[lock]\n\
         backend = \"simulated\"\nsafe_state = \"locked\"\n[audit]\npath = \"audit.jsonl\"\n",
    )
    .unwrap();
    let from_config = facegate::config::Config::load(&cfg)
        .unwrap()
        .models
        .detector;
    assert_eq!(from_cli, from_config);
    assert_eq!(from_cli, DetectorChoice::ShortRange);
    let (code, out, _) = facegate(&["verify", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("[default: short_range]"), "{out}");
    let cli = facegate::cli::Cli::parse_from(["facegate", "--detector", "auto", "embed", "x.jpg"]);
    assert_eq!(cli.models.options().detector, DetectorChoice::Auto);
    let e = facegate::cli::Cli::try_parse_from(["facegate", "--detector", "far", "embed", "x"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("far") && e.contains("full_range"), "{e}");
}

/// Issue 11 item 6: one GPIO line format for the lock and the inputs; `chip` beside a named
/// line is honoured (old code: dropped, and the name was searched on every chip), and a bad
/// line is refused at load naming the fix.
#[test]
fn lock_test_honours_the_chip_of_a_named_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("door.toml");
    let cfg_s = cfg.to_string_lossy().to_string();
    let run = |lock: &str| {
        std::fs::write(
            &cfg,
            format!(
                "[camera]\nsource = \"v4l2\"\n[gallery]\nphotos_dir = \"staff\"\n[lock]\n\
                 safe_state = \"locked\"\n{lock}\n[audit]\npath = \"audit.jsonl\"\n"
            ),
        )
        .unwrap();
        facegate(&["lock", "test", "--config", &cfg_s])
    };
    for lock in [
        "backend = \"gpiocdev\"\nline = \"GPIO17\"\nchip = \"/dev/gpiochip99\"",
        "backend = \"gpiocdev\"\nline = \"/dev/gpiochip99:GPIO17\"",
    ] {
        let (code, out, err) = run(lock);
        assert_eq!(code, 2, "{lock}: {out}{err}");
        assert!(
            err.contains("/dev/gpiochip99 does not exist"),
            "{lock}: {err}"
        );
    }
    let (code, _, err) = run("backend = \"gpiocdev\"\nline = \"17\"");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("[lock] line = \"17\"") && err.contains("\"/dev/gpiochip0:17\""),
        "{err}"
    );
    assert!(!dir.path().join("audit.jsonl").exists());
}
