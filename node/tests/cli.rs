//! The `herald` binary's command line: help documents every option, and bad
//! configuration fails fast with a clear message.

use std::process::Command;

fn herald() -> Command {
    Command::new(env!("CARGO_BIN_EXE_herald"))
}

#[test]
fn serve_help_documents_every_option() {
    let out = herald()
        .args(["serve", "--help"])
        .output()
        .expect("run herald");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--config",
        "--data-dir",
        "--http",
        "--node-id",
        "--shards",
        "--account-id",
        "--access-key-id",
        "--secret-access-key",
        "--session-idle-timeout-secs",
        "--endpoint-actors-max",
        "--log-format",
        "HERALD_DATA_DIR",
        "HERALD_HTTP",
    ] {
        assert!(
            text.contains(opt),
            "serve --help does not mention {opt}:\n{text}"
        );
    }
}

#[test]
fn half_a_key_pair_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = herald()
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .env("HERALD_ACCESS_KEY_ID", "AKIAONLYID")
        .env_remove("HERALD_SECRET_ACCESS_KEY")
        .output()
        .expect("run herald");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must be set together"), "{err}");
}

#[test]
fn unknown_config_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("herald.toml");
    std::fs::write(&cfg, "data_dir = \"x\"\nhttp_port = 80\n").unwrap();
    let out = herald()
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .expect("run herald");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http_port"), "{err}");
}
