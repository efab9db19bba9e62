//! Yubico OTP, checked offline with the key's AES secret.
//!
//! A YubiKey types 44 modhex characters: a 12-character public id and a
//! 32-character token. The token is 16 bytes AES-128-ECB-encrypted:
//!
//! ```text
//! private id (6) | usage counter (2, LE) | timestamp (3, LE) | session use (1) | random (2, LE) | CRC-16 (2, LE)
//! ```
//!
//! The CRC-16 (ISO 13239) over all 16 bytes leaves the residue 0xf0b8. The
//! top bit of the usage counter is a caps-lock flag, not part of the count.
//! A validation-server client (protocol 2.0) is in [`validation`].

pub mod validation;

use aes::Aes128;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit, generic_array::GenericArray};

use super::{FactorKind, MfaError, Secret, StepUpProof};

pub const OTP_LEN: usize = 44;
pub const PUBLIC_ID_LEN: usize = 12;
pub const TOKEN_LEN: usize = 32;
const MODHEX: &[u8; 16] = b"cbdefghijklnrtuv";
const CRC_RESIDUE: u16 = 0xf0b8;
const COUNTER_MASK: u16 = 0x7fff;

/// A YubiKey's AES-128 secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AesKey(Secret<[u8; 16]>);

impl AesKey {
    pub fn new(bytes: [u8; 16]) -> AesKey {
        AesKey(Secret::new(bytes))
    }

    /// From the 32 hex digits `ykpersonalize` / the YubiKey Manager print.
    pub fn from_hex(hex_str: &str) -> Result<AesKey, MfaError> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(hex_str.trim(), &mut out)
            .map_err(|_| MfaError::BadEnrolledKey("AES key must be 32 hex digits".into()))?;
        Ok(AesKey::new(out))
    }

    /// The key bytes, for sealing them at rest. Never print them.
    pub fn expose(&self) -> &[u8; 16] {
        self.0.expose()
    }

    fn cipher(&self) -> Aes128 {
        Aes128::new(GenericArray::from_slice(self.0.expose()))
    }
}

impl std::fmt::Debug for AesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesKey(***)")
    }
}

/// The 6-byte private id inside the token (secret: it proves the token was
/// made by this key).
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateId(Secret<[u8; 6]>);

impl PrivateId {
    pub fn new(bytes: [u8; 6]) -> PrivateId {
        PrivateId(Secret::new(bytes))
    }

    pub fn from_hex(hex_str: &str) -> Result<PrivateId, MfaError> {
        let mut out = [0u8; 6];
        hex::decode_to_slice(hex_str.trim(), &mut out)
            .map_err(|_| MfaError::BadEnrolledKey("private id must be 12 hex digits".into()))?;
        Ok(PrivateId::new(out))
    }

    /// The private id bytes, for sealing them at rest. Never print them.
    pub fn expose(&self) -> &[u8; 6] {
        self.0.expose()
    }
}

impl std::fmt::Debug for PrivateId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateId(***)")
    }
}

/// An enrolled OTP key, as the operator store hands it over.
#[derive(Debug, Clone)]
pub struct OtpKeyRecord {
    /// 12 modhex characters.
    pub public_id: String,
    pub aes_key: AesKey,
    pub private_id: PrivateId,
    /// (usage counter, session use) of the last accepted OTP; `None` before
    /// the first use.
    pub last_counter: Option<(u16, u8)>,
}

/// A successful OTP check. Store `counter` as the key's new
/// `last_counter`; keep `proof` for the session.
#[derive(Debug, Clone)]
pub struct OtpAccepted {
    pub public_id: String,
    /// (usage counter, session use).
    pub counter: (u16, u8),
    proof: StepUpProof,
}

impl OtpAccepted {
    pub fn proof(&self) -> &StepUpProof {
        &self.proof
    }

    pub fn into_proof(self) -> StepUpProof {
        self.proof
    }
}

/// The fields of a token, for [`generate_otp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpToken {
    pub private_id: PrivateId,
    /// Non-volatile usage counter (15 bits; the top bit is the caps-lock flag).
    pub usage_counter: u16,
    /// 24-bit timestamp (8 Hz ticks since power-up).
    pub timestamp: u32,
    /// Volatile session use counter.
    pub session_use: u8,
    pub random: u16,
}

/// Normalise what was typed: trim, lower-case, check length and alphabet.
/// Returns the 44 canonical characters.
pub fn normalise(otp: &str) -> Result<String, MfaError> {
    let otp = otp.trim().to_ascii_lowercase();
    let got = otp.chars().count();
    if got != OTP_LEN {
        return Err(MfaError::WrongLength { got, want: OTP_LEN });
    }
    if !otp.bytes().all(|b| MODHEX.contains(&b)) {
        return Err(MfaError::NotModhex);
    }
    Ok(otp)
}

/// The public id of a typed OTP (to look up the enrolled key first).
pub fn public_id_of(otp: &str) -> Result<String, MfaError> {
    Ok(normalise(otp)?[..PUBLIC_ID_LEN].to_string())
}

/// Check an OTP against one enrolled key, offline. Pure apart from the
/// proof's timestamp.
pub fn verify_otp(otp: &str, key: &OtpKeyRecord) -> Result<OtpAccepted, MfaError> {
    let otp = normalise(otp)?;
    let (public_id, token) = otp.split_at(PUBLIC_ID_LEN);
    if public_id != key.public_id.to_ascii_lowercase() {
        return Err(MfaError::UnknownPublicId(public_id.to_string()));
    }
    let mut block = [0u8; 16];
    modhex_decode(token, &mut block)?;
    let mut ga = GenericArray::from(block);
    key.aes_key.cipher().decrypt_block(&mut ga);
    let plain: [u8; 16] = ga.into();
    if crc16(&plain) != CRC_RESIDUE {
        return Err(MfaError::CrcMismatch);
    }
    if plain[..6] != key.private_id.0.expose()[..] {
        return Err(MfaError::PrivateIdMismatch);
    }
    let usage = u16::from_le_bytes([plain[6], plain[7]]) & COUNTER_MASK;
    let session_use = plain[11];
    let counter = (usage, session_use);
    if let Some(last) = key.last_counter
        && counter <= last
    {
        return Err(MfaError::Replayed { got: counter, last });
    }
    Ok(OtpAccepted {
        public_id: public_id.to_string(),
        counter,
        proof: StepUpProof::new(public_id.to_string(), FactorKind::YubicoOtp, None, None),
    })
}

/// Make an OTP the way a YubiKey does (demo keys and tests).
pub fn generate_otp(public_id: &str, key: &AesKey, token: &OtpToken) -> Result<String, MfaError> {
    let public_id = public_id.to_ascii_lowercase();
    if public_id.len() != PUBLIC_ID_LEN {
        return Err(MfaError::WrongLength {
            got: public_id.len(),
            want: PUBLIC_ID_LEN,
        });
    }
    if !public_id.bytes().all(|b| MODHEX.contains(&b)) {
        return Err(MfaError::NotModhex);
    }
    let mut plain = [0u8; 16];
    plain[..6].copy_from_slice(token.private_id.0.expose());
    plain[6..8].copy_from_slice(&token.usage_counter.to_le_bytes());
    let ts = token.timestamp.to_le_bytes();
    plain[8..11].copy_from_slice(&ts[..3]);
    plain[11] = token.session_use;
    plain[12..14].copy_from_slice(&token.random.to_le_bytes());
    let crc = !crc16(&plain[..14]);
    plain[14..16].copy_from_slice(&crc.to_le_bytes());
    let mut ga = GenericArray::from(plain);
    key.cipher().encrypt_block(&mut ga);
    Ok(format!("{public_id}{}", modhex_encode(&ga)))
}

pub fn modhex_encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(MODHEX[usize::from(b >> 4)] as char);
        s.push(MODHEX[usize::from(b & 0x0f)] as char);
    }
    s
}

/// Decode modhex into `out`; the input must be exactly twice as long.
pub fn modhex_decode(s: &str, out: &mut [u8]) -> Result<(), MfaError> {
    let bytes = s.as_bytes();
    if bytes.len() != out.len() * 2 {
        return Err(MfaError::WrongLength {
            got: bytes.len(),
            want: out.len() * 2,
        });
    }
    let nibble = |c: u8| -> Result<u8, MfaError> {
        MODHEX
            .iter()
            .position(|&m| m == c)
            .and_then(|p| u8::try_from(p).ok())
            .ok_or(MfaError::NotModhex)
    };
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Ok(())
}

/// CRC-16/ISO-13239 (X.25 polynomial, reflected), without the final inversion.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xffff;
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            let lsb = crc & 1;
            crc >>= 1;
            if lsb != 0 {
                crc ^= 0x8408;
            }
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> OtpKeyRecord {
        OtpKeyRecord {
            public_id: "vvcccccbdefg".into(),
            aes_key: AesKey::from_hex("00112233445566778899aabbccddeeff").unwrap(),
            private_id: PrivateId::from_hex("0a0b0c0d0e0f").unwrap(),
            last_counter: None,
        }
    }

    fn token(usage: u16, session_use: u8) -> OtpToken {
        OtpToken {
            private_id: PrivateId::from_hex("0a0b0c0d0e0f").unwrap(),
            usage_counter: usage,
            timestamp: 0x12_3456,
            session_use,
            random: 0xbeef,
        }
    }

    #[test]
    fn modhex_round_trip() {
        let enc = modhex_encode(&[0x00, 0x12, 0xef, 0xff]);
        assert_eq!(enc, "ccbduvvv"); // same as yubiotp.modhex.modhex
        let mut out = [0u8; 4];
        modhex_decode(&enc, &mut out).unwrap();
        assert_eq!(out, [0x00, 0x12, 0xef, 0xff]);
        assert_eq!(modhex_decode("cx", &mut [0u8; 1]), Err(MfaError::NotModhex));
    }

    #[test]
    fn generated_otp_verifies_and_counter_rises() {
        let mut rec = record();
        let otp = generate_otp(&rec.public_id, &rec.aes_key, &token(5, 3)).unwrap();
        assert_eq!(otp.len(), 44);
        let ok = verify_otp(&otp, &rec).unwrap();
        assert_eq!(ok.counter, (5, 3));
        assert_eq!(ok.proof().factor(), FactorKind::YubicoOtp);
        assert_eq!(ok.proof().key_id(), "vvcccccbdefg");
        rec.last_counter = Some(ok.counter);
        assert_eq!(
            verify_otp(&otp, &rec).unwrap_err().to_string(),
            "replayed OTP (counter 5/3 not above last accepted 5/3)"
        );
        let next = generate_otp(&rec.public_id, &rec.aes_key, &token(5, 4)).unwrap();
        assert_eq!(verify_otp(&next, &rec).unwrap().counter, (5, 4));
        let new_session = generate_otp(&rec.public_id, &rec.aes_key, &token(6, 0)).unwrap();
        assert_eq!(verify_otp(&new_session, &rec).unwrap().counter, (6, 0));
    }

    #[test]
    fn caps_lock_bit_is_not_part_of_the_counter() {
        let rec = record();
        let otp = generate_otp(&rec.public_id, &rec.aes_key, &token(0x8000 | 7, 1)).unwrap();
        assert_eq!(verify_otp(&otp, &rec).unwrap().counter, (7, 1));
    }

    #[test]
    fn typed_with_spaces_and_capitals_is_accepted() {
        let rec = record();
        let otp = generate_otp(&rec.public_id, &rec.aes_key, &token(1, 0)).unwrap();
        let typed = format!("  {}\n", otp.to_ascii_uppercase());
        assert!(verify_otp(&typed, &rec).is_ok());
    }

    #[test]
    fn modhex_of_the_wrong_length_says_both_lengths() {
        let mut out = [0u8; 6];
        assert_eq!(
            modhex_decode("cbdef", &mut out),
            Err(MfaError::WrongLength { got: 5, want: 12 })
        );
    }

    #[test]
    fn debug_output_hides_secrets() {
        let dbg = format!("{:?}", record());
        assert!(!dbg.contains("00112233"), "{dbg}");
        assert!(!dbg.contains("0a0b0c"), "{dbg}");
        assert!(dbg.contains("AesKey(***)"));
        assert!(dbg.contains("PrivateId(***)"), "{dbg}");
        assert_eq!(format!("{:?}", record().private_id), "PrivateId(***)");
    }

    #[test]
    fn crc_residue_of_a_good_token() {
        let mut plain = [1u8; 16];
        let crc = !crc16(&plain[..14]);
        plain[14..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(crc16(&plain), CRC_RESIDUE);
    }
}
