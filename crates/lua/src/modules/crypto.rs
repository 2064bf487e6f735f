//! The `crypto` module: `random.bytes/string/uuid`, `hmac.sha256/sha512`, AEAD `encrypt.aes` /
//! `encrypt.chacha20` and their `decrypt`, `pbkdf2` and `constant_time_compare`.
//!
//! All randomness (random values, cipher nonces) comes from [`entropy`], so a workflow's seeded
//! source replays it. Binary results (random bytes, ciphertexts, derived keys) are
//! [`Bytes`](convert::Bytes) values; inputs may be strings or bytes. Every function returns
//! `value, err`: bad lengths, empty or wrong-size keys are Invalid, a failed decryption Internal.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes192;
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use chacha20poly1305::ChaCha20Poly1305;
use hmac::{Hmac, Mac};
use mlua::{Function, Lua, Table, Value};
use subtle::ConstantTimeEq;

use crate::convert::{self, Bytes};
use crate::entropy;
use crate::failure::{self, Failure};
use crate::modules::uuid;

/// Largest `random.bytes` / `random.string` length.
const MAX_RANDOM_LEN: i64 = 1 << 20;
const MAX_PBKDF2_ITERATIONS: i64 = 10_000_000;
const NONCE_LEN: usize = 12;
const ALPHANUMERIC: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

type Aes192Gcm = AesGcm<Aes192, U12>;

pub fn register(lua: &Lua) -> mlua::Result<Table> {
    let module = lua.create_table()?;

    let random = lua.create_table()?;
    random.set("bytes", lua.create_function(|lua, n: Value| failure::returned(lua, random_bytes(lua, &n)))?)?;
    random.set(
        "string",
        lua.create_function(|lua, (n, charset): (Value, Option<String>)| {
            failure::returned(lua, random_string(lua, &n, charset.as_deref()))
        })?,
    )?;
    random.set("uuid", lua.create_function(|lua, ()| failure::returned(lua, Ok::<_, Failure>(uuid::v4(lua))))?)?;
    module.set("random", random)?;

    let hmac = lua.create_table()?;
    hmac.set("sha256", hmac_function::<Hmac<sha2::Sha256>>(lua, "crypto.hmac.sha256")?)?;
    hmac.set("sha512", hmac_function::<Hmac<sha2::Sha512>>(lua, "crypto.hmac.sha512")?)?;
    module.set("hmac", hmac)?;

    let encrypt = lua.create_table()?;
    encrypt.set("aes", lua.create_function(|lua, args: (Value, Value, Value)| seal_with(lua, Cipher::Aes, args))?)?;
    encrypt.set(
        "chacha20",
        lua.create_function(|lua, args: (Value, Value, Value)| seal_with(lua, Cipher::ChaCha, args))?,
    )?;
    module.set("encrypt", encrypt)?;

    let decrypt = lua.create_table()?;
    decrypt.set("aes", lua.create_function(|lua, args: (Value, Value, Value)| open_with(lua, Cipher::Aes, args))?)?;
    decrypt.set(
        "chacha20",
        lua.create_function(|lua, args: (Value, Value, Value)| open_with(lua, Cipher::ChaCha, args))?,
    )?;
    module.set("decrypt", decrypt)?;

    module.set("pbkdf2", lua.create_function(pbkdf2)?)?;
    module.set(
        "constant_time_compare",
        lua.create_function(|_, (a, b): (Value, Value)| {
            Ok(match (convert::bytes_or_string(&a), convert::bytes_or_string(&b)) {
                (Some(a), Some(b)) => bool::from(a.ct_eq(&b)),
                _ => false,
            })
        })?,
    )?;
    Ok(module)
}

fn data_arg(name: &str, what: &str, value: &Value) -> Result<Vec<u8>, Failure> {
    convert::bytes_or_string(value)
        .ok_or_else(|| Failure::invalid(format!("{name}: {what} must be a string, got {}", value.type_name())))
}

fn length_arg(name: &str, value: &Value, max: i64) -> Result<usize, Failure> {
    let n = match value {
        Value::Integer(n) => Some(*n),
        Value::Number(f) if f.fract() == 0.0 => Some(*f as i64),
        _ => None,
    };
    match n {
        Some(n) if (1..=max).contains(&n) => Ok(n as usize),
        _ => Err(Failure::invalid(format!("{name}: length must be an integer in 1..{max}"))),
    }
}

fn random_bytes(lua: &Lua, n: &Value) -> Result<Bytes, Failure> {
    let n = length_arg("crypto.random.bytes", n, MAX_RANDOM_LEN)?;
    let mut bytes = vec![0u8; n];
    entropy::fill_bytes(lua, &mut bytes);
    Ok(Bytes(bytes))
}

fn random_string(lua: &Lua, n: &Value, charset: Option<&str>) -> Result<String, Failure> {
    let n = length_arg("crypto.random.string", n, MAX_RANDOM_LEN)?;
    let chars: Vec<char> = charset.unwrap_or(ALPHANUMERIC).chars().collect();
    if chars.is_empty() {
        return Err(Failure::invalid("crypto.random.string: charset must not be empty"));
    }
    let bound = chars.len() as u32;
    // Rejection sampling keeps every character equally likely.
    let zone = u32::MAX - u32::MAX % bound;
    let mut out = String::with_capacity(n);
    let mut remaining = n;
    let mut pool = vec![0u8; 4 * n];
    loop {
        entropy::fill_bytes(lua, &mut pool);
        for word in pool.chunks_exact(4) {
            let x = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            if x < zone {
                out.push(chars[(x % bound) as usize]);
                remaining -= 1;
                if remaining == 0 {
                    return Ok(out);
                }
            }
        }
    }
}

fn hmac_function<M: Mac + KeyInit>(lua: &Lua, name: &'static str) -> mlua::Result<Function> {
    lua.create_function(move |lua, (key, data): (Value, Value)| {
        let digest = (|| {
            let key = data_arg(name, "key", &key)?;
            let data = data_arg(name, "data", &data)?;
            if key.is_empty() {
                return Err(Failure::invalid(format!("{name}: key must not be empty")));
            }
            let mut mac = <M as Mac>::new_from_slice(&key).map_err(|e| Failure::invalid(format!("{name}: {e}")))?;
            mac.update(&data);
            Ok(convert::hex(&mac.finalize().into_bytes()))
        })();
        failure::returned(lua, digest)
    })
}

#[derive(Clone, Copy)]
enum Cipher {
    Aes,
    ChaCha,
}

impl Cipher {
    fn name(self, op: &str) -> String {
        match self {
            Cipher::Aes => format!("crypto.{op}.aes"),
            Cipher::ChaCha => format!("crypto.{op}.chacha20"),
        }
    }

    /// Runs `f` with the AEAD for `key`, checking the key size.
    fn with_aead<R>(self, name: &str, key: &[u8], f: impl AeadUser<R>) -> Result<R, Failure> {
        let wrong = || match self {
            Cipher::Aes => Failure::invalid(format!("{name}: key must be 16, 24 or 32 bytes, got {}", key.len())),
            Cipher::ChaCha => Failure::invalid(format!("{name}: key must be 32 bytes, got {}", key.len())),
        };
        match (self, key.len()) {
            (Cipher::Aes, 16) => Ok(f.run(Aes128Gcm::new_from_slice(key).map_err(|_| wrong())?)),
            (Cipher::Aes, 24) => Ok(f.run(Aes192Gcm::new_from_slice(key).map_err(|_| wrong())?)),
            (Cipher::Aes, 32) => Ok(f.run(Aes256Gcm::new_from_slice(key).map_err(|_| wrong())?)),
            (Cipher::ChaCha, 32) => Ok(f.run(ChaCha20Poly1305::new_from_slice(key).map_err(|_| wrong())?)),
            _ => Err(wrong()),
        }
    }
}

/// A generic closure over the concrete AEAD type (closures cannot be generic themselves).
trait AeadUser<R> {
    fn run<A: Aead>(self, aead: A) -> R;
}

struct Seal<'a> {
    nonce: [u8; NONCE_LEN],
    data: &'a [u8],
    aad: &'a [u8],
}

impl AeadUser<Result<Vec<u8>, aes_gcm::Error>> for Seal<'_> {
    fn run<A: Aead>(self, aead: A) -> Result<Vec<u8>, aes_gcm::Error> {
        let sealed = aead.encrypt(self.nonce.as_slice().into(), Payload { msg: self.data, aad: self.aad })?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }
}

struct Open<'a> {
    sealed: &'a [u8],
    aad: &'a [u8],
}

impl AeadUser<Result<Vec<u8>, aes_gcm::Error>> for Open<'_> {
    fn run<A: Aead>(self, aead: A) -> Result<Vec<u8>, aes_gcm::Error> {
        let (nonce, body) = self.sealed.split_at(NONCE_LEN);
        aead.decrypt(nonce.into(), Payload { msg: body, aad: self.aad })
    }
}

fn optional_aad(name: &str, aad: &Value) -> Result<Vec<u8>, Failure> {
    if aad.is_nil() { Ok(Vec::new()) } else { data_arg(name, "aad", aad) }
}

/// `encrypt.*(data, key, aad?)` → nonce ‖ ciphertext ‖ tag as bytes.
fn seal_with(lua: &Lua, cipher: Cipher, (data, key, aad): (Value, Value, Value)) -> mlua::Result<(Value, Value)> {
    let name = cipher.name("encrypt");
    let sealed = (|| {
        let data = data_arg(&name, "data", &data)?;
        let key = data_arg(&name, "key", &key)?;
        let aad = optional_aad(&name, &aad)?;
        let mut nonce = [0u8; NONCE_LEN];
        entropy::fill_bytes(lua, &mut nonce);
        cipher
            .with_aead(&name, &key, Seal { nonce, data: &data, aad: &aad })?
            .map(Bytes)
            .map_err(|_| Failure::internal(format!("{name}: encryption failed")))
    })();
    failure::returned(lua, sealed)
}

/// `decrypt.*(sealed, key, aad?)` → the plaintext as a string.
fn open_with(lua: &Lua, cipher: Cipher, (sealed, key, aad): (Value, Value, Value)) -> mlua::Result<(Value, Value)> {
    let name = cipher.name("decrypt");
    let opened = (|| {
        let sealed = data_arg(&name, "data", &sealed)?;
        let key = data_arg(&name, "key", &key)?;
        let aad = optional_aad(&name, &aad)?;
        if sealed.len() < NONCE_LEN {
            return Err(Failure::internal(format!("{name}: ciphertext too short")));
        }
        cipher
            .with_aead(&name, &key, Open { sealed: &sealed, aad: &aad })?
            .map_err(|_| Failure::internal(format!("{name}: decryption failed (wrong key, aad or corrupted data)")))
    })();
    match opened {
        Ok(plain) => Ok((Value::String(lua.create_string(plain)?), Value::Nil)),
        Err(failure) => failure::returned(lua, Err::<Value, _>(failure)),
    }
}

/// `pbkdf2(password, salt, iterations, key_len, "sha256"|"sha512"?)` → derived key bytes.
fn pbkdf2(
    lua: &Lua,
    (password, salt, iterations, key_len, hash): (Value, Value, Value, Value, Option<String>),
) -> mlua::Result<(Value, Value)> {
    const NAME: &str = "crypto.pbkdf2";
    let derived = (|| {
        let password = data_arg(NAME, "password", &password)?;
        let salt = data_arg(NAME, "salt", &salt)?;
        let rounds = length_arg(NAME, &iterations, MAX_PBKDF2_ITERATIONS)
            .map_err(|_| Failure::invalid(format!("{NAME}: iterations must be in 1..{MAX_PBKDF2_ITERATIONS}")))?;
        let mut key = vec![0u8; length_arg(NAME, &key_len, 1024)?];
        let rounds = u32::try_from(rounds).unwrap_or(u32::MAX);
        match hash.as_deref().unwrap_or("sha256") {
            "sha256" => pbkdf2::pbkdf2_hmac::<sha2::Sha256>(&password, &salt, rounds, &mut key),
            "sha512" => pbkdf2::pbkdf2_hmac::<sha2::Sha512>(&password, &salt, rounds, &mut key),
            other => {
                return Err(Failure::invalid(format!("{NAME}: unknown hash {other:?} (sha256 or sha512)")));
            }
        }
        Ok(Bytes(key))
    })();
    failure::returned(lua, derived)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::entropy::Entropy;

    struct Counter(u8);
    impl Entropy for Counter {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
        }
    }

    use crate::testing::check;

    fn lua() -> Lua {
        crate::testing::vm_with("crypto", register)
    }

    #[test]
    fn random_values() {
        let lua = lua();
        check(
            &lua,
            r#"local b = crypto.random.bytes(16) local s = crypto.random.string(20)
            return #b == 16 and b:len() == 16 and #s == 20 and s:match("^[%w]+$") ~= nil
                and #crypto.random.uuid() == 36 and crypto.random.string(8, "ab"):match("^[ab]+$") ~= nil
                and utf8.len(crypto.random.string(5, "äö")) == 5"#,
        );
        check(&lua, r#"local v, err = crypto.random.bytes(0) return v == nil and err:kind() == "Invalid""#);
        check(
            &lua,
            r#"return select(2, crypto.random.bytes(2^21)):kind() == "Invalid"
            and select(2, crypto.random.string(3, "")):kind() == "Invalid""#,
        );
    }

    #[test]
    fn random_values_follow_the_entropy_source() {
        let lua = lua();
        lua.set_app_data::<Box<dyn Entropy>>(Box::new(Counter(0)));
        check(&lua, r#"return crypto.random.bytes(3):hex() == "010203""#);
    }

    #[test]
    fn hmac() {
        let lua = lua();
        check(
            &lua,
            r#"return crypto.hmac.sha256("key", "The quick brown fox jumps over the lazy dog")
            == "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
            and #crypto.hmac.sha512("k", "d") == 128
            and select(2, crypto.hmac.sha256("", "d")):kind() == "Invalid""#,
        );
    }

    #[test]
    fn aead_round_trips() {
        let lua = lua();
        check(
            &lua,
            r#"
            for _, len in ipairs({16, 24, 32}) do
                local key = string.rep("k", len)
                local sealed = crypto.encrypt.aes("secret", key, "aad")
                if #sealed ~= 12 + 6 + 16 or crypto.decrypt.aes(sealed, key, "aad") ~= "secret" then return false end
                local v, err = crypto.decrypt.aes(sealed, key, "other")
                if v ~= nil or err:kind() ~= "Internal" then return false end
            end
            local key = crypto.random.bytes(32)
            local sealed = crypto.encrypt.chacha20("hello", key)
            return crypto.decrypt.chacha20(sealed, key) == "hello"
                and crypto.decrypt.chacha20(sealed:string(), key:string()) == "hello"
                and select(2, crypto.encrypt.aes("x", "short")):kind() == "Invalid"
                and select(2, crypto.encrypt.chacha20("x", string.rep("k", 16))):kind() == "Invalid"
                and select(2, crypto.decrypt.aes("tiny", string.rep("k", 16))):kind() == "Internal""#,
        );
    }

    #[test]
    fn pbkdf2_and_compare() {
        let lua = lua();
        // RFC 7914 §11 test vector for PBKDF2-HMAC-SHA256.
        check(
            &lua,
            r#"return crypto.pbkdf2("passwd", "salt", 1, 64):hex():sub(1, 16) == "55ac046e56e3089f"
            and #crypto.pbkdf2("pw", "salt", 1000, 32, "sha512") == 32
            and select(2, crypto.pbkdf2("pw", "salt", 0, 32)):kind() == "Invalid"
            and select(2, crypto.pbkdf2("pw", "salt", 1, 32, "md5")):kind() == "Invalid"
            and crypto.constant_time_compare("abc", "abc") and not crypto.constant_time_compare("abc", "abd")
            and not crypto.constant_time_compare("abc", "ab") and not crypto.constant_time_compare(1, 1)"#,
        );
    }
}
