//! Role transitions, scripted on a perfect network with `sim::Pair` (which checks the
//! safety invariants after every input, as in the random runs).

use duet_cluster::sim::{Pair, SimFailure};
use duet_cluster::{
    ClusterError, Event, Millis, MirrorState, NodeId, Path, ReleaseReason, Role, TakeoverReason,
    TAKEOVER_EFFECTS,
};

const A: usize = 0;
const B: usize = 1;

fn ok<T>(r: Result<T, SimFailure>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn pair_with(tweak: impl FnOnce(&mut duet_cluster::Config)) -> Pair {
    let mut p = ok(Pair::scripted(tweak));
    ok(p.advance(2_000));
    assert_eq!(p.serving(), Some(A), "{:#?}", p.trace());
    assert_eq!(
        mirror(&p, A),
        Some(MirrorState::Synchronous),
        "{:#?}",
        p.trace()
    );
    p
}

fn pair() -> Pair {
    pair_with(|_| {})
}

fn role(p: &Pair, i: usize) -> Option<Role> {
    p.node(i).map(|n| n.role())
}

fn mirror(p: &Pair, i: usize) -> Option<MirrorState> {
    p.node(i).map(|n| n.mirror_state())
}

fn takeovers(p: &Pair, i: usize) -> Vec<(Millis, TakeoverReason)> {
    p.history(i)
        .iter()
        .filter_map(|(t, e)| match e {
            Event::Takeover {
                reason, effects, ..
            } => {
                assert_eq!(
                    effects[..],
                    TAKEOVER_EFFECTS[..],
                    "takeover effects in order"
                );
                Some((*t, *reason))
            }
            _ => None,
        })
        .collect()
}

fn releases(p: &Pair, i: usize) -> Vec<(Millis, ReleaseReason)> {
    p.history(i)
        .iter()
        .filter_map(|(t, e)| match e {
            Event::Release { reason, .. } => Some((*t, *reason)),
            _ => None,
        })
        .collect()
}

/// Advances until `cond` holds, at most `limit` ms; returns the time it took.
fn until(p: &mut Pair, limit: Millis, cond: impl Fn(&Pair) -> bool) -> Millis {
    let start = p.now();
    while !cond(p) {
        assert!(
            p.now() - start <= limit,
            "condition not reached within {limit} ms:\n{}",
            p.trace().join("\n")
        );
        ok(p.advance(5));
    }
    p.now() - start
}

fn all_acked_in(p: &Pair, i: usize) -> bool {
    p.acked().iter().all(|id| p.store(i).contains(id))
}

fn synced(p: &Pair) -> bool {
    p.serving()
        .is_some_and(|l| mirror(p, l) == Some(MirrorState::Synchronous) && p.store(A) == p.store(B))
}

#[test]
fn pair_forms_and_mirrors_synchronously() {
    let mut p = pair();
    assert_eq!(role(&p, A), Some(Role::Active));
    assert_eq!(role(&p, B), Some(Role::Passive));
    assert!(p.node(B).is_some_and(|n| n.report().in_sync));
    assert_eq!(takeovers(&p, A).len(), 1);
    // A change is acknowledged only once the partner committed it.
    let id = ok(p.submit_on(A));
    assert!(!p.acked().contains(&id));
    ok(p.advance(10));
    assert!(p.acked().contains(&id) && p.store(B).contains(&id));
    p.set_apply_paused(B, true);
    let id = ok(p.submit_on(A));
    ok(p.advance(200));
    assert!(
        !p.acked().contains(&id),
        "acknowledged before the partner committed"
    );
    p.set_apply_paused(B, false);
    ok(p.advance(10));
    assert!(p.acked().contains(&id));
}

#[test]
fn active_dies_and_passive_takes_over_with_every_acknowledged_change() {
    let mut p = pair();
    for _ in 0..30 {
        ok(p.submit_on(A));
        ok(p.advance(3));
    }
    ok(p.advance(20));
    assert_eq!(p.acked().len(), 30);
    p.crash(A);
    let took = until(&mut p, 2_000, |p| p.serving() == Some(B));
    // Declared dead after 500 ms, takes over after the 200 ms grace.
    assert!((600..=850).contains(&took), "takeover after {took} ms");
    let took_over: Vec<TakeoverReason> = takeovers(&p, B).into_iter().map(|t| t.1).collect();
    assert_eq!(took_over, vec![TakeoverReason::PartnerSilent]);
    assert_eq!(role(&p, B), Some(Role::DegradedActive));
    assert!(all_acked_in(&p, B));
    // Alone, a change is acknowledged at once.
    let id = ok(p.submit_on(B));
    assert!(p.acked().contains(&id));
}

#[test]
fn cutting_only_the_heartbeat_cable_leaves_exactly_one_node_serving() {
    let mut p = pair();
    ok(p.submit_on(A));
    ok(p.advance(10));
    p.set_cable(false);
    for _ in 0..500 {
        ok(p.advance(10));
        assert_eq!(p.serving(), Some(A));
        assert_ne!(role(&p, B), Some(Role::Starting));
    }
    // A goes on alone once B confirmed (over the data network) that it is stale.
    assert_eq!(role(&p, A), Some(Role::DegradedActive));
    assert!(p.node(B).is_some_and(|n| !n.report().in_sync));
    assert!(takeovers(&p, B).is_empty());
    let id = ok(p.submit_on(A));
    assert!(p.acked().contains(&id));
    p.set_cable(true);
    until(&mut p, 3_000, synced);
    assert_eq!(p.serving(), Some(A));
}

#[test]
fn active_losing_link_and_tiebreaker_steps_down_before_the_passive_takes_over() {
    // (With switchover_on_tiebreaker_loss A would release at once, as a switchover.)
    let mut p = pair_with(|c| c.switchover_on_tiebreaker_loss = false);
    ok(p.submit_on(A));
    ok(p.advance(10));
    p.set_cable(false);
    ok(p.set_nic(A, false));
    until(&mut p, 2_000, |p| p.serving() == Some(B));
    let released = releases(&p, A);
    let took = takeovers(&p, B);
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].1, ReleaseReason::LostLinkAndTiebreaker);
    assert_eq!(took.len(), 1);
    assert_eq!(took[0].1, TakeoverReason::PartnerSilent);
    assert!(released[0].0 < took[0].0);
    assert!(all_acked_in(&p, B));
    // A returns as passive and resyncs; no failback.
    p.set_cable(true);
    ok(p.set_nic(A, true));
    until(&mut p, 4_000, synced);
    assert_eq!(p.serving(), Some(B));
    assert_eq!(role(&p, A), Some(Role::Passive));
}

#[test]
fn passive_isolated_from_everything_never_takes_over() {
    let mut p = pair();
    p.set_cable(false);
    ok(p.set_nic(B, false));
    ok(p.advance(3_000));
    assert_eq!(p.serving(), Some(A));
    assert_eq!(role(&p, A), Some(Role::DegradedActive));
    let id = ok(p.submit_on(A));
    assert!(p.acked().contains(&id));
    // B's data NIC comes back, the cable stays cut: B learns it is stale, stays passive.
    ok(p.set_nic(B, true));
    ok(p.advance(3_000));
    assert_eq!(p.serving(), Some(A));
    assert!(takeovers(&p, B).is_empty());
    // And if A now dies, B must not serve: it lacks changes A acknowledged alone.
    p.crash(A);
    ok(p.advance(5_000));
    assert_eq!(p.serving(), None);
    ok(p.restart(A));
    until(&mut p, 3_000, |p| p.serving() == Some(A));
    p.set_cable(true);
    until(&mut p, 4_000, synced);
}

#[test]
fn gateway_loss_with_the_cable_up_changes_nothing() {
    let mut p = pair();
    p.set_gateway(false);
    ok(p.advance(3_000));
    assert_eq!(p.serving(), Some(A));
    assert_eq!(mirror(&p, A), Some(MirrorState::Synchronous));
    // Losing the cable too: the serving node steps down and no one may take over (limit:
    // the tie-breaker is the arbiter).
    p.set_cable(false);
    ok(p.advance(3_000));
    assert_eq!(p.serving(), None);
    assert_eq!(releases(&p, A)[0].1, ReleaseReason::LostLinkAndTiebreaker);
    // The gateway returns: the node that served claims the service back over the data
    // network, the other grants it.
    p.set_gateway(true);
    until(&mut p, 2_000, |p| p.serving() == Some(A));
    assert_eq!(
        takeovers(&p, A).last().map(|t| t.1),
        Some(TakeoverReason::Claimed)
    );
    assert!(all_acked_in(&p, A));
    p.set_cable(true);
    until(&mut p, 4_000, synced);
}

#[test]
fn planned_switchover_moves_the_service_without_losing_an_acknowledged_change() {
    let mut p = pair();
    // Changes in flight when the command comes: drained, then handed over.
    for _ in 0..10 {
        ok(p.submit_on(A));
    }
    assert_eq!(ok(p.switchover(A)), Ok(()));
    assert_eq!(role(&p, A), Some(Role::HandingOver));
    assert_eq!(p.serving(), None);
    let took = until(&mut p, 1_000, |p| p.serving() == Some(B));
    assert!(took < 50, "switchover took {took} ms");
    assert_eq!(
        takeovers(&p, B).last().map(|t| t.1),
        Some(TakeoverReason::Handover)
    );
    assert_eq!(releases(&p, A)[0].1, ReleaseReason::Switchover);
    assert!(all_acked_in(&p, B));
    assert_eq!(p.acked().len(), 10);
    until(&mut p, 1_000, synced);
    assert_eq!(role(&p, A), Some(Role::Passive));
    // Synchronous from the start: no window where B acknowledges alone, no snapshot.
    assert!(!p
        .history(B)
        .iter()
        .any(|(_, e)| matches!(e, Event::MirrorChanged(MirrorState::Alone))));
    // Switch back, asked from the passive node this time; a request B's shell commits
    // after its release is refused, so B's store diverges and B resyncs from a snapshot.
    ok(p.submit_on(B));
    assert_eq!(ok(p.switchover(A)), Ok(()));
    ok(p.advance(1));
    assert_eq!(role(&p, B), Some(Role::HandingOver));
    let refused = ok(p.submit_on(B));
    until(&mut p, 1_000, |p| p.serving() == Some(A));
    until(&mut p, 3_000, synced);
    assert!(all_acked_in(&p, A));
    assert!(!p.acked().contains(&refused) && !p.store(B).contains(&refused));
}

#[test]
fn switchover_is_refused_while_the_partner_is_not_synchronous() {
    let mut p = pair();
    p.set_cable(false);
    ok(p.advance(1_000));
    assert!(matches!(
        ok(p.switchover(A)),
        Err(ClusterError::PartnerNotReady(_))
    ));
    assert!(matches!(
        ok(p.switchover(B)),
        Err(ClusterError::PartnerNotReady(_))
    ));
    assert_eq!(p.serving(), Some(A));
}

#[test]
fn restarted_node_rejoins_as_passive_and_resyncs() {
    let mut p = pair();
    for _ in 0..5 {
        ok(p.submit_on(A));
        ok(p.advance(5));
    }
    p.crash(A);
    until(&mut p, 1_500, |p| p.serving() == Some(B));
    for _ in 0..5 {
        ok(p.submit_on(B));
    }
    ok(p.restart(A));
    until(&mut p, 3_000, synced);
    assert_eq!(p.serving(), Some(B));
    assert_eq!(role(&p, A), Some(Role::Passive));
    assert!(p.node(A).is_some_and(|n| n.report().in_sync));
    ok(p.advance(10_000));
    assert_eq!(p.serving(), Some(B), "no automatic failback");
}

#[test]
fn failback_when_configured() {
    let mut p = pair_with(|c| {
        c.failback_to = Some(NodeId::A);
        c.failback_settle = 1_000;
    });
    p.crash(A);
    until(&mut p, 1_500, |p| p.serving() == Some(B));
    ok(p.submit_on(B));
    ok(p.restart(A));
    until(&mut p, 5_000, |p| p.serving() == Some(A));
    assert_eq!(
        takeovers(&p, A).last().map(|t| t.1),
        Some(TakeoverReason::Handover)
    );
    assert!(all_acked_in(&p, A));
    ok(p.advance(10_000));
    assert_eq!(p.serving(), Some(A), "no ping-pong");
}

#[test]
fn active_losing_its_data_network_hands_over() {
    let mut p = pair();
    ok(p.submit_on(A));
    ok(p.set_nic(A, false));
    until(&mut p, 1_500, |p| p.serving() == Some(B));
    assert_eq!(takeovers(&p, B)[0].1, TakeoverReason::Handover);
    assert!(all_acked_in(&p, B));
}

#[test]
fn hung_partner_disk_degrades_mirroring_instead_of_blocking_clients() {
    let mut p = pair();
    p.set_apply_paused(B, true);
    let id = ok(p.submit_on(A));
    let waited = until(&mut p, 2_000, |p| p.acked().contains(&id));
    assert!(waited >= 500, "acknowledged after {waited} ms");
    assert_eq!(role(&p, A), Some(Role::DegradedActive));
    assert!(p.node(B).is_some_and(|n| !n.report().in_sync));
    p.set_apply_paused(B, false);
    until(&mut p, 3_000, synced);
}

#[test]
fn large_changes_travel_across_many_frames() {
    let mut p = pair();
    let id = ok(p.submit_sized(A, 200_000));
    let small = ok(p.submit_on(A));
    until(&mut p, 1_000, |p| p.acked().contains(&small));
    assert!(p.acked().contains(&id) && p.store(B).contains(&id));
}

#[test]
fn both_down_the_synchronous_active_waits_for_its_partner() {
    let mut p = pair();
    ok(p.submit_on(A));
    ok(p.advance(10));
    p.crash(A);
    p.crash(B);
    ok(p.advance(100));
    // A served synchronously: B may have taken over and acknowledged changes since. A
    // must not serve until it hears B.
    ok(p.restart(A));
    ok(p.advance(5_000));
    assert_eq!(p.serving(), None);
    ok(p.restart(B));
    until(&mut p, 2_000, |p| p.serving() == Some(A));
    until(&mut p, 3_000, synced);
}

#[test]
fn node_that_served_alone_resumes_after_a_restart() {
    let mut p = pair();
    p.crash(B);
    until(&mut p, 2_000, |p| role(p, A) == Some(Role::DegradedActive));
    ok(p.submit_on(A));
    p.crash(A);
    ok(p.advance(100));
    ok(p.restart(A));
    until(&mut p, 2_000, |p| p.serving() == Some(A));
    assert_eq!(
        takeovers(&p, A).last().map(|t| t.1),
        Some(TakeoverReason::ResumeAlone)
    );
    ok(p.restart(B));
    until(&mut p, 3_000, synced);
}

#[test]
fn forged_replayed_and_misdirected_frames_are_refused_and_counted() {
    let mut p = pair();
    p.capture_all(true);
    ok(p.advance(300));
    let (to, path, frame) = p
        .captured()
        .into_iter()
        .find(|(to, path, _)| *to == B && *path == Path::Link)
        .expect("a captured frame to b");
    assert_eq!(to, B);
    let stats = |p: &Pair, i: usize| p.node(i).map(|n| n.stats().clone()).unwrap_or_default();
    let before = stats(&p, B);
    // Replayed.
    ok(p.inject_frame(B, path, &frame));
    // Forged: payload changed under the MAC, and MAC changed.
    let mut f = frame.clone();
    f[30] ^= 1;
    ok(p.inject_frame(B, path, &f));
    let mut f = frame.clone();
    let last = f.len() - 1;
    f[last] ^= 1;
    ok(p.inject_frame(B, path, &f));
    // Another pair's cluster id.
    let mut f = frame.clone();
    f[5] ^= 0xff;
    ok(p.inject_frame(B, path, &f));
    // Arrived on the other path.
    ok(p.inject_frame(B, Path::Data, &frame));
    // Reflected to its sender.
    ok(p.inject_frame(A, path, &frame));
    // Truncated and garbage.
    ok(p.inject_frame(B, path, &frame[..20]));
    ok(p.inject_frame(B, path, b"hello"));
    let after = stats(&p, B);
    assert_eq!(after.refused_replayed, before.refused_replayed + 1);
    assert_eq!(after.refused_forged, before.refused_forged + 2);
    assert_eq!(
        after.refused_wrong_cluster,
        before.refused_wrong_cluster + 1
    );
    assert_eq!(after.refused_wrong_path, before.refused_wrong_path + 1);
    assert_eq!(after.refused_malformed, before.refused_malformed + 2);
    assert_eq!(stats(&p, A).refused_wrong_sender, 1);
    // A frame of an older incarnation after A restarts is stale.
    p.crash(A);
    ok(p.restart(A));
    ok(p.advance(300));
    let stale_before = stats(&p, B).refused_stale;
    ok(p.inject_frame(B, path, &frame));
    assert_eq!(stats(&p, B).refused_stale, stale_before + 1);
    until(&mut p, 3_000, synced);
}

#[test]
fn forced_takeover_by_a_stale_node_loses_what_the_partner_acknowledged_alone() {
    let mut p = pair();
    p.set_cable(false);
    ok(p.advance(2_000));
    assert_eq!(role(&p, A), Some(Role::DegradedActive));
    ok(p.submit_on(A));
    p.crash(A);
    ok(p.advance(3_000));
    assert_eq!(p.serving(), None, "the stale node waits");
    let forced = p.force_takeover(B);
    let failure =
        forced.expect_err("forcing a stale node must lose the change A acknowledged alone");
    assert!(failure.what.contains("without"), "{failure}");
}

#[test]
fn forced_takeover_after_a_double_failure() {
    let mut p = pair();
    ok(p.submit_on(A));
    ok(p.advance(10));
    p.crash(A);
    p.crash(B);
    ok(p.restart(A));
    ok(p.advance(3_000));
    assert_eq!(p.serving(), None);
    assert_eq!(ok(p.force_takeover(A)), Ok(()));
    assert_eq!(p.serving(), Some(A));
    assert_eq!(
        takeovers(&p, A).last().map(|t| t.1),
        Some(TakeoverReason::Forced)
    );
    ok(p.restart(B));
    until(&mut p, 3_000, synced);
}
