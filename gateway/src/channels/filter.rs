//! Pushpin's publish filters: which subscribers a publication skips, read from the filters the
//! app named in its `subscribe`, the connection's meta (`set-meta`) and the publication's meta.
//!
//! - `skip-self`: skipped when the publication's `sender` is the connection's `user`;
//! - `skip-users`: skipped when the connection's `user` is in the publication's comma-separated
//!   `skip_users`;
//! - `require-sub`: skipped unless the connection also joined the publication's `require_sub`.
//!
//! Pushpin's content filters (`build-id`, `var-subst`) rewrite content rather than choose who gets
//! it; they are accepted and have no effect.

use std::collections::HashMap;

/// The filters of one subscription.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    skip_self: bool,
    skip_users: bool,
    require_sub: bool,
}

impl Filters {
    /// The filters named in a `subscribe`; names it does not know are left out.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Self {
        let mut filters = Filters::default();
        for name in names {
            match name.as_ref() {
                "skip-self" => filters.skip_self = true,
                "skip-users" => filters.skip_users = true,
                "require-sub" => filters.require_sub = true,
                _ => {}
            }
        }
        filters
    }

    /// Whether a subscriber with these filters, `meta` and subscriptions gets a publication with
    /// `published` meta.
    pub fn pass(
        &self,
        published: &[(String, String)],
        meta: &HashMap<String, String>,
        subscribed: impl Fn(&str) -> bool,
    ) -> bool {
        let of = |name: &str| {
            published.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
        };
        let user = meta.get("user").map(String::as_str).filter(|u| !u.is_empty());
        if self.skip_self && user.is_some() && of("sender") == user {
            return false;
        }
        if self.skip_users
            && let (Some(user), Some(skip)) = (user, of("skip_users"))
            && skip.split(',').any(|u| u.trim() == user)
        {
            return false;
        }
        if self.require_sub
            && let Some(channel) = of("require_sub")
            && !subscribed(channel)
        {
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn skip_self_skip_users_and_require_sub_choose_as_pushpin_does() {
        let ada: HashMap<String, String> = [("user".to_owned(), "ada".to_owned())].into();
        let nobody = HashMap::new();
        let only_room = |c: &str| c == "room";
        let all = Filters::from_names(&["skip-self", "skip-users", "require-sub", "build-id"]);

        assert!(!all.pass(&meta(&[("sender", "ada")]), &ada, only_room), "her own message");
        assert!(all.pass(&meta(&[("sender", "bob")]), &ada, only_room));
        assert!(all.pass(&meta(&[("sender", "ada")]), &nobody, only_room), "no user: nothing to skip");
        assert!(Filters::default().pass(&meta(&[("sender", "ada")]), &ada, only_room), "no filters");

        assert!(!all.pass(&meta(&[("skip_users", "bob, ada")]), &ada, only_room));
        assert!(all.pass(&meta(&[("skip_users", "bob,adam")]), &ada, only_room));

        assert!(all.pass(&meta(&[("require_sub", "room")]), &ada, only_room));
        assert!(!all.pass(&meta(&[("require_sub", "vip")]), &ada, only_room));
        assert!(Filters::from_names(&["skip-self"]).pass(&meta(&[("require_sub", "vip")]), &ada, only_room));
    }
}
