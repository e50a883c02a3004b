//! The health layer, one place for `deploy`'s wait, `rollback`, `restart`, `status` and
//! `logs`: where a live object stands (kstatus' rules), which pods run a workload's current
//! revision, and what is wrong with a pod.

pub(crate) mod kstatus;
pub(crate) mod pods;
pub(crate) mod revision;
