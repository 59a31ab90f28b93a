//! A queue that is a stream (`x-queue-type: stream`): the queue's entry
//! points hand over to its `Stream` (`broker/stream`), which keeps no
//! ready list, no unacked list and no consumers of the queue's own.

use std::sync::Arc;

use super::stats::QueueInfo;
use super::{ConsumerRemoved, Queue};
use crate::broker::consumer::Consumer;
use crate::broker::stream::Stream;

impl Queue {
    /// Its stream, if it is one (set once it is opened).
    pub fn stream(&self) -> Option<&Arc<Stream>> {
        self.stream.get()
    }

    /// Classic, quorum or stream (what policies' `apply-to` tells apart).
    pub fn queue_type(&self) -> crate::broker::policy::QueueType {
        use crate::broker::policy::QueueType;
        match (self.is_stream, self.config.quorum) {
            (true, _) => QueueType::Stream,
            (false, true) => QueueType::Quorum,
            (false, false) => QueueType::Classic,
        }
    }

    /// The stream's disk is behind: wake publishers that paused.
    pub(crate) fn stream_relieved(&self) {
        self.drained.notify_waiters();
    }

    pub(super) fn remove_stream_consumer(&self, s: &Stream, consumer: &Arc<Consumer>) -> ConsumerRemoved {
        s.remove_consumer(consumer);
        self.touch();
        ConsumerRemoved::Remaining
    }

    pub(super) fn stream_info(&self, s: &Stream) -> QueueInfo {
        let mut totals = self.state.lock().totals;
        totals.published = s.published();
        QueueInfo {
            ready: s.log.count(),
            ready_bytes: s.log.bytes(),
            paged_out: s.log.count(),
            paged_out_bytes: s.log.bytes(),
            consumers: s.consumer_count() as u64,
            totals,
            ..QueueInfo::default()
        }
    }
}
