//! VNC authentication (security type 2): the DES challenge-response Accord
//! answers on the upstream leg, so the local server's password stays with
//! the agent and the technician never sees it.
//!
//! The scheme is weak by today's standards (56-bit DES, 8-character
//! password); it only protects the loopback hop, the technician's leg is
//! mutual TLS.

use des::Des;
use des::cipher::generic_array::GenericArray;
use des::cipher::{BlockEncrypt, KeyInit};

/// The 16-byte response to a VNC authentication challenge.
///
/// The password is truncated or zero-padded to 8 bytes, and each key byte
/// is bit-reversed: the original VNC code fed DES with the bits of each
/// byte in the opposite order, and every server since expects that.
pub fn vnc_auth_response(password: &[u8], challenge: &[u8; 16]) -> [u8; 16] {
    let mut key = [0u8; 8];
    for (k, p) in key.iter_mut().zip(password) {
        *k = p.reverse_bits();
    }
    let cipher = Des::new(&GenericArray::from(key));
    let mut response = *challenge;
    for half in response.chunks_exact_mut(8) {
        cipher.encrypt_block(GenericArray::from_mut_slice(half));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .filter_map(|i| s.get(i..i + 2))
            .filter_map(|h| u8::from_str_radix(h, 16).ok())
            .collect()
    }

    /// Vectors computed independently with Python's pycryptodome:
    /// `DES.new(bytes(int(f"{b:08b}"[::-1], 2) for b in pw.ljust(8, b"\0")[:8]),
    /// DES.MODE_ECB).encrypt(challenge)`.
    #[test]
    fn known_vectors() {
        let challenge: [u8; 16] = std::array::from_fn(|i| i as u8);
        assert_eq!(
            vnc_auth_response(b"password", &challenge).to_vec(),
            hex("b866924125c8eebb9debc1db61c538e2")
        );
        let mut challenge = [0u8; 16];
        challenge.copy_from_slice(&hex("f0e1d2c3b4a5968778695a4b3c2d1e0f"));
        assert_eq!(
            vnc_auth_response(b"pw", &challenge).to_vec(),
            hex("2da98d37db999213775993c7793e4dee")
        );
    }

    #[test]
    fn password_is_truncated_to_eight_bytes() {
        let challenge = [7u8; 16];
        assert_eq!(
            vnc_auth_response(b"passwordXYZ", &challenge),
            vnc_auth_response(b"password", &challenge)
        );
        assert_eq!(
            vnc_auth_response(b"pw", &challenge),
            vnc_auth_response(b"pw\0\0\0\0\0\0", &challenge)
        );
    }
}
