//! What the deploying identity may do. A namespace admin (the built-in aggregated `admin`
//! role bound in one namespace) may not read cluster-scoped objects such as StorageClasses
//! or PersistentVolumes; preflight checks that need such reads become warnings naming the
//! missing permission ([`Unverified`]), or problems with `strict`.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use serde_json::Value;

use super::client::Cluster;
use crate::deploy::error::{answer, DeployError};
use crate::deploy::model::kinds::Kind;
use crate::diag::Problem;

/// The verbs the bundle's lock uses on its Lease.
pub(crate) const LOCK_VERBS: &[&str] = &["get", "create", "update", "delete"];

/// The answer to a read the identity may not be allowed to make.
pub(crate) enum Access<T> {
    /// The read was allowed; its answer.
    Allowed(T),
    /// The API server answered 403 Forbidden with this message.
    Forbidden(String),
}

/// Splits a 403 from other errors: a forbidden read is an answer ("not allowed"), anything
/// else stays an error.
pub(crate) fn access<T>(result: Result<T, DeployError>) -> Result<Access<T>, DeployError> {
    match result {
        Ok(value) => Ok(Access::Allowed(value)),
        Err(DeployError::Forbidden { source, .. }) => {
            Ok(Access::Forbidden(answer(&source).to_string()))
        }
        Err(error) => Err(error),
    }
}

impl Cluster {
    /// Every object of `kind` in the whole cluster; `None` when the identity may not list
    /// them, recorded in `unverified` as `what` not verified for want of `permission`.
    pub(crate) async fn list_all_or_note(
        &self,
        kind: &Kind,
        what: &str,
        permission: &str,
        unverified: &mut Unverified,
    ) -> Result<Option<Vec<Value>>, DeployError> {
        match access(self.list(kind, None, "").await)? {
            Access::Allowed(items) => Ok(Some(items)),
            Access::Forbidden(message) => {
                unverified.add(what, permission, message);
                Ok(None)
            }
        }
    }

    /// Whether the identity may `verb` `resource` of `group` (in `namespace`, or cluster-wide),
    /// as the API server's SelfSubjectAccessReview answers it (every authenticated user may
    /// ask); `None` when the server does not answer the question (no such API, or forbidden).
    pub(crate) async fn may(
        &self,
        verb: &str,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
    ) -> Result<Option<bool>, DeployError> {
        let api: Api<SelfSubjectAccessReview> = Api::all(self.client().clone());
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.to_string()),
                    group: Some(group.to_string()),
                    resource: Some(resource.to_string()),
                    namespace: namespace.map(str::to_string),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let what = format!("whether this identity may {verb} {resource}");
        let params = PostParams::default();
        match self.retried("ask", &what, || api.create(&params, &review)).await {
            Ok(answer) => Ok(answer.status.map(|s| s.allowed)),
            Err(DeployError::Forbidden { .. } | DeployError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// Preflight checks that could not be made for want of a permission.
#[derive(Debug, Default)]
pub(crate) struct Unverified {
    checks: Vec<UnverifiedCheck>,
}

#[derive(Debug)]
struct UnverifiedCheck {
    /// What was not verified (`storage class`).
    what: String,
    /// The permission missing (`list storageclasses.storage.k8s.io at the cluster scope`).
    permission: String,
    /// What preflight assumed instead (`assuming it exists`), if anything.
    assumption: Option<String>,
    /// The API server's answer.
    message: String,
}

impl Unverified {
    /// Records that `what` could not be verified without `permission`.
    pub(crate) fn add(&mut self, what: &str, permission: &str, message: String) {
        self.checks.push(UnverifiedCheck {
            what: what.to_string(),
            permission: permission.to_string(),
            assumption: None,
            message,
        });
    }

    /// [`Unverified::add`] for a check whose answer preflight assumed (`assuming it exists`).
    pub(crate) fn assume(
        &mut self,
        what: &str,
        permission: &str,
        assumption: &str,
        message: String,
    ) {
        self.add(what, permission, message);
        if let Some(check) = self.checks.last_mut() {
            check.assumption = Some(assumption.to_string());
        }
    }

    /// Adds the checks `other` could not make.
    pub(crate) fn append(&mut self, mut other: Unverified) {
        self.checks.append(&mut other.checks);
    }

    /// One warning line per check: "storage class not verified: no permission to list
    /// storageclasses.storage.k8s.io at the cluster scope".
    pub(crate) fn warnings(&self) -> Vec<String> {
        self.checks
            .iter()
            .map(|c| {
                let assumed = c.assumption.as_ref().map(|a| format!("; {a}")).unwrap_or_default();
                format!("{} not verified: no permission to {}{assumed}", c.what, c.permission)
            })
            .collect()
    }

    /// With `--strict-preflight`: one problem per check, with the server's answer.
    pub(crate) fn problems(&self) -> Vec<Problem> {
        self.checks
            .iter()
            .map(|c| {
                Problem::new("preflight", &c.what, format!("not verified: {}", c.message)).hint(
                    format!(
                        "grant {} (or deploy without --strict-preflight to only warn)",
                        c.permission
                    ),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> DeployError {
        let status = kube::core::Status::failure("no", "Refused").with_code(code).boxed();
        DeployError::from_kube("server", "list", "x".into(), kube::Error::Api(status))
    }

    #[test]
    fn only_403_is_an_answer() {
        assert!(matches!(access::<()>(Err(api(403))), Ok(Access::Forbidden(m)) if m == "no"));
        assert!(matches!(access(Ok(1)), Ok(Access::Allowed(1))));
        assert!(access::<()>(Err(api(404))).is_err());
        assert!(access::<()>(Err(api(401))).is_err());
    }

    #[test]
    fn unverified_checks_are_warnings_or_problems() {
        let mut unverified = Unverified::default();
        unverified.add("storage class", "list storageclasses.storage.k8s.io", "forbidden!".into());
        unverified.assume(
            "namespace ns",
            "get namespaces \"ns\"",
            "assuming it exists",
            "no".into(),
        );
        assert_eq!(
            unverified.warnings(),
            [
                "storage class not verified: no permission to list storageclasses.storage.k8s.io",
                "namespace ns not verified: no permission to get namespaces \"ns\"; assuming it exists",
            ]
        );
        let problems = unverified.problems();
        assert_eq!(problems.len(), 2);
        assert!(problems[1].to_string().contains("(hint: grant get namespaces \"ns\" (or"));
        let text = problems[0].to_string();
        assert!(text.contains("storage class: not verified: forbidden!"), "{text}");
        assert!(text.contains("grant list storageclasses.storage.k8s.io"), "{text}");
    }
}
