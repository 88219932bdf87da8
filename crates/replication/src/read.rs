//! Linearizable reads on the leader: ReadIndex confirmed by heartbeats, and a leader lease.
//!
//! raft-rs 0.7's `LeaseBased` read option answers from the commit index whenever the node
//! believes it is leader. But check-quorum only deposes a cut-off leader after up to *two*
//! election timeouts, while the other side elects a new leader after one: in between the old
//! leader would serve stale reads (the `partition_minority_cannot_commit` script shows the
//! window). So the replica answers reads on the leader itself and uses raft-rs only to
//! forward followers' requests.
//!
//! Every batch of heartbeats the leader sends carries a sequence stamp in its `context`,
//! which followers echo in their responses (raft-rs does this for any context). Then:
//!
//! - **ReadIndex.** A read requested when the stamp counter is `s` is answered with the
//!   commit index at request time once a quorum (joint-aware) has echoed a stamp `>= s`: a
//!   quorum still followed this leader after the request, so no newer leader had been elected
//!   and the commit index was the latest. This holds whatever the message delays. The replica
//!   sends a heartbeat at once for a waiting read rather than waiting for the next beat.
//! - **Lease.** A follower that received a heartbeat ignores other candidates (check-quorum)
//!   and does not campaign itself for at least `election_tick` of its own ticks. A heartbeat
//!   sent at leader tick `t` and echoed by a quorum therefore keeps any new leader away until
//!   about `t + election_tick - 1`; the leader answers at once while `now - t < lease_ticks`
//!   (at most `election_tick - 2`, leaving a tick for phase and drift). The lease assumes the
//!   nodes' tick rates agree within that margin, and it is suspended during a leadership
//!   transfer, because the transferee's forced election ignores followers' leases (for one
//!   election timeout after the transfer ends too, in case a `TimeoutNow` is delayed).
//!
//! Requests still waiting when the leader loses leadership are dropped without an answer, as
//! raft-rs drops requests it cannot serve; callers need a timeout.

use std::collections::{BTreeMap, VecDeque};

use raft::eraftpb::{ConfState, Entry, Message, MessageType};

use crate::replica::ReadReady;

/// Marks a heartbeat context as one of our stamps.
const STAMP_PREFIX: &[u8; 2] = b"CL";

fn encode_stamp(seq: u64) -> Vec<u8> {
    let mut bytes = STAMP_PREFIX.to_vec();
    bytes.extend_from_slice(&seq.to_le_bytes());
    bytes
}

fn decode_stamp(context: &[u8]) -> Option<u64> {
    let digits = context.strip_prefix(STAMP_PREFIX)?;
    let raw: [u8; 8] = digits.try_into().ok()?;
    Some(u64::from_le_bytes(raw))
}

/// True if the ids for which `yes` holds form a quorum of `conf` (both halves while joint).
pub(crate) fn is_quorum(conf: &ConfState, yes: impl Fn(u64) -> bool) -> bool {
    let majority = |voters: &[u64]| {
        voters.is_empty() || voters.iter().filter(|id| yes(**id)).count() * 2 > voters.len()
    };
    !conf.voters.is_empty() && majority(&conf.voters) && majority(&conf.voters_outgoing)
}

#[derive(Debug)]
struct PendingRead {
    context: Vec<u8>,
    /// The follower that forwarded it, or `None` for a local request.
    requester: Option<u64>,
    index: u64,
    /// Answerable once a quorum has echoed this stamp or a later one.
    after_seq: u64,
}

/// What the leader sends or reports once a read is answerable.
#[derive(Debug)]
pub(crate) enum Answer {
    Local(ReadReady),
    Remote(Message),
}

/// The leader's read bookkeeping for one term.
#[derive(Debug, Default)]
pub(crate) struct ReadTracker {
    term: u64,
    next_seq: u64,
    /// Stamps sent recently and the leader tick they were sent at, oldest first.
    sent: VecDeque<(u64, u64)>,
    /// The highest stamp each peer has echoed in this term.
    acked: BTreeMap<u64, u64>,
    pending: VecDeque<PendingRead>,
    answered: Vec<Answer>,
    /// The stamp a heartbeat was last requested for, so one heartbeat serves many reads.
    pinged_seq: Option<u64>,
    /// The lease is not used before this tick (after a leadership transfer).
    lease_blocked_until: u64,
}

impl ReadTracker {
    /// Forgets everything when the term changes (a new leadership, or a lost one).
    pub(crate) fn sync_term(&mut self, term: u64) {
        if term != self.term {
            *self = ReadTracker {
                term,
                next_seq: 1,
                ..ReadTracker::default()
            };
        }
    }

    /// Suspends the lease until `until` (a leadership transfer is under way).
    pub(crate) fn block_lease_until(&mut self, until: u64) {
        self.lease_blocked_until = self.lease_blocked_until.max(until);
    }

    /// Stamps the heartbeats among `messages`, sent at leader tick `now`.
    pub(crate) fn stamp(&mut self, messages: &mut [Message], now: u64, lease_ticks: u64) {
        let seq = self.next_seq;
        let mut any = false;
        for message in messages.iter_mut() {
            if message.get_msg_type() == MessageType::MsgHeartbeat && message.context.is_empty() {
                message.context = encode_stamp(seq).into();
                any = true;
            }
        }
        if any {
            self.sent.push_back((seq, now));
            self.next_seq += 1;
            // Stamps older than the lease cannot give one; keep the newest for the lookup.
            while self.sent.len() > 1
                && self
                    .sent
                    .front()
                    .is_some_and(|(_, tick)| now.saturating_sub(*tick) >= lease_ticks)
            {
                self.sent.pop_front();
            }
        }
    }

    /// Records a heartbeat response from `from` (already checked to be of this term).
    pub(crate) fn on_heartbeat_response(&mut self, from: u64, context: &[u8]) -> bool {
        match decode_stamp(context) {
            Some(seq) if seq < self.next_seq => {
                let acked = self.acked.entry(from).or_default();
                *acked = (*acked).max(seq);
                !self.pending.is_empty()
            }
            _ => false,
        }
    }

    fn sent_tick(&self, seq: u64) -> Option<u64> {
        self.sent
            .iter()
            .find(|(sent_seq, _)| *sent_seq == seq)
            .map(|(_, tick)| *tick)
    }

    /// True if the leader holds a lease at tick `now`.
    pub(crate) fn has_lease(
        &self,
        conf: &ConfState,
        self_id: u64,
        now: u64,
        lease_ticks: u64,
    ) -> bool {
        if lease_ticks == 0 || now < self.lease_blocked_until {
            return false;
        }
        is_quorum(conf, |id| {
            id == self_id
                || self
                    .acked
                    .get(&id)
                    .and_then(|seq| self.sent_tick(*seq))
                    .is_some_and(|tick| now.saturating_sub(tick) < lease_ticks)
        })
    }

    /// How many more ticks the leader's lease holds at tick `now` (None: no lease). The lease
    /// rests on the quorum-th freshest echoed heartbeat; it ends `lease_ticks` after that one
    /// was sent.
    pub(crate) fn lease_remaining(&self, conf: &ConfState, self_id: u64, now: u64, lease_ticks: u64) -> Option<u64> {
        if lease_ticks == 0 || now < self.lease_blocked_until || conf.voters.is_empty() {
            return None;
        }
        let freshest_quorum_tick = |voters: &[u64]| -> Option<u64> {
            if voters.is_empty() {
                return Some(now);
            }
            let mut ticks: Vec<u64> = voters
                .iter()
                .filter_map(|&id| if id == self_id { Some(now) } else { self.acked.get(&id).and_then(|seq| self.sent_tick(*seq)) })
                .collect();
            ticks.sort_unstable_by(|a, b| b.cmp(a));
            ticks.get(voters.len() / 2).copied()
        };
        let oldest = freshest_quorum_tick(&conf.voters)?.min(freshest_quorum_tick(&conf.voters_outgoing)?);
        let age = now.saturating_sub(oldest);
        (age < lease_ticks).then(|| lease_ticks - age)
    }

    /// Registers a read at commit index `index`. Returns true if a heartbeat should go out
    /// now to confirm it (the answer is not immediate and none is on its way yet).
    pub(crate) fn request(
        &mut self,
        context: Vec<u8>,
        requester: Option<u64>,
        index: u64,
        lease: bool,
        leader: (u64, u64),
    ) -> bool {
        let read = PendingRead {
            context,
            requester,
            index,
            after_seq: self.next_seq,
        };
        if lease {
            self.answered.push(answer(read, leader));
            return false;
        }
        self.pending.push_back(read);
        let ping = self.pinged_seq != Some(self.next_seq);
        self.pinged_seq = Some(self.next_seq);
        ping
    }

    /// True if `take_answers` has something.
    #[cfg(test)]
    pub(crate) fn has_answers(&self, conf: &ConfState, self_id: u64) -> bool {
        !self.answered.is_empty()
            || self
                .pending
                .front()
                .is_some_and(|read| self.confirmed(conf, self_id, read.after_seq))
    }

    fn confirmed(&self, conf: &ConfState, self_id: u64, seq: u64) -> bool {
        is_quorum(conf, |id| {
            id == self_id || self.acked.get(&id).is_some_and(|acked| *acked >= seq)
        })
    }

    /// Takes the reads that can be answered now, in request order.
    pub(crate) fn take_answers(&mut self, conf: &ConfState, self_id: u64) -> Vec<Answer> {
        let leader = (self_id, self.term);
        while let Some(read) = self.pending.front() {
            if !self.confirmed(conf, self_id, read.after_seq) {
                break;
            }
            if let Some(read) = self.pending.pop_front() {
                self.answered.push(answer(read, leader));
            }
        }
        std::mem::take(&mut self.answered)
    }
}

/// Builds the answer to a read: a read state for a local request, a `MsgReadIndexResp` for a
/// follower's. `leader` is (leader id, term).
fn answer(read: PendingRead, (leader_id, term): (u64, u64)) -> Answer {
    match read.requester {
        None => Answer::Local(ReadReady {
            index: read.index,
            context: read.context,
        }),
        Some(to) => {
            let mut message = Message::default();
            message.set_msg_type(MessageType::MsgReadIndexResp);
            message.to = to;
            message.from = leader_id;
            message.term = term;
            message.index = read.index;
            let mut entry = Entry::default();
            entry.data = read.context.into();
            message.mut_entries().push(entry);
            Answer::Remote(message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(voters: &[u64], outgoing: &[u64]) -> ConfState {
        let mut conf = ConfState::default();
        conf.voters = voters.to_vec();
        conf.voters_outgoing = outgoing.to_vec();
        conf
    }

    #[test]
    fn quorums_are_joint_aware() {
        assert!(is_quorum(&conf(&[1, 2, 3], &[]), |id| id <= 2));
        assert!(!is_quorum(&conf(&[1, 2, 3], &[]), |id| id == 1));
        assert!(!is_quorum(&conf(&[1, 2], &[]), |id| id == 1));
        assert!(is_quorum(&conf(&[1], &[]), |id| id == 1));
        // Joint: a majority of both halves is needed.
        assert!(!is_quorum(&conf(&[1, 2, 4], &[1, 2, 3]), |id| id == 1 || id == 4));
        assert!(is_quorum(&conf(&[1, 2, 4], &[1, 2, 3]), |id| id == 1 || id == 2));
        assert!(!is_quorum(&conf(&[], &[]), |_| true));
    }

    fn heartbeat(to: u64) -> Message {
        let mut message = Message::default();
        message.set_msg_type(MessageType::MsgHeartbeat);
        message.to = to;
        message
    }

    #[test]
    fn lease_remaining_agrees_with_has_lease() {
        for voters in [conf(&[1, 2, 3], &[]), conf(&[1, 2], &[]), conf(&[1, 2, 3], &[1, 2])] {
            let mut tracker = ReadTracker::default();
            tracker.sync_term(5);
            assert_eq!(tracker.lease_remaining(&voters, 1, 0, 8), None);
            let mut beats = vec![heartbeat(2), heartbeat(3)];
            tracker.stamp(&mut beats, 10, 8);
            tracker.on_heartbeat_response(2, &beats[0].context);
            for now in 10..20 {
                let remaining = tracker.lease_remaining(&voters, 1, now, 8);
                assert_eq!(remaining.is_some(), tracker.has_lease(&voters, 1, now, 8), "at tick {now}");
                if let Some(r) = remaining {
                    assert_eq!(r, 8 - (now - 10), "the lease ends lease_ticks after the echoed stamp was sent");
                }
            }
            tracker.block_lease_until(30);
            assert_eq!(tracker.lease_remaining(&voters, 1, 12, 8), None);
        }
    }

    #[test]
    fn lease_follows_the_echoed_stamps_and_expires() {
        let voters = conf(&[1, 2, 3], &[]);
        let mut tracker = ReadTracker::default();
        tracker.sync_term(5);
        assert!(
            !tracker.has_lease(&voters, 1, 0, 8),
            "no lease before any echo"
        );
        let mut beats = vec![heartbeat(2), heartbeat(3)];
        tracker.stamp(&mut beats, 10, 8);
        tracker.on_heartbeat_response(2, &beats[0].context);
        assert!(tracker.has_lease(&voters, 1, 10, 8));
        assert!(tracker.has_lease(&voters, 1, 17, 8));
        assert!(
            !tracker.has_lease(&voters, 1, 18, 8),
            "the lease ends lease_ticks after sending"
        );
        tracker.block_lease_until(30);
        assert!(!tracker.has_lease(&voters, 1, 12, 8));
        // A forged or foreign context is ignored.
        assert!(!tracker.on_heartbeat_response(3, b"CL\x09\0\0\0\0\0\0\0"));
        assert!(!tracker.on_heartbeat_response(3, b"other"));
        // A new term forgets everything.
        tracker.sync_term(6);
        assert!(!tracker.has_lease(&voters, 1, 10, 8));
    }

    #[test]
    fn reads_wait_for_a_quorum_to_echo_a_later_stamp() {
        let voters = conf(&[1, 2, 3], &[]);
        let mut tracker = ReadTracker::default();
        tracker.sync_term(2);
        let mut old = vec![heartbeat(2), heartbeat(3)];
        tracker.stamp(&mut old, 1, 8);
        assert!(
            tracker.request(b"r".to_vec(), None, 7, false, (1, 2)),
            "a heartbeat is needed"
        );
        assert!(
            !tracker.request(b"s".to_vec(), Some(3), 7, false, (1, 2)),
            "one heartbeat serves both"
        );
        // An echo of a heartbeat sent before the request proves nothing about after it.
        tracker.on_heartbeat_response(2, &old[0].context);
        assert!(!tracker.has_answers(&voters, 1));
        let mut new = vec![heartbeat(2), heartbeat(3)];
        tracker.stamp(&mut new, 2, 8);
        assert!(tracker.on_heartbeat_response(3, &new[1].context));
        assert!(tracker.has_answers(&voters, 1));
        let answers = tracker.take_answers(&voters, 1);
        assert_eq!(answers.len(), 2);
        assert!(
            matches!(&answers[0], Answer::Local(read) if read.index == 7 && read.context == b"r")
        );
        assert!(
            matches!(&answers[1], Answer::Remote(message) if message.to == 3 && message.index == 7 && message.term == 2)
        );
    }
}
