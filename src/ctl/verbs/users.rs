//! User verbs: add_user, delete_user, change_password, authenticate_user,
//! set_user_tags, list_users, hash_password (on `/api/users`, `/api/whoami`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{password_or_stdin, Ctx};
use crate::ctl::api::seg;
use crate::ctl::error::{error_fields, CtlError, Result};

fn user_path(user: &str) -> String {
    format!("/api/users/{}", seg(user))
}

/// The user object, or "no such user".
fn get_user(ctx: &Ctx, user: &str) -> Result<Value> {
    let reply = ctx.api.get(&user_path(user))?;
    if reply.status == 404 {
        return Err(CtlError::no_such_user(user));
    }
    reply.ok()?.json()
}

/// A user's tags as the comma-joined string the API accepts.
fn tags_of(user: &Value) -> String {
    match user.get("tags") {
        Some(Value::Array(tags)) => tags.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
        Some(Value::String(tags)) => tags.clone(),
        _ => String::new(),
    }
}

pub fn add_user(
    ctx: &mut Ctx,
    user: &str,
    password: Option<String>,
    password_hash: Option<String>,
    hashing_algorithm: &str,
) -> Result<()> {
    ctx.info(&format!("Adding user \"{user}\" ..."));
    if ctx.api.user_exists(user)? {
        return Err(CtlError::AlreadyExists(format!("User \"{user}\" already exists")));
    }
    let body = match password_hash {
        Some(hash) => json!({"password_hash": hash, "hashing_algorithm": hashing_algorithm, "tags": ""}),
        None => json!({"password": password_or_stdin(password)?, "tags": ""}),
    };
    ctx.api.put(&user_path(user), &body)?.ok()?;
    ctx.info(
        "Done. Don't forget to grant the user permissions to some virtual hosts! \
         See 'warrenctl set_permissions --help' to learn more.",
    );
    Ok(())
}

pub fn delete_user(ctx: &mut Ctx, user: &str) -> Result<()> {
    ctx.info(&format!("Deleting user \"{user}\" ..."));
    let reply = ctx.api.delete(&user_path(user))?;
    if reply.status == 404 {
        return Err(CtlError::no_such_user(user));
    }
    reply.ok().map(drop)
}

/// A PUT on a user replaces it, so the tags are read first and sent back.
pub fn change_password(ctx: &mut Ctx, user: &str, password: Option<String>) -> Result<()> {
    ctx.info(&format!("Changing password for user \"{user}\" ..."));
    let existing = get_user(ctx, user)?;
    let password = password_or_stdin(password)?;
    let body = json!({"password": password, "tags": tags_of(&existing)});
    ctx.api.put(&user_path(user), &body)?.ok().map(drop)
}

/// Asks `/api/whoami` with the user's own credentials. A 401 for a missing
/// management tag (`not_authorised`, British) still means the password is
/// right; only a failed login (`not_authorized`, "Login failed") is a failure.
pub fn authenticate_user(ctx: &mut Ctx, user: &str, password: Option<String>) -> Result<()> {
    ctx.info(&format!("Authenticating user \"{user}\" ..."));
    let password = password_or_stdin(password)?;
    let reply = ctx.api.with_credentials(user, &password).get("/api/whoami")?;
    if reply.status == 401 {
        let (error, reason) = error_fields(&reply.body);
        let login_failed =
            error.as_deref() != Some("not_authorised") || reason.as_deref() == Some("Login failed");
        if login_failed {
            return Err(CtlError::AccessRefused(format!(
                "failed to authenticate user \"{user}\"\nuser '{user}' - invalid credentials"
            )));
        }
    } else {
        reply.ok()?;
    }
    ctx.say("Success");
    Ok(())
}

/// A PUT on a user replaces it, so the password hash is read first and sent back.
pub fn set_user_tags(ctx: &mut Ctx, user: &str, tags: &[String]) -> Result<()> {
    ctx.info(&format!("Setting tags for user \"{user}\" to [{}] ...", tags.join(", ")));
    let existing = get_user(ctx, user)?;
    let Some(hash) = existing.get("password_hash").and_then(Value::as_str) else {
        return Err(CtlError::Software(format!(
            "the API did not return the password hash of user \"{user}\", so its tags cannot be set \
             without losing its password"
        )));
    };
    let algorithm =
        existing.get("hashing_algorithm").and_then(Value::as_str).unwrap_or("rabbit_password_hashing_sha256");
    let body = json!({"password_hash": hash, "hashing_algorithm": algorithm, "tags": tags.join(",")});
    ctx.api.put(&user_path(user), &body)?.ok().map(drop)
}

pub fn list_users(ctx: &mut Ctx, columns: &[String]) -> Result<()> {
    ctx.banner("Listing users ...");
    let rows = ctx.api.get("/api/users")?.ok()?.rows()?;
    ctx.rows(&["name", "tags"], columns, &rows);
    Ok(())
}

pub fn hash_password(ctx: &mut Ctx, password: Option<String>) -> Result<()> {
    let password = password_or_stdin(password)?;
    let mut salt = [0u8; 4];
    getrandom::fill(&mut salt).map_err(|e| CtlError::Software(format!("no random bytes: {e}")))?;
    ctx.say(&hash_with_salt(salt, &password));
    Ok(())
}

/// RabbitMQ's `rabbit_password_hashing_sha256`: base64(salt ‖ SHA-256(salt ‖ password)).
fn hash_with_salt(salt: [u8; 4], password: &str) -> String {
    let digest = Sha256::new().chain_update(salt).chain_update(password.as_bytes()).finalize();
    let mut bytes = salt.to_vec();
    bytes.extend_from_slice(&digest);
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_rabbitmq() {
        // Made by RabbitMQ 3.10.8 for the password "ctl-known".
        let known = "OTUcWQwko1ohhZKRgy0f6rdIViNO3fCWDeIWXNf7nOXKnaWd";
        let raw = STANDARD.decode(known).unwrap();
        let salt: [u8; 4] = raw[..4].try_into().unwrap();
        assert_eq!(hash_with_salt(salt, "ctl-known"), known);
    }

    #[test]
    fn tags_are_comma_joined() {
        assert_eq!(tags_of(&json!({"tags":["a","b"]})), "a,b");
        assert_eq!(tags_of(&json!({"tags":"a,b"})), "a,b");
        assert_eq!(tags_of(&json!({})), "");
    }
}
