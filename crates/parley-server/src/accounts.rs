//! Accounts as a service, below the HTTP handlers: making one (sign-up,
//! administrators' `POST /v1/admin/users` and `parley admin create-user`
//! share [`create_account`]), the checks on names and passwords, and
//! ending every session of a user at once ([`end_sessions`]: disable,
//! password reset, erasure).

use parley_proto::api::{AdminCreateUserRequest, AdminUserView, RegisterRequest};
use parley_proto::{DeviceId, ErrorCode, UserId, close_code, limits, now_ms};
use parley_store::{NewUser, Store, UserRecord};

use crate::auth::Passwords;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Longest display name and device name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// An account to make.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// 3–32 of `[a-z0-9_.]`.
    pub username: String,
    /// 8–256 characters.
    pub password: String,
    /// Shown instead of the username; the username when absent or blank.
    pub display_name: Option<String>,
    /// A server administrator.
    pub is_admin: bool,
}

impl From<RegisterRequest> for NewAccount {
    /// A sign-up: never an administrator.
    fn from(body: RegisterRequest) -> NewAccount {
        NewAccount {
            username: body.username,
            password: body.password,
            display_name: body.display_name,
            is_admin: false,
        }
    }
}

impl From<AdminCreateUserRequest> for NewAccount {
    fn from(body: AdminCreateUserRequest) -> NewAccount {
        NewAccount {
            username: body.username,
            password: body.password,
            display_name: body.display_name,
            is_admin: body.is_admin,
        }
    }
}

/// Refuses a username that is not 3–32 of `[a-z0-9_.]`.
pub fn validate_username(username: &str) -> ApiResult<()> {
    let ok_len =
        (limits::USERNAME_MIN_CHARS..=limits::USERNAME_MAX_CHARS).contains(&username.len());
    let ok_chars = username
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "username must be 3 to 32 of a-z, 0-9, _ and .",
        ))
    }
}

/// Refuses a password that is not 8–256 characters.
pub fn validate_password(password: &str) -> ApiResult<()> {
    let len = password.chars().count();
    if (limits::PASSWORD_MIN_CHARS..=limits::PASSWORD_MAX_CHARS).contains(&len) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "password must be 8 to 256 characters",
        ))
    }
}

/// Checks and stores a new account. `conflict` when the name is taken.
pub async fn create_account(
    store: &dyn Store,
    passwords: &Passwords,
    new: NewAccount,
) -> ApiResult<UserRecord> {
    validate_username(&new.username)?;
    validate_password(&new.password)?;
    let display_name = match new.display_name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => {
            if name.chars().count() > MAX_NAME_CHARS {
                return Err(ApiError::bad_request(
                    "display_name must be at most 64 characters",
                ));
            }
            name.to_owned()
        }
        _ => new.username.clone(),
    };
    // Checked before hashing so a taken name costs no argon2 run; the
    // store checks again inside its transaction.
    if store.user_by_username(&new.username).await?.is_some() {
        return Err(ApiError::new(ErrorCode::Conflict, "username is taken"));
    }
    let password_hash = passwords.hash(new.password).await?;
    Ok(store
        .create_user(NewUser {
            username: new.username,
            display_name,
            password_hash,
            now_ms: now_ms(),
            is_admin: new.is_admin,
        })
        .await?)
}

/// A user as administrators see it.
pub fn admin_view(user: &UserRecord) -> AdminUserView {
    AdminUserView {
        user_id: user.id,
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        is_admin: user.is_admin,
        disabled: user.disabled_at_ms.is_some(),
        erased: user.erased_at_ms.is_some(),
        created_at_ms: user.created_at_ms,
        last_seen_ms: user.last_seen_ms,
    }
}

/// `user`'s `devices` were revoked in the store: refuse their tokens and
/// close every socket of the user, here and (cluster mode) on every node.
pub fn end_sessions(state: &AppState, user: UserId, devices: &[DeviceId]) {
    for &device in devices {
        state.auth.revoke(device);
    }
    state.hub.close_user(user, close_code::UNAUTHORIZED);
    if let Some(cluster) = &state.cluster {
        cluster.broadcast_disable(user, devices.to_vec());
    }
}
