//! Containers that start late, for the emulator's `pods/log`: as on a real node, a new pod's
//! container is still being created for a while, and its log answers 400 `BadRequest`
//! (`container "web" in pod "web-g2-1" is waiting to start: ContainerCreating`) until it runs.

use std::collections::BTreeMap;

use super::{status, Answer, KubeEmulator};

/// Log reads left before each (namespace, pod) starts its containers.
#[derive(Default)]
pub(super) struct LateStarts {
    reads_left: BTreeMap<(String, String), u32>,
}

impl KubeEmulator {
    /// Pod `pod` (of `namespace`, existing or still to come) answers its first `reads` log
    /// requests as a pod whose containers are still being created.
    pub fn start_late(&self, namespace: &str, pod: &str, reads: u32) {
        self.state().late_starts.reads_left.insert((namespace.into(), pod.into()), reads);
    }
}

impl LateStarts {
    /// The "waiting to start" answer, while the pod's containers have not started.
    pub(super) fn waiting(
        &mut self,
        ns: &str,
        pod: &str,
        container: Option<&str>,
    ) -> Option<Answer> {
        let left = self.reads_left.get_mut(&(ns.to_string(), pod.to_string()))?;
        *left = left.checked_sub(1)?;
        let container = container.unwrap_or("?");
        Some(status(
            400,
            "BadRequest",
            format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
            ),
        ))
    }
}
