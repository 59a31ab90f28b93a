//! Streams at start-up: the offsets consumers had on the server, and the
//! files of streams that are gone (a deletion a crash cut short).

use std::collections::HashMap;
use std::sync::Arc;

use tracing::warn;

use super::{Stream, OFFSETS_SPACE};
use crate::broker::Broker;
use crate::store::Op;

impl Broker {
    /// Gives each stream its tracked offsets; with `clean`, drops the
    /// offsets and files of streams that no longer exist.
    pub(crate) fn restore_streams(
        &self,
        control: &[(String, String, Vec<u8>)],
        on_record: &std::collections::HashSet<u64>,
        clean: bool,
    ) {
        let Some(store) = &self.store else { return };
        let mut streams: HashMap<u64, Arc<Stream>> = HashMap::new();
        for v in self.vhosts.read().values() {
            for name in v.queue_names() {
                if let Some(s) = v.queue(&name).and_then(|q| q.stream().cloned()) {
                    streams.insert(s.id, s);
                }
            }
        }
        for (space, key, value) in control.iter().filter(|(space, _, _)| space == OFFSETS_SPACE) {
            let parsed = key.split_once('/').and_then(|(id, tag)| Some((id.parse::<u64>().ok()?, tag)));
            let offset = <[u8; 8]>::try_from(value.as_slice()).ok().map(u64::from_be_bytes);
            match (parsed, offset) {
                (Some((id, tag)), Some(o)) if streams.contains_key(&id) => {
                    streams[&id].restore_offset(tag.to_owned(), o)
                }
                (Some((id, _)), _) if on_record.contains(&id) => {}
                _ if clean => store.submit(Op::DeleteControl { space: space.clone(), key: key.clone() }),
                _ => {}
            }
        }
        let Some(dir) = store.streams_dir().filter(|_| clean) else { return };
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let id = e.file_name().to_string_lossy().parse::<u64>().ok();
            if id.is_some_and(|id| !streams.contains_key(&id) && !on_record.contains(&id)) {
                warn!(dir = %e.path().display(), "removing the files of a deleted stream");
                if let Err(err) = std::fs::remove_dir_all(e.path()) {
                    warn!(dir = %e.path().display(), "cannot remove them: {err}");
                }
            }
        }
    }
}
