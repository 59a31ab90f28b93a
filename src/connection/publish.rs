//! `basic.publish`: content assembly (method → header → body frames),
//! routing, mandatory returns and publisher confirms.

use std::sync::Arc;

use bytes::Bytes;

use super::channel::{Channel, Ctx};
use super::confirms::Confirms;
use crate::broker::delayed;
use crate::broker::exchange::Exchange;
use crate::broker::vhost::{Enqueued, REPLY_TO};
use crate::broker::Message;
use crate::protocol::frame::Payload;
use crate::protocol::method::Publish;
use crate::protocol::properties::{decode_properties, encode_header, ContentHeader};
use crate::protocol::{encode, AmqpError, ErrorKind};

/// A publish whose content is still arriving. Its frames are read in
/// place and gone before the next arrives: the names and the header are
/// copied into one buffer (the channel's, reused), the body as it comes.
#[derive(Debug)]
pub struct Pending {
    /// The exchange's name, the routing key, then the content header.
    meta: Vec<u8>,
    exchange_len: u8,
    routing_key_len: u8,
    mandatory: bool,
    header: Option<ContentHeader>,
    /// The body gathered from frames; a body in one frame never comes here.
    body: Vec<u8>,
}

/// The largest names-and-header buffer a channel keeps for its next
/// publish: enough for common properties, little across a connection's
/// 2,047 channels.
const META_KEEP: usize = 512;

impl Pending {
    pub fn has_header(&self) -> bool {
        self.header.is_some()
    }

    fn names_len(&self) -> usize {
        usize::from(self.exchange_len) + usize::from(self.routing_key_len)
    }

    /// Bytes held for this message so far: its content header and the
    /// memory its body takes (what was allocated, not only what arrived).
    pub fn held(&self) -> u64 {
        (self.meta.len() - self.names_len() + self.body.capacity()) as u64
    }
}

/// The most a body buffer is given before its bytes arrive: a header may
/// announce far more than its sender ever sends.
const BODY_PREALLOCATION_MAX: usize = 4 << 20;

/// Appends a frame's payload to a body of `expected` bytes. The buffer is
/// first given what the header announced (up to a bound), then grows by
/// doubling, never past `expected`, so it ends exactly that big and never
/// holds more than twice what arrived.
fn gather(body: &mut Vec<u8>, part: &[u8], expected: usize) {
    if body.capacity() - body.len() < part.len() {
        let room = match body.capacity() {
            0 => expected.min(BODY_PREALLOCATION_MAX),
            _ => body.len().min(expected.saturating_sub(body.len())),
        };
        body.reserve_exact(part.len().max(room));
    }
    body.extend_from_slice(part);
}

impl Channel {
    pub(super) fn on_publish(&mut self, p: Publish<'_>) -> Result<(), AmqpError> {
        if p.immediate {
            return Err(AmqpError::not_implemented("immediate=true"));
        }
        let mut meta = std::mem::take(&mut self.spare_meta);
        meta.clear();
        meta.extend_from_slice(p.exchange);
        meta.extend_from_slice(p.routing_key);
        self.pending = Some(Pending {
            meta,
            // Short strings on the wire: at most 255 bytes each.
            exchange_len: p.exchange.len() as u8,
            routing_key_len: p.routing_key.len() as u8,
            mandatory: p.mandatory,
            header: None,
            body: Vec::new(),
        });
        Ok(())
    }

    /// A content header frame. Errors are connection errors except the size limit.
    pub fn on_header(&mut self, payload: &[u8], ctx: &mut Ctx) -> Result<(), AmqpError> {
        let Some(pending) = self.pending.as_mut() else {
            return Err(AmqpError::unexpected_frame("expected method frame, got non method frame instead"));
        };
        if pending.header.is_some() {
            return Err(AmqpError::unexpected_frame(
                "expected content body, got non content body frame instead",
            )
            .during(60, 40));
        }
        // A header for the wrong class (or refused, not malformed) answers the publish;
        // a malformed one is a frame error.
        let info = ContentHeader::scan(payload).map_err(|e| {
            if e.kind == ErrorKind::UnexpectedFrame || !e.is_hard() {
                e.during(60, 40)
            } else {
                e
            }
        })?;
        if info.body_size > ctx.max_message_size {
            self.pending = None;
            return Err(AmqpError::precondition_failed(format!(
                "message size {} is larger than configured max size {}",
                info.body_size, ctx.max_message_size
            ))
            .during(60, 40));
        }
        let done = info.body_size == 0;
        ctx.unfinished += payload.len() as u64;
        pending.meta.extend_from_slice(payload);
        pending.header = Some(info);
        if done {
            self.finish_publish(ctx, None)?;
        }
        Ok(())
    }

    /// A content body frame.
    pub fn on_body(&mut self, payload: Payload<'_>, ctx: &mut Ctx) -> Result<(), AmqpError> {
        let (info, body) = match self.pending.as_mut() {
            Some(Pending { header: Some(info), body, .. }) => (info, body),
            Some(_) => {
                return Err(AmqpError::unexpected_frame(
                    "expected content header for class 60, got non content header frame instead",
                )
                .during(60, 40))
            }
            None => {
                return Err(AmqpError::unexpected_frame(
                    "expected method frame, got non method frame instead",
                ))
            }
        };
        let expected = info.body_size;
        let have = body.len() as u64 + payload.len() as u64;
        if have > expected {
            return Err(AmqpError::frame_error(format!(
                "content body of {have} bytes exceeds the {expected} announced in its header"
            )));
        }
        if have == expected && body.is_empty() {
            // The whole body in one frame: made into the message from where it is.
            return self.finish_publish(ctx, Some(payload));
        }
        let before = body.capacity();
        gather(body, &payload, expected as usize);
        ctx.unfinished += (body.capacity() - before) as u64;
        if have == expected {
            self.finish_publish(ctx, None)?;
        }
        Ok(())
    }

    /// Routes a complete message to its queues; `whole` is its body when
    /// that came in one frame, not yet taken into the pending publish.
    fn finish_publish(&mut self, ctx: &mut Ctx, whole: Option<Payload<'_>>) -> Result<(), AmqpError> {
        let pending = self.pending.take().expect("a publish is pending");
        ctx.unfinished -= pending.held();
        let Pending { meta, exchange_len, routing_key_len, mandatory, header, body } = pending;
        let info = header.expect("the header arrived");
        let (exchange_name, rest) = meta.split_at(usize::from(exchange_len));
        let (routing_key, header) = rest.split_at(usize::from(routing_key_len));
        // RabbitMQ's order: permission, the exchange, the reply-to, user_id, then the properties.
        ctx.session.check_publish(exchange_name).map_err(|e| e.during(60, 40))?;
        let exchange =
            ctx.vhost.publish_exchange(exchange_name, &mut ctx.router).map_err(|e| e.during(60, 40))?;
        if exchange.routes_as == crate::broker::exchange::ExchangeKind::Topic
            && ctx.session.has_topic_permissions()
        {
            let key = String::from_utf8_lossy(routing_key);
            ctx.session
                .check_topic(&exchange.name, &key, crate::access::session::Action::Write)
                .map_err(|e| e.during(60, 40))?;
        }
        let replied = self.direct_reply_to(header, &info).map_err(|e| e.during(60, 40))?;
        let (header, info) = match &replied {
            Some((header, info)) => (&header[..], info),
            None => (header, &info),
        };
        if let Some(user_id) = info.user_id.map(|r| &header[r.range()]) {
            if user_id != ctx.user.as_bytes() {
                return Err(AmqpError::precondition_failed(format!(
                    "user_id property set to '{}' but authenticated user was '{}'",
                    String::from_utf8_lossy(user_id),
                    ctx.user
                ))
                .during(60, 40));
            }
        }
        check_content(header, info).map_err(|e| e.during(60, 40))?;
        let stripped = strip_bcc(header, info);
        let (header, info, bcc) = match &stripped {
            Some((header, info, bcc)) => (&header[..], info, &bcc[..]),
            None => (header, info, &[][..]),
        };
        let info = info.clone();
        let message = Arc::new(match whole {
            Some(Payload::Borrowed(body)) => Message::copied(exchange_name, routing_key, header, info, body),
            Some(Payload::Shared(body)) => Message::published(exchange_name, routing_key, header, info, body),
            None => Message::published(exchange_name, routing_key, header, info, Bytes::from(body)),
        });
        if meta.capacity() <= META_KEEP {
            self.spare_meta = meta;
        }
        if exchange.delayer().is_some() {
            delayed::delay_of(&message).map_err(|e| e.during(60, 40))?;
        }
        let counted = &ctx.entry.stats.msgs;
        counted.received.add(1);
        if self.confirms.is_some() {
            counted.received_confirm.add(1);
        }
        match self.tx.as_mut() {
            Some(tx) => tx.publishes.push((exchange.clone(), message, bcc.to_vec(), mandatory)),
            None => {
                let seq = self.confirms.as_mut().map(Confirms::publish);
                let routed = self.route(&exchange, message, bcc, mandatory, ctx);
                match (self.confirms.as_mut(), seq) {
                    // A full queue refused it (reject-publish): a nack.
                    (Some(confirms), Some(seq)) if routed.rejected => confirms.settle(seq, false),
                    // Confirmed when the store says the write is durable.
                    (Some(_), Some(seq)) if routed.on_disk => {
                        ctx.durable_confirms.push((self.id, self.epoch, seq))
                    }
                    (Some(confirms), Some(seq)) => confirms.settle(seq, true),
                    _ => {}
                }
            }
        }
        ctx.router.keep_exchange(exchange);
        Ok(())
    }

    /// Hands a message to the queues it is routed to; returns it to the
    /// publisher if it is mandatory and reaches none. A persistent message
    /// reaching a durable queue is written to the store first (once, however
    /// many queues): `on_disk` says that happened.
    pub(super) fn route(
        &mut self,
        exchange: &Arc<Exchange>,
        message: Arc<Message>,
        bcc: &[String],
        mandatory: bool,
        ctx: &mut Ctx,
    ) -> Enqueued {
        let Some(dedup) = exchange.dedup() else {
            return self.route_message(exchange, message, bcc, mandatory, ctx);
        };
        // A duplicate's confirm waits for the disk as its original's may.
        let on_disk = ctx.vhost.store().is_some() && message.info.persistent();
        let routed = dedup.admit(dedup.key_of(&message), || {
            let mut routed = self.route_message(exchange, message, bcc, mandatory, ctx);
            // Consumed unwritten: its id is still written, and its confirm
            // waits for that (a retry after a crash is a duplicate).
            routed.on_disk |= routed.discarded;
            // Remembered only if a queue took it: a refused or unroutable
            // message may be published again.
            let taken = (routed.taken && !routed.rejected).then_some(routed.on_disk);
            (routed, taken)
        });
        // A duplicate is confirmed, not routed (nor returned).
        routed.unwrap_or(Enqueued { on_disk, ..Default::default() })
    }

    fn route_message(
        &mut self,
        exchange: &Arc<Exchange>,
        message: Arc<Message>,
        bcc: &[String],
        mandatory: bool,
        ctx: &mut Ctx,
    ) -> Enqueued {
        // A delayed message (checked at publish) waits on its exchange; it
        // is returned at once if mandatory and nothing would take it now.
        let delay = exchange.delayer().and_then(|d| Some((d, delayed::delay_of(&message).ok().flatten()?)));
        ctx.vhost.route(exchange, &message, bcc, &mut ctx.router);
        let counted = &ctx.entry.stats.msgs;
        if ctx.router.queues.is_empty() && (delay.is_none() || mandatory) {
            if mandatory {
                counted.unroutable_returned.add(1);
                encode::basic_return(
                    &mut ctx.out,
                    self.id,
                    312,
                    "NO_ROUTE",
                    message.exchange(),
                    message.routing_key(),
                );
                ctx.out.message(self.id, &message, ctx.frame_max);
            } else {
                counted.unroutable_dropped.add(1);
            }
            return Enqueued::default();
        }
        counted.routed.add(1);
        if let Some((delayer, ms)) = delay {
            ctx.router.queues.clear();
            return Enqueued { on_disk: delayer.schedule(message, ms), taken: true, ..Default::default() };
        }
        let mut routed = ctx.vhost.enqueue(message, &ctx.router.queues);
        ctx.router.done();
        if ctx.throttle.is_none() {
            ctx.throttle = routed.congested.take();
        }
        routed
    }

    /// A request asking for a direct reply (`reply_to` = `amq.rabbitmq.reply-to`)
    /// gets this channel's reply queue name instead, so the responder's reply
    /// is routed straight back here: the header made anew, or None if it
    /// stays as it is.
    fn direct_reply_to(
        &self,
        header: &[u8],
        info: &ContentHeader,
    ) -> Result<Option<(Bytes, ContentHeader)>, AmqpError> {
        if info.reply_to.map(|r| &header[r.range()]) != Some(REPLY_TO.as_bytes()) {
            return Ok(None);
        }
        let Some(queue) = &self.reply_queue else {
            return Err(AmqpError::precondition_failed("fast reply consumer does not exist"));
        };
        let props = decode_properties(header)
            .ok_or_else(|| AmqpError::frame_error("malformed content header frame"))?
            .with_reply_to(queue.name.as_str().into());
        let header = encode_header(info.body_size, &props);
        let info = ContentHeader::scan(&header)?;
        Ok(Some((header, info)))
    }

    /// The store reported on a persistent publish.
    pub fn settle_confirm(&mut self, seq: u64, ok: bool) {
        if let Some(confirms) = self.confirms.as_mut() {
            confirms.settle(seq, ok);
        }
    }

    /// Sends the confirms owed to the publisher, coalesced.
    pub fn flush_confirms(&mut self, ctx: &mut Ctx) {
        if let Some(confirms) = self.confirms.as_mut() {
            let acked = confirms.flush(&mut ctx.out, self.id);
            ctx.entry.stats.msgs.confirmed.add(acked);
        }
    }

    /// The size a body frame must have to be the whole body of the publish
    /// waiting for it (its header in, nothing of its body yet).
    pub fn whole_body_due(&self) -> Option<u64> {
        match &self.pending {
            Some(Pending { header: Some(info), body, .. }) if body.is_empty() => Some(info.body_size),
            _ => None,
        }
    }

    /// Bytes held for a message whose content is still arriving.
    pub fn unfinished_bytes(&self) -> u64 {
        self.pending.as_ref().map_or(0, Pending::held)
    }

    /// Whether there are confirms to send.
    pub fn confirms_due(&self) -> bool {
        self.confirms.as_ref().is_some_and(Confirms::has_settled)
    }
}

/// Sender-selected distribution: a `BCC` header's routing keys are used
/// for routing and removed from the message (no consumer sees them). None
/// when there is no `BCC` header, else the header made anew and the keys.
fn strip_bcc(header: &[u8], info: &ContentHeader) -> Option<(Bytes, ContentHeader, Vec<String>)> {
    let has_bcc =
        info.headers.is_some_and(|r| crate::protocol::table::find(&header[r.range()], b"BCC").is_some());
    if !has_bcc {
        return None;
    }
    let props = decode_properties(header)?;
    let mut table = props.headers().clone().unwrap_or_default().inner().clone();
    let bcc = match table.remove("BCC") {
        Some(amq_protocol::types::AMQPValue::FieldArray(a)) => {
            a.as_slice().iter().filter_map(crate::protocol::table::as_str).map(str::to_owned).collect()
        }
        _ => Vec::new(),
    };
    let props = props.with_headers(table.into());
    let header = encode_header(info.body_size, &props);
    match ContentHeader::scan(&header) {
        Ok(info) => Some((header, info, bcc)),
        Err(_) => unreachable!("a header we encoded scans"),
    }
}

/// What RabbitMQ refuses in a message's properties: an `expiration` that
/// is not a valid TTL, `CC` / `BCC` headers that are not arrays.
fn check_content(header: &[u8], info: &ContentHeader) -> Result<(), AmqpError> {
    if let Some(r) = info.expiration {
        let text = &header[r.range()];
        if let Err(why) = crate::broker::queue_args::parse_expiration(text) {
            return Err(AmqpError::precondition_failed(format!(
                "invalid expiration '{}': {why}",
                String::from_utf8_lossy(text)
            )));
        }
    }
    let Some(table) = info.headers.map(|r| &header[r.range()]) else { return Ok(()) };
    for key in ["CC", "BCC"] {
        let Some(value) = crate::protocol::table::find(table, key.as_bytes()) else { continue };
        if value.first() != Some(&b'A') {
            let kind = decode_properties(header)
                .and_then(|p| p.headers().as_ref().and_then(|h| h.inner().get(key).cloned()))
                .map_or("unknown", |v| crate::protocol::table::type_name(&v));
            return Err(AmqpError::precondition_failed(format!(
                "invalid message: {{unacceptable_type_in_header,\"{key}\",{kind}}}"
            )));
        }
    }
    Ok(())
}
