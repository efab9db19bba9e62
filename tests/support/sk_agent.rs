//! A real ssh-agent protocol server on a Unix socket, holding software keys
//! that answer like FIDO security keys (OpenSSH PROTOCOL.u2f). Written
//! independently of charon's client code (its own wire encoding), so the
//! client is tested against the protocol, not against itself.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use p256::ecdsa::signature::Signer as _;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

pub const SK_ECDSA: &str = "sk-ecdsa-sha2-nistp256@openssh.com";
pub const SK_ED25519: &str = "sk-ssh-ed25519@openssh.com";

#[derive(Clone)]
pub enum KeyKind {
    SkEcdsa(p256::ecdsa::SigningKey),
    SkEd25519(ed25519_dalek::SigningKey),
    /// A plain `ssh-ed25519` key, as most agents also hold.
    PlainEd25519(ed25519_dalek::SigningKey),
}

#[derive(Clone)]
pub struct TestKey {
    pub kind: KeyKind,
    pub application: String,
    pub comment: String,
}

impl TestKey {
    pub fn sk_ecdsa() -> TestKey {
        TestKey {
            kind: KeyKind::SkEcdsa(p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng)),
            application: "ssh:".into(),
            comment: "ecdsa-sk test key".into(),
        }
    }

    pub fn sk_ed25519() -> TestKey {
        TestKey {
            kind: KeyKind::SkEd25519(ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng)),
            application: "ssh:".into(),
            comment: "ed25519-sk test key".into(),
        }
    }

    pub fn plain_ed25519() -> TestKey {
        TestKey {
            kind: KeyKind::PlainEd25519(ed25519_dalek::SigningKey::generate(
                &mut rand::rngs::OsRng,
            )),
            application: String::new(),
            comment: "plain ed25519".into(),
        }
    }

    /// A key of the same type and application with a different private key.
    pub fn impostor(&self) -> TestKey {
        let mut k = match self.kind {
            KeyKind::SkEcdsa(_) => TestKey::sk_ecdsa(),
            KeyKind::SkEd25519(_) => TestKey::sk_ed25519(),
            KeyKind::PlainEd25519(_) => TestKey::plain_ed25519(),
        };
        k.application = self.application.clone();
        k
    }

    pub fn algorithm(&self) -> &'static str {
        match self.kind {
            KeyKind::SkEcdsa(_) => SK_ECDSA,
            KeyKind::SkEd25519(_) => SK_ED25519,
            KeyKind::PlainEd25519(_) => "ssh-ed25519",
        }
    }

    /// The public key blob (PROTOCOL.u2f formats).
    pub fn public_blob(&self) -> Vec<u8> {
        let mut b = Vec::new();
        put_string(&mut b, self.algorithm().as_bytes());
        match &self.kind {
            KeyKind::SkEcdsa(k) => {
                put_string(&mut b, b"nistp256");
                put_string(&mut b, k.verifying_key().to_encoded_point(false).as_bytes());
                put_string(&mut b, self.application.as_bytes());
            }
            KeyKind::SkEd25519(k) => {
                put_string(&mut b, k.verifying_key().as_bytes());
                put_string(&mut b, self.application.as_bytes());
            }
            KeyKind::PlainEd25519(k) => put_string(&mut b, k.verifying_key().as_bytes()),
        }
        b
    }

    /// `<algorithm> <base64> <comment>`, what an operator would enrol.
    pub fn openssh_line(&self) -> String {
        use base64::Engine as _;
        format!(
            "{} {} {}",
            self.algorithm(),
            base64::engine::general_purpose::STANDARD.encode(self.public_blob()),
            self.comment
        )
    }

    /// The agent's signature blob over `data`, as a security key makes it.
    pub fn sign(&self, data: &[u8], flags: u8, counter: u32) -> Vec<u8> {
        let mut signed = Vec::new();
        signed.extend_from_slice(&Sha256::digest(self.application.as_bytes()));
        signed.push(flags);
        signed.extend_from_slice(&counter.to_be_bytes());
        signed.extend_from_slice(&Sha256::digest(data));
        let mut out = Vec::new();
        put_string(&mut out, self.algorithm().as_bytes());
        match &self.kind {
            KeyKind::SkEcdsa(k) => {
                // ECDSA P-256 with SHA-256 over the signed blob.
                let sig: p256::ecdsa::Signature = k.sign(&signed);
                let (r, s) = sig.split_bytes();
                let mut inner = Vec::new();
                put_mpint(&mut inner, &r);
                put_mpint(&mut inner, &s);
                put_string(&mut out, &inner);
                out.push(flags);
                out.extend_from_slice(&counter.to_be_bytes());
            }
            KeyKind::SkEd25519(k) => {
                use ed25519_dalek::Signer as _;
                put_string(&mut out, &k.sign(&signed).to_bytes());
                out.push(flags);
                out.extend_from_slice(&counter.to_be_bytes());
            }
            KeyKind::PlainEd25519(k) => {
                use ed25519_dalek::Signer as _;
                put_string(&mut out, &k.sign(data).to_bytes());
            }
        }
        out
    }
}

/// How the agent misbehaves.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Clear the user-presence flag (a key configured no-touch-required).
    pub omit_presence: bool,
    /// Do not advance the counter (a cloned key, or a replayed signature).
    pub repeat_counter: bool,
    /// Sign with a different private key than the one listed.
    pub sign_with_other_key: bool,
    /// Answer SSH_AGENT_FAILURE to sign requests (touch not given).
    pub refuse: bool,
    /// Never answer sign requests (the operator never touches).
    pub hang: bool,
    /// Extra flag bits to set (e.g. 0x04 user verified).
    pub extra_flags: u8,
}

struct State {
    keys: Vec<(TestKey, TestKey, u32)>, // (listed key, impostor, counter)
    behaviour: Behaviour,
    sign_requests: usize,
}

pub struct TestAgent {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestAgent {
    pub async fn start(keys: Vec<TestKey>) -> TestAgent {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let state = Arc::new(Mutex::new(State {
            keys: keys
                .into_iter()
                .map(|k| {
                    let imp = k.impostor();
                    (k, imp, 100)
                })
                .collect(),
            behaviour: Behaviour::default(),
            sign_requests: 0,
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve(conn, st).await;
                });
            }
        });
        TestAgent {
            path,
            _dir: dir,
            state,
            task,
        }
    }

    pub fn set(&self, behaviour: Behaviour) {
        self.state.lock().unwrap().behaviour = behaviour;
    }

    pub fn sign_requests(&self) -> usize {
        self.state.lock().unwrap().sign_requests
    }
}

async fn serve(mut conn: UnixStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    loop {
        let mut len = [0u8; 4];
        conn.read_exact(&mut len).await?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        conn.read_exact(&mut body).await?;
        let reply = handle(&body, &state);
        let Some(reply) = reply else {
            // hang: never answer
            std::future::pending::<()>().await;
            return Ok(());
        };
        let mut frame = (reply.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&reply);
        conn.write_all(&frame).await?;
    }
}

fn handle(body: &[u8], state: &Mutex<State>) -> Option<Vec<u8>> {
    let mut st = state.lock().unwrap();
    match body.first() {
        Some(11) => {
            let mut out = vec![12u8];
            out.extend_from_slice(&(st.keys.len() as u32).to_be_bytes());
            for (k, _, _) in &st.keys {
                put_string(&mut out, &k.public_blob());
                put_string(&mut out, k.comment.as_bytes());
            }
            Some(out)
        }
        Some(13) => {
            st.sign_requests += 1;
            let mut r = &body[1..];
            let blob = get_string(&mut r);
            let data = get_string(&mut r);
            let b = st.behaviour.clone();
            if b.hang {
                return None;
            }
            if b.refuse {
                return Some(vec![5]);
            }
            let Some(entry) = st.keys.iter_mut().find(|(k, _, _)| k.public_blob() == blob) else {
                return Some(vec![5]);
            };
            if !b.repeat_counter {
                entry.2 += 1;
            }
            let counter = entry.2;
            let flags = (if b.omit_presence { 0 } else { 0x01 }) | b.extra_flags;
            let signer = if b.sign_with_other_key {
                &entry.1
            } else {
                &entry.0
            };
            let sig = signer.sign(&data, flags, counter);
            let mut out = vec![14u8];
            put_string(&mut out, &sig);
            Some(out)
        }
        _ => Some(vec![5]),
    }
}

pub fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

fn put_mpint(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut v: Vec<u8> = bytes.iter().copied().skip_while(|&b| b == 0).collect();
    if v.first().is_some_and(|b| b & 0x80 != 0) {
        v.insert(0, 0);
    }
    put_string(out, &v);
}

fn get_string(r: &mut &[u8]) -> Vec<u8> {
    let n = u32::from_be_bytes([r[0], r[1], r[2], r[3]]) as usize;
    let s = r[4..4 + n].to_vec();
    *r = &r[4 + n..];
    s
}
