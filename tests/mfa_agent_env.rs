//! `SkAgent::connect_env` with `SSH_AUTH_SOCK` set, empty and unset. Alone in
//! its test binary: the one test changes the process environment, which no
//! other thread reads meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use charon::core::mfa::MfaError;
use charon::core::mfa::sk::SkAgent;

#[tokio::test]
async fn the_agent_is_found_through_ssh_auth_sock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let _listener = tokio::net::UnixListener::bind(&path).unwrap();
    // SAFETY: the only test of this binary; nothing else reads the
    // environment while it is changed.
    unsafe { std::env::set_var("SSH_AUTH_SOCK", &path) };
    assert!(SkAgent::connect_env().await.is_ok());

    let gone = dir.path().join("gone.sock");
    unsafe { std::env::set_var("SSH_AUTH_SOCK", &gone) };
    match SkAgent::connect_env().await {
        Err(MfaError::AgentUnreachable { path, .. }) => {
            assert_eq!(path, gone.display().to_string())
        }
        Err(other) => panic!("expected unreachable, got {other:?}"),
        Ok(_) => panic!("connected to a socket that does not exist"),
    }

    unsafe { std::env::set_var("SSH_AUTH_SOCK", "") };
    assert_eq!(SkAgent::connect_env().await.unwrap_err(), MfaError::NoAgent);
    unsafe { std::env::remove_var("SSH_AUTH_SOCK") };
    assert_eq!(SkAgent::connect_env().await.unwrap_err(), MfaError::NoAgent);
}
