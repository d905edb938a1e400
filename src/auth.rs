//! Who is connecting, and which rooms they may use.
//!
//! In anonymous mode the user names themself (`?user=`) or gets `anon-<8 hex>`. In JWT mode a
//! token (HS256 with a shared secret, or RS256/ES256 with a PEM public key) names the user in
//! `sub`; its optional `rooms` claim lists the rooms the user may join, a trailing `*` granting
//! a prefix.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, errors::ErrorKind};
use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::{
    domain::{RoomName, UserName},
    settings::{AuthSettings, SettingsError},
};

/// The shortest HS256 secret accepted: RFC 7518 (3.2) asks for a key at least as long as the
/// hash, and a shorter one can be guessed offline from any token.
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// Why a handshake was refused. Each maps to an HTTP status and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("a token is required: send `Authorization: Bearer <jwt>` or `?token=<jwt>`")]
    MissingToken,
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid: {0}")]
    InvalidToken(String),
    /// Anonymous mode: `?user=` is not a valid user name.
    #[error("invalid `user`: {0}")]
    BadUser(String),
}

/// The rooms a user may join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomGrants {
    All,
    Only(Vec<RoomPattern>),
}

/// One entry of a `rooms` claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomPattern {
    Exact(String),
    Prefix(String),
}

impl RoomGrants {
    fn from_claim(rooms: Option<Vec<String>>) -> Self {
        match rooms {
            None => Self::All,
            Some(list) => Self::Only(
                list.into_iter()
                    .map(|entry| match entry.strip_suffix('*') {
                        Some(prefix) => RoomPattern::Prefix(prefix.to_owned()),
                        None => RoomPattern::Exact(entry),
                    })
                    .collect(),
            ),
        }
    }

    pub fn allows(&self, room: &RoomName) -> bool {
        match self {
            Self::All => true,
            Self::Only(patterns) => patterns.iter().any(|p| match p {
                RoomPattern::Exact(name) => name == room.as_str(),
                RoomPattern::Prefix(prefix) => room.as_str().starts_with(prefix.as_str()),
            }),
        }
    }
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: UserName,
    pub rooms: RoomGrants,
    /// When the credentials stop being valid (the token's `exp` plus leeway).
    pub expires_at: Option<SystemTime>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    rooms: Option<Vec<String>>,
}

/// Checks credentials presented at the handshake.
pub enum Authenticator {
    Anonymous,
    Jwt { key: DecodingKey, validation: Box<Validation>, leeway: Duration },
}

impl Authenticator {
    /// Builds the authenticator, reading the public key file if one is configured.
    pub fn from_settings(settings: &AuthSettings) -> Result<Self, SettingsError> {
        let AuthSettings::Jwt { secret, public_key_file, leeway_secs } = settings else {
            return Ok(Self::Anonymous);
        };
        let (key, algorithms) = match (secret, public_key_file) {
            (Some(secret), _) if secret.expose_secret().len() < MIN_HS256_SECRET_BYTES => {
                return Err(SettingsError {
                    variable: "ROOKERY_JWT_SECRET",
                    // Never the secret itself: this ends up in logs.
                    value: format!("<{} bytes>", secret.expose_secret().len()),
                    accepts: format!("an HS256 secret of at least {MIN_HS256_SECRET_BYTES} bytes"),
                });
            }
            (Some(secret), _) => (DecodingKey::from_secret(secret.expose_secret().as_bytes()), vec![Algorithm::HS256]),
            (None, Some(path)) => {
                let invalid = |accepts: String| SettingsError {
                    variable: "ROOKERY_JWT_PUBLIC_KEY_FILE",
                    value: path.display().to_string(),
                    accepts,
                };
                let pem = std::fs::read(path).map_err(|e| invalid(format!("a readable PEM file ({e})")))?;
                if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                    (key, vec![Algorithm::RS256])
                } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
                    (key, vec![Algorithm::ES256])
                } else {
                    return Err(invalid("an RSA or EC (P-256) public key in PEM".into()));
                }
            }
            (None, None) => {
                return Err(SettingsError {
                    variable: "ROOKERY_AUTH",
                    value: "jwt".into(),
                    accepts: "ROOKERY_JWT_SECRET or ROOKERY_JWT_PUBLIC_KEY_FILE to be set".into(),
                });
            }
        };
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        validation.set_required_spec_claims(&["exp", "sub"]);
        // `nbf` when present, with the same leeway as `exp`.
        validation.validate_nbf = true;
        validation.leeway = *leeway_secs;
        Ok(Self::Jwt { key, validation: Box::new(validation), leeway: Duration::from_secs(*leeway_secs) })
    }

    /// Authenticates a handshake from its `?user=` and token (header or query).
    pub fn authenticate(&self, requested_user: Option<&str>, token: Option<&str>) -> Result<Identity, AuthError> {
        match self {
            Self::Anonymous => {
                let user = match requested_user {
                    Some(name) => UserName::parse(name).map_err(|e| AuthError::BadUser(e.to_string()))?,
                    None => anonymous_name(),
                };
                Ok(Identity { user, rooms: RoomGrants::All, expires_at: None })
            }
            Self::Jwt { key, validation, leeway } => {
                let token = token.ok_or(AuthError::MissingToken)?;
                let claims = decode::<Claims>(token, key, validation)
                    .map_err(|e| match e.kind() {
                        ErrorKind::ExpiredSignature => AuthError::Expired,
                        _ => AuthError::InvalidToken(e.to_string()),
                    })?
                    .claims;
                let user = UserName::parse(&claims.sub).map_err(|e| AuthError::InvalidToken(format!("`sub`: {e}")))?;
                // An `exp` far in the future (u64::MAX as "never") is past what a SystemTime holds.
                let expires_at = UNIX_EPOCH
                    .checked_add(Duration::from_secs(claims.exp))
                    .and_then(|exp| exp.checked_add(*leeway))
                    .ok_or_else(|| AuthError::InvalidToken("`exp` is out of range".into()))?;
                Ok(Identity { user, rooms: RoomGrants::from_claim(claims.rooms), expires_at: Some(expires_at) })
            }
        }
    }
}

fn anonymous_name() -> UserName {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    // `anon-` and 8 hex digits always match the user-name pattern.
    UserName::parse(&format!("anon-{}", &hex[..8])).unwrap_or_else(|_| unreachable!())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    #[test]
    fn rooms_claim_grants_exact_names_and_prefixes() {
        let grants = RoomGrants::from_claim(Some(vec!["lobby".into(), "team-*".into()]));
        assert!(grants.allows(&room("lobby")));
        assert!(grants.allows(&room("team-a")) && grants.allows(&room("team-")));
        assert!(!grants.allows(&room("lobby2")) && !grants.allows(&room("team")));
        assert!(RoomGrants::from_claim(None).allows(&room("anything")));
        assert!(!RoomGrants::from_claim(Some(vec![])).allows(&room("lobby")));
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn hs256(claims: serde_json::Value) -> String {
        use jsonwebtoken::{EncodingKey, Header, encode};
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
    }

    fn jwt(secret: &str) -> Result<Authenticator, SettingsError> {
        Authenticator::from_settings(&AuthSettings::Jwt {
            secret: Some(secret.into()),
            public_key_file: None,
            leeway_secs: 30,
        })
    }

    #[test]
    fn short_hs256_secrets_are_refused_without_being_shown() {
        let error = jwt("x").err().unwrap();
        assert_eq!(error.variable, "ROOKERY_JWT_SECRET");
        assert!(error.to_string().contains("at least 32 bytes") && !error.to_string().contains("\"x\""), "{error}");
        assert!(jwt(&SECRET[1..]).is_err() && jwt(SECRET).is_ok());
    }

    #[test]
    fn exp_beyond_what_a_clock_holds_is_refused_not_a_panic() {
        let auth = jwt(SECRET).unwrap();
        for exp in [u64::MAX, (1 << 63) - 30, 1 << 63] {
            let token = hs256(serde_json::json!({"sub": "alice", "exp": exp}));
            assert!(matches!(auth.authenticate(None, Some(&token)), Err(AuthError::InvalidToken(_))), "{exp}");
        }
    }

    #[test]
    fn nbf_is_checked_with_the_leeway() {
        let auth = jwt(SECRET).unwrap();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let token = |nbf: u64| hs256(serde_json::json!({"sub": "alice", "exp": now + 600, "nbf": nbf}));
        assert!(auth.authenticate(None, Some(&token(now + 86_400))).is_err());
        assert!(auth.authenticate(None, Some(&token(now + 60))).is_err());
        assert!(auth.authenticate(None, Some(&token(now + 10))).is_ok(), "within the leeway");
        assert!(auth.authenticate(None, Some(&token(now - 10))).is_ok());
    }

    #[test]
    fn anonymous_users_get_a_name() {
        let auth = Authenticator::Anonymous;
        let named = auth.authenticate(Some("alice"), None).unwrap();
        assert_eq!(named.user.as_str(), "alice");
        let anon = auth.authenticate(None, None).unwrap();
        assert!(anon.user.as_str().starts_with("anon-") && anon.user.as_str().len() == 13);
        assert!(matches!(auth.authenticate(Some("no spaces"), None), Err(AuthError::BadUser(_))));
    }
}
