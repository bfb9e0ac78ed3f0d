//! The caller's tenants, and their members managed by the tenant's admins (the dashboard's
//! tenants page). `GET /api/v1/tenants` lists the tenants the caller is in with their role; for
//! those they administer, also the members, the quotas and what is used. `PUT` and `DELETE
//! /api/v1/tenants/{tenant}/members/{user}` set or remove a member: a tenant's admin only (403
//! for its other members); a tenant the caller is not in answers 404, as if it did not exist.
//! Quotas are the site admin's (`atlas tenant quota set`): no API changes them.

use atlas_store::Role;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{now, User};
use crate::error::ApiError;
use crate::AppState;

/// `GET /api/v1/tenants`.
pub async fn list(State(state): State<AppState>, user: User) -> Result<Json<Value>, ApiError> {
    let (name, caller) = (user.0.clone(), user.clone());
    let now = now();
    let listed = state
        .read(move |s| {
            let mine = caller.allowed(s.memberships(&name)?);
            let all = s.tenants()?;
            let mut listed = Vec::new();
            for (tenant, role) in mine {
                let mut entry = json!({"name": tenant, "role": role.as_str()});
                if role == Role::Admin {
                    if let Some(row) = all.iter().find(|t| t.name == tenant) {
                        let since = now - row.quotas.period_seconds();
                        entry["members"] = json!(row.members);
                        entry["quotas"] = json!(row.quotas);
                        entry["usage"] = json!(s.usage(&tenant, since, now)?);
                    }
                }
                listed.push(entry);
            }
            Ok(listed)
        })
        .await?;
    Ok(Json(Value::Array(listed)))
}

/// The caller's role in `tenant`; 404 when they are not in it.
async fn role_in(state: &AppState, user: &User, tenant: &str) -> Result<Role, ApiError> {
    let (name, wanted, caller) = (user.0.clone(), tenant.to_string(), user.clone());
    let role = state
        .read(move |s| {
            Ok(caller
                .allowed(s.memberships(&name)?)
                .into_iter()
                .find(|(t, _)| *t == wanted)
                .map(|(_, r)| r))
        })
        .await?;
    let shown: String = tenant.chars().take(64).collect();
    role.ok_or_else(|| ApiError::not_found(&format!("tenant `{shown}`")))
}

/// The caller must administer `tenant`.
async fn require_admin(state: &AppState, user: &User, tenant: &str) -> Result<(), ApiError> {
    match role_in(state, user, tenant).await? {
        Role::Admin => Ok(()),
        role => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "you are a {} of `{tenant}`: its admins manage its members",
                role.as_str()
            ),
        )),
    }
}

fn check_user_name(user: &str) -> Result<(), ApiError> {
    if atlas_spec::check_name(user).is_ok() && !user.bytes().any(|b| b.is_ascii_uppercase()) {
        return Ok(());
    }
    let shown: String = user.chars().take(64).collect();
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        format!("{shown:?} is not a user name: lowercase letters, digits, `-`, `_` and `.`"),
    ))
}

/// Whether `user` is `tenant`'s only admin.
fn is_last_admin(
    store: &mut dyn atlas_store::Store,
    tenant: &str,
    user: &str,
) -> Result<bool, atlas_store::StoreError> {
    let tenants = store.tenants()?;
    let admins: Vec<&str> = tenants
        .iter()
        .filter(|t| t.name == tenant)
        .flat_map(|t| &t.members)
        .filter(|m| m.role == Role::Admin)
        .map(|m| m.user.as_str())
        .collect();
    Ok(admins == [user])
}

fn last_admin(tenant: &str) -> (StatusCode, String) {
    (
        StatusCode::CONFLICT,
        format!("`{tenant}` keeps at least one admin: make another member admin first (or the site admin: atlas tenant member …)"),
    )
}

#[derive(Deserialize)]
pub struct MemberBody {
    role: String,
}

/// `PUT /api/v1/tenants/{tenant}/members/{user}` with `{"role": "admin|member|viewer"}`.
pub async fn set_member(
    State(state): State<AppState>,
    user: User,
    Path((tenant, member)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    // The body is read after the permission check: a stranger learns nothing from its errors.
    require_admin(&state, &user, &tenant).await?;
    check_user_name(&member)?;
    let body: MemberBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"role\": \"admin|member|viewer\"}}: {e}"),
        )
    })?;
    let role = Role::parse(&body.role).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "role: expected admin, member or viewer",
        )
    })?;
    let (t, m) = (tenant.clone(), member.clone());
    let refused = state
        .write(move |s| {
            // Only someone who has an account: an admin cannot reserve a name for later.
            if !s.users()?.iter().any(|u| u.name == m) {
                return Ok(Some((
                    StatusCode::NOT_FOUND,
                    format!("no user `{m}` (the site admin adds users)"),
                )));
            }
            if role != Role::Admin && is_last_admin(s, &t, &m)? {
                return Ok(Some(last_admin(&t)));
            }
            s.set_member(&t, &m, role)?;
            Ok(None)
        })
        .await?;
    if let Some((status, message)) = refused {
        return Err(ApiError::new(status, message));
    }
    eprintln!(
        "atlas serve: {} made {member} a {} of {tenant}",
        user.0,
        role.as_str()
    );
    Ok(Json(
        json!({"tenant": tenant, "user": member, "role": role.as_str()}),
    ))
}

/// `DELETE /api/v1/tenants/{tenant}/members/{user}`.
pub async fn remove_member(
    State(state): State<AppState>,
    user: User,
    Path((tenant, member)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &user, &tenant).await?;
    let (t, m) = (tenant.clone(), member.clone());
    let removed = state
        .write(move |s| {
            if is_last_admin(s, &t, &m)? {
                return Ok(Err(last_admin(&t)));
            }
            Ok(Ok(s.remove_member(&t, &m)?))
        })
        .await?
        .map_err(|(status, message)| ApiError::new(status, message))?;
    if removed {
        eprintln!("atlas serve: {} removed {member} from {tenant}", user.0);
    }
    Ok(Json(
        json!({"tenant": tenant, "user": member, "removed": removed}),
    ))
}
