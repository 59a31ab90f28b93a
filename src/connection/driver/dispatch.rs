//! Frames of a running connection, dispatched: connection methods on
//! channel 0, channel methods and content to their channels, and the close
//! handshakes of both. Errors come back as values: soft ones close the
//! channel here, hard ones go up to close the connection.

use amq_protocol::protocol::{channel as chan, connection, AMQPClass};
use tracing::debug;

use super::{Channel, Connection, State};
use crate::connection::channel::Ctx;
use crate::protocol::frame::{Frame, Payload};
use crate::protocol::method::{self, Method};
use crate::protocol::{encode, AmqpError};

impl Connection {
    pub(super) fn on_frame(&mut self, frame: Frame<Payload<'_>>) -> Result<(), AmqpError> {
        if self.state == State::Closing {
            // Only the close handshake matters now.
            if let Frame::Method { channel: 0, payload } = &frame {
                match method::ids(payload) {
                    (10, 51) => self.state = State::Done,
                    // Both sides closed at once: answer theirs, still wait for ours.
                    (10, 50) => encode::method(&mut self.ctx.out, 0, &close_ok()),
                    _ => {}
                }
            }
            return Ok(());
        }
        match frame {
            Frame::Heartbeat { channel: 0 } => Ok(()),
            Frame::Heartbeat { channel } => {
                Err(AmqpError::unexpected_frame(format!("heartbeat frame on channel {channel}")))
            }
            Frame::Method { channel: 0, payload } => self.on_connection_method(&payload),
            Frame::Header { channel: 0, .. } | Frame::Body { channel: 0, .. } => {
                Err(AmqpError::unexpected_frame("content frame on channel 0"))
            }
            Frame::Method { channel, payload } => self.on_channel_method(channel, &payload),
            Frame::Header { channel, payload } => {
                self.on_content(channel, |ch, ctx| ch.on_header(&payload, ctx))
            }
            Frame::Body { channel, payload } => self.on_content(channel, |ch, ctx| ch.on_body(payload, ctx)),
        }
    }

    fn on_connection_method(&mut self, payload: &[u8]) -> Result<(), AmqpError> {
        let (c, m) = method::ids(payload);
        match method::decode(payload).map_err(AmqpError::on_connection)? {
            Method::Other(AMQPClass::Connection(connection::AMQPMethod::Close(close))) => {
                debug!(code = close.reply_code, text = %close.reply_text, "client closed the connection");
                self.close_reason = format!("client closed: {} {}", close.reply_code, close.reply_text);
                // Confirms owed for what was read before the close go out first.
                self.flush_confirms();
                encode::method(&mut self.ctx.out, 0, &close_ok());
                self.close_ok_end = Some(self.ctx.out.len());
                self.state = State::Done;
                self.client_closed = true;
                Ok(())
            }
            Method::Other(AMQPClass::Connection(connection::AMQPMethod::UpdateSecret(_))) => {
                let ok = connection::AMQPMethod::UpdateSecretOk(connection::UpdateSecretOk {});
                encode::method(&mut self.ctx.out, 0, &AMQPClass::Connection(ok));
                Ok(())
            }
            Method::Other(AMQPClass::Connection(connection::AMQPMethod::Blocked(_)))
            | Method::Other(AMQPClass::Connection(connection::AMQPMethod::Unblocked(_))) => Ok(()),
            _ => Err(AmqpError::channel_error("unexpected method in connection state running").during(c, m)),
        }
    }

    fn on_channel_method(&mut self, id: u16, payload: &[u8]) -> Result<(), AmqpError> {
        let (c, m) = method::ids(payload);
        let decoded = match method::decode(payload) {
            Ok(decoded) => decoded,
            Err(e) if e.is_hard() => return Err(e),
            // Well formed but refused (a table nested too deep): the channel's error.
            Err(e) => {
                return match self.channels.get(&id) {
                    Some(ch) if ch.closing => Ok(()),
                    Some(_) => self.channel_error(id, e),
                    None => Err(AmqpError::channel_error("expected 'channel.open'").during(c, m)),
                }
            }
        };
        let Some(ch) = self.channels.get_mut(&id) else {
            if let Method::Other(AMQPClass::Channel(chan::AMQPMethod::Open(_))) = decoded {
                // Like RabbitMQ, channel_max limits how many channels are open
                // (closing ones included), not their numbers.
                if self.channels.len() >= usize::from(self.channel_max) {
                    return Err(AmqpError::not_allowed(format!(
                        "number of channels opened ({}) has reached the negotiated channel_max ({})",
                        self.channels.len(),
                        self.channel_max
                    )));
                }
                if let Some(limit) = self.ctx.session.channel_limit() {
                    if self._registered.user_channels() >= limit {
                        return Err(AmqpError::not_allowed(format!(
                            "number of channels opened for user '{}' has reached the maximum allowed user limit of ({limit})",
                            self.ctx.user
                        )));
                    }
                }
                self.epochs += 1;
                let ch = Channel::new(id, self.epochs);
                ch.reply(&mut self.ctx, AMQPClass::Channel(chan::AMQPMethod::OpenOk(chan::OpenOk {})));
                self.channels.insert(id, ch);
                self.ctx.entry.stats.channel_opened();
                return Ok(());
            }
            return Err(AmqpError::channel_error("expected 'channel.open'").during(c, m));
        };
        if ch.closing {
            // We sent channel.close: only its close-ok ends the channel. A close
            // the client sent meanwhile (both sides at once) is answered, and
            // everything else but a second open is dropped, as RabbitMQ does.
            match decoded {
                Method::Other(AMQPClass::Channel(chan::AMQPMethod::Open(_))) => {
                    return Err(AmqpError::channel_error("second 'channel.open' seen").during(c, m));
                }
                Method::Other(AMQPClass::Channel(chan::AMQPMethod::CloseOk(_))) => {
                    if ch.consumed {
                        self.reclaim(id);
                    }
                    self.channels.remove(&id);
                    self.ctx.entry.stats.channel_closed();
                }
                Method::Other(AMQPClass::Channel(chan::AMQPMethod::Close(_))) => {
                    ch.reply(&mut self.ctx, AMQPClass::Channel(chan::AMQPMethod::CloseOk(chan::CloseOk {})));
                }
                _ => {}
            }
            return Ok(());
        }
        match decoded {
            Method::Other(AMQPClass::Channel(chan::AMQPMethod::Open(_))) => {
                Err(AmqpError::channel_error("second 'channel.open' seen").during(c, m))
            }
            Method::Other(AMQPClass::Channel(chan::AMQPMethod::Close(_))) => {
                ch.release(&mut self.ctx);
                ch.reply(&mut self.ctx, AMQPClass::Channel(chan::AMQPMethod::CloseOk(chan::CloseOk {})));
                if ch.consumed {
                    self.reclaim(id);
                }
                self.channels.remove(&id);
                self.ctx.entry.stats.channel_closed();
                Ok(())
            }
            // A close-ok for a close nobody sent (RabbitMQ's answer).
            Method::Other(AMQPClass::Channel(chan::AMQPMethod::CloseOk(_))) => {
                Err(AmqpError::command_invalid("unimplemented method").during(c, m))
            }
            decoded => {
                let result = ch.handle(decoded, &mut self.ctx);
                let epoch = ch.epoch;
                if ch.confirms_due() && !self.confirms_due.contains(&id) {
                    self.confirms_due.push(id);
                }
                if let Some(wait) = self.ctx.wait.take() {
                    // Answered later (`owed.rs`): no more input until then.
                    self.owe(id, epoch, wait.during(c, m));
                }
                result.or_else(|e| self.channel_error(id, e.during(c, m)))
            }
        }
    }

    fn on_content(
        &mut self,
        id: u16,
        f: impl FnOnce(&mut Channel, &mut Ctx) -> Result<(), AmqpError>,
    ) -> Result<(), AmqpError> {
        let Some(ch) = self.channels.get_mut(&id) else {
            return Err(AmqpError::unexpected_frame("expected method frame, got non method frame instead"));
        };
        if ch.closing {
            return Ok(());
        }
        let result = f(ch, &mut self.ctx);
        if ch.confirms_due() && !self.confirms_due.contains(&id) {
            self.confirms_due.push(id);
        }
        result.or_else(|e| self.channel_error(id, e))
    }

    /// Closes channels holding a delivery unacknowledged past the consumer
    /// timeout, with RabbitMQ's 406 (their deliveries are requeued).
    pub(super) fn close_overdue_channels(&mut self) {
        let Some(limit) = self.consumer_timeout else { return };
        let now = std::time::Instant::now();
        let overdue: Vec<u16> = self
            .channels
            .iter()
            .filter(|(_, ch)| {
                !ch.closing && ch.oldest_unacked().is_some_and(|at| now.duration_since(at) > limit)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in overdue {
            let text = format!(
                "delivery acknowledgement on channel {id} timed out. Timeout value used: {} ms. \
                 This timeout value can be configured, see consumers doc guide to learn more",
                limit.as_millis()
            );
            let _ = self.channel_error(id, AmqpError::precondition_failed(text));
        }
    }

    /// Soft errors close the channel; hard ones are passed up to close the connection.
    fn channel_error(&mut self, id: u16, e: AmqpError) -> Result<(), AmqpError> {
        if e.is_hard() {
            return Err(e);
        }
        debug!(channel = id, "closing channel: {e}");
        let Some(ch) = self.channels.get_mut(&id) else { return Ok(()) };
        ch.flush_confirms(&mut self.ctx);
        ch.release(&mut self.ctx);
        ch.closing = true;
        let close = chan::Close {
            reply_code: e.code(),
            reply_text: e.text.into(),
            class_id: e.class_id,
            method_id: e.method_id,
        };
        ch.reply(&mut self.ctx, AMQPClass::Channel(chan::AMQPMethod::Close(close)));
        Ok(())
    }
}

fn close_ok() -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {}))
}
