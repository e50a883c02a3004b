//! `logs -f` follows pods that appear while it runs (#31): after a restart every new pod is
//! followed, also one whose container is still being created when it is first seen.

use std::collections::BTreeSet;
use std::time::Duration;

use charmer::deploy::{LogLine, LogOptions, LogSink, NoProgress, WaitOptions};

use crate::deploy::{cluster, full_shop, quick_wait, NS};
use crate::support::kube_emulator::KubeEmulator;

/// Collects the pods lines came from; stops once every pod of `until` has logged.
struct Pods {
    seen: BTreeSet<String>,
    until: BTreeSet<String>,
}

impl LogSink for Pods {
    fn line(&mut self, line: LogLine) -> bool {
        self.seen.insert(line.pod);
        !self.until.is_subset(&self.seen)
    }
}

#[tokio::test]
async fn following_picks_up_every_pod_a_restart_brings_also_one_still_starting() {
    let emulator = KubeEmulator::start();
    let cluster = cluster(&emulator).await;
    let prepared = cluster.prepare(full_shop("a")).await.unwrap();
    cluster.apply(&prepared, &quick_wait(), &NoProgress).await.unwrap();
    assert_eq!(emulator.pods(NS).iter().filter(|p| p.starts_with("web-")).count(), 2);
    // The second new pod's container is still being created for its first three log reads.
    emulator.start_late(NS, "web-g2-1", 3);

    let new_pods: BTreeSet<String> = ["web-g2-0", "web-g2-1"].map(String::from).into();
    let mut sink = Pods { seen: BTreeSet::new(), until: new_pods.clone() };
    let options =
        LogOptions { follow: true, poll: Duration::from_millis(20), ..LogOptions::default() };
    let following = cluster.logs("shop", NS, "web", &options, &mut sink);
    let restarting = async {
        // Restart once the first pods are being followed.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let wait = WaitOptions { timeout: Duration::from_secs(30), ..WaitOptions::default() };
        cluster.restart("shop", NS, "web", "2026-01-02T03:04:05Z", Some(&wait), &NoProgress).await
    };
    let (followed, restarted) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(following, restarting)
    })
    .await
    .expect("every new pod is followed within 30 s; none is dropped");
    restarted.expect("restart");
    followed.expect("logs");
    let expected: BTreeSet<String> =
        ["web-g1-0", "web-g1-1", "web-g2-0", "web-g2-1"].map(String::from).into();
    assert_eq!(sink.seen, expected);
}
