//! Who and where: user ids, auth ids (a user or one of its API tokens) and ACL paths.
//!
//! Every value here is validated when it is made, so holding one means it is well formed:
//! `name@realm` user ids, `name@realm!token` token ids, and ACL paths whose store and
//! namespace components follow `datastore::names`. A string that fails is rejected with
//! [`AccessError::BadName`]; nothing is cleaned up or guessed. Pure: no IO.

use std::fmt;
use std::str::FromStr;

use datastore::names::{MAX_NAMESPACE_DEPTH, Namespace, validate_store_name};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::AccessError;

/// The superuser: every privilege everywhere; it cannot be removed or disabled.
pub const ROOT: &str = "root@local";

/// The top ACL path component under which datastores live.
const DATASTORE_COMPONENT: &str = "datastore";

/// Checks `[A-Za-z0-9_][A-Za-z0-9._-]{0,63}`: a user name or a token name.
fn check_name(what: &'static str, s: &str) -> Result<(), AccessError> {
    datastore::names::check_safe_name(what, s, 1, 64)
        .map_err(|e| AccessError::bad_name(e.what, s, e.reason))
}

/// Checks `[A-Za-z0-9_-]{1,32}`: a realm.
fn check_realm(s: &str) -> Result<(), AccessError> {
    let err = |reason| Err(AccessError::bad_name("realm", s, reason));
    if s.is_empty() {
        return err("must not be empty");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    {
        return err("may only contain letters, digits, '_' and '-'");
    }
    if s.len() > 32 {
        return err("is longer than 32 characters");
    }
    Ok(())
}

/// Implements `Serialize`/`Deserialize` through `Display`/`FromStr`.
macro_rules! serde_as_string {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A user: `name@realm`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Userid {
    /// The whole id; the name ends at `at`.
    id: String,
    at: usize,
}

impl Userid {
    /// The superuser [`ROOT`].
    pub fn root() -> Self {
        Self {
            id: ROOT.to_string(),
            at: ROOT.find('@').unwrap_or_default(),
        }
    }

    pub fn is_root(&self) -> bool {
        self.id == ROOT
    }

    pub fn name(&self) -> &str {
        &self.id[..self.at]
    }

    pub fn realm(&self) -> &str {
        &self.id[self.at + 1..]
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }
}

impl FromStr for Userid {
    type Err = AccessError;

    fn from_str(s: &str) -> Result<Self, AccessError> {
        let Some((name, realm)) = s.split_once('@') else {
            return Err(AccessError::bad_name("user id", s, "must be name@realm"));
        };
        check_name("user name", name)?;
        check_realm(realm)?;
        Ok(Self {
            id: s.to_string(),
            at: name.len(),
        })
    }
}

impl fmt::Display for Userid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

serde_as_string!(Userid);

/// Who authenticated: a user, or an API token `name@realm!tokenname` that belongs to one.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Authid {
    user: Userid,
    token: Option<String>,
}

impl Authid {
    /// The token `tokenname` of `user`.
    pub fn token(user: Userid, tokenname: &str) -> Result<Self, AccessError> {
        check_name("token name", tokenname)?;
        Ok(Self {
            user,
            token: Some(tokenname.to_string()),
        })
    }

    /// The user itself, or the user a token belongs to.
    pub fn user(&self) -> &Userid {
        &self.user
    }

    pub fn is_token(&self) -> bool {
        self.token.is_some()
    }

    pub fn token_name(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// True for the superuser itself (not for its tokens, which have only their ACLs).
    pub fn is_root(&self) -> bool {
        !self.is_token() && self.user.is_root()
    }
}

impl From<Userid> for Authid {
    fn from(user: Userid) -> Self {
        Self { user, token: None }
    }
}

impl FromStr for Authid {
    type Err = AccessError;

    fn from_str(s: &str) -> Result<Self, AccessError> {
        match s.split_once('!') {
            Some((user, token)) => Self::token(user.parse()?, token),
            None => Ok(Self::from(s.parse::<Userid>()?)),
        }
    }
}

impl fmt::Display for Authid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.token {
            Some(token) => write!(f, "{}!{token}", self.user),
            None => write!(f, "{}", self.user),
        }
    }
}

serde_as_string!(Authid);

/// A place ACL entries are attached to: `/`, `/datastore`, `/datastore/{store}` or
/// `/datastore/{store}/{ns1}/.../{nsN}` with at most [`MAX_NAMESPACE_DEPTH`] namespace levels.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct AclPath {
    components: Vec<String>,
}

impl AclPath {
    /// `/`.
    pub fn root() -> Self {
        Self::default()
    }

    /// `/datastore`: where rights on every datastore are granted.
    pub fn datastores() -> Self {
        Self {
            components: vec![DATASTORE_COMPONENT.to_string()],
        }
    }

    /// `/datastore/{store}` followed by the namespace's components.
    pub fn datastore(store: &str, ns: &Namespace) -> Result<Self, AccessError> {
        validate_store_name(store)?;
        let mut components = vec![DATASTORE_COMPONENT.to_string(), store.to_string()];
        components.extend(ns.components().iter().cloned());
        Ok(Self { components })
    }

    /// The components after the leading `/`; empty for `/`.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// The path one level up; `None` for `/`.
    pub fn parent(&self) -> Option<Self> {
        let (_, up) = self.components.split_last()?;
        Some(Self {
            components: up.to_vec(),
        })
    }

    /// This path and every path above it, deepest first, ending with `/`.
    pub fn ancestors(&self) -> impl Iterator<Item = AclPath> + '_ {
        (0..=self.components.len()).rev().map(|n| Self {
            components: self.components[..n].to_vec(),
        })
    }

    /// True if `self` lies strictly below `other`.
    pub fn is_below(&self, other: &AclPath) -> bool {
        self.components.len() > other.components.len()
            && self.components.starts_with(&other.components)
    }

    /// False for a namespace at the deepest nesting, which cannot have children.
    pub fn can_have_children(&self) -> bool {
        self.components.len() < 2 + MAX_NAMESPACE_DEPTH
    }
}

impl FromStr for AclPath {
    type Err = AccessError;

    fn from_str(s: &str) -> Result<Self, AccessError> {
        let bad = |reason| AccessError::bad_name("ACL path", s, reason);
        let rest = s
            .strip_prefix('/')
            .ok_or_else(|| bad("must start with '/'"))?;
        if rest.is_empty() {
            return Ok(Self::root());
        }
        let mut parts = rest.split('/');
        if parts.next() != Some(DATASTORE_COMPONENT) {
            return Err(bad("must be / or start with /datastore"));
        }
        let Some(store) = parts.next() else {
            return Ok(Self::datastores());
        };
        let ns: Vec<&str> = parts.collect();
        if ns.contains(&"") {
            return Err(bad("has an empty component"));
        }
        let ns = Namespace::parse(&ns.join("/"))?;
        Self::datastore(store, &ns)
    }
}

impl fmt::Display for AclPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.components.join("/"))
    }
}

serde_as_string!(AclPath);
