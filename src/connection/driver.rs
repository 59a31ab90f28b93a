//! The running connection: one task that owns all its channels' state.
//!
//! It waits on three things: bytes from the socket, deliveries from queues,
//! and the heartbeat timer. Whatever they produce is appended to one
//! buffer, written with a single socket write per turn of the loop.

mod dispatch;
mod outbound;
mod owed;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use amq_protocol::protocol::{connection, AMQPClass};
use bytes::{Buf, BytesMut};
use rustc_hash::FxHashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::{interval_at, timeout, Instant};
use tracing::{debug, info, warn, Instrument};

use super::channel::{Channel, Ctx};
use super::handshake::{handshake, HandshakeError, Negotiated};
use super::outbuf::OutBuf;
use super::socket::{Socket, WriteHalf};
use crate::access::Access;
use crate::broker::connections::TlsInfo;
use crate::broker::message::COPY_LIMIT;
use crate::broker::vhost::Router;
use crate::broker::{Broker, ConnectionId, Outbound, Queue};
use crate::config::Config;
use crate::protocol::frame::{decode, make_room, peek, Frame, Payload};
use crate::protocol::method;
use crate::protocol::{encode, AmqpError, ErrorKind, FRAME_MIN_SIZE};

/// Read buffer growth step for a busy connection; frames are read in place
/// in it.
const READ_CHUNK: usize = 64 * 1024;
/// What an idle connection keeps: most connections are mostly idle.
const IDLE_CHUNK: usize = 2 * 1024;
/// A connection that sends frames larger than READ_CHUNK reads into chunks
/// that hold one such frame (never more than frame_max allows) and this
/// much more: a frame that does not fit where it began is moved, bytes and
/// all, to a bigger buffer.
const CHUNK_SLACK: usize = 1024;
/// An outbound buffer larger than this is given back when the connection goes quiet.
const OUT_KEEP: usize = 16 * 1024;
/// How long we wait for `connection.close-ok` once our `connection.close`
/// is written...
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// ...and at most from when we decided to close (a client may not read it).
const STALLED_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Outbound queue items handled per turn, so reads are never starved.
const OUTBOUND_BATCH: usize = 256;
/// Once this much output waits for the socket, no more input is processed
/// and no more deliveries are taken until it is written.
const OUT_HIGH_WATER: usize = 1 << 20;
/// While the socket does not take our output, input is still read (to see
/// that the client is alive) until this much is held, but not processed
/// (the last read may pass it by the room the buffer had).
const STALLED_READ_MAX: usize = 256 * 1024;
/// The longest a publisher to a congested queue is not read.
const THROTTLE_MAX: Duration = Duration::from_millis(250);
const MS_50: Duration = Duration::from_millis(50);
const SECOND: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    /// We sent `connection.close`; waiting for `close-ok`.
    Closing,
    Done,
}

/// Serves one client socket from the protocol header to the last byte.
pub async fn serve<S: Socket>(
    mut stream: S,
    (peer, local, tls): (SocketAddr, SocketAddr, Option<TlsInfo>),
    broker: Arc<Broker>,
    access: Arc<Access>,
    config: Arc<Config>,
) {
    let _ = stream.set_nodelay(true);
    let _counted = broker.connection_opened();
    let id = broker.next_connection_id();
    let span = tracing::info_span!("conn", id, %peer);
    async move {
        let mut buf = BytesMut::with_capacity(IDLE_CHUNK);
        let limit = Duration::from_secs(config.amqp.handshake_timeout);
        let (tx, rx) = mpsc::unbounded_channel();
        let negotiated = match timeout(
            limit,
            handshake(&mut stream, &mut buf, (id, peer, local, tls), &broker, &access, &config, &tx),
        )
        .await
        {
            Err(_) => return warn!("handshake timed out"),
            Ok(Err(HandshakeError::Refused(e))) => return refuse(stream, buf, e).await,
            Ok(Err(HandshakeError::BadHeader(h))) => {
                return debug!(header = ?h, "unsupported protocol header")
            }
            Ok(Err(e)) => return debug!("handshake ended: {e}"),
            Ok(Ok(n)) => n,
        };
        info!(user = %negotiated.user, vhost = %negotiated.vhost.name, "connection opened");
        let alarm = (broker.alarms.subscribe(), broker.clone());
        let shutdown = broker.shutdown_signal();
        let reason =
            Connection::new(id, negotiated, &config, alarm, (tx, rx)).run(stream, buf, shutdown).await;
        info!("connection closed: {reason}");
    }
    .instrument(span)
    .await
}

/// Sends `connection.close` for a failed handshake and waits briefly for close-ok.
async fn refuse<S: Socket>(mut stream: S, mut buf: BytesMut, e: AmqpError) {
    warn!("handshake refused: {e}");
    let mut out = Vec::new();
    encode::method(&mut out, 0, &close_method(&e));
    if !matches!(timeout(CLOSE_TIMEOUT, stream.write_all(&out)).await, Ok(Ok(()))) {
        return;
    }
    let _ = timeout(CLOSE_TIMEOUT, async {
        loop {
            match decode(&mut buf, FRAME_MIN_SIZE) {
                Ok(Some(Frame::Method { channel: 0, payload })) if method::ids(&payload) == (10, 51) => {
                    return
                }
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(_) => return,
            }
            if !matches!(stream.read_buf(&mut buf).await, Ok(n) if n > 0) {
                return;
            }
        }
    })
    .await;
}

/// The whole size of the frame begun at the front of `buf`, once its
/// header is in (`peek` leaves an incomplete frame at the front).
fn frame_begun(buf: &[u8]) -> Option<usize> {
    let size = u32::from_be_bytes(buf.get(3..7)?.try_into().ok()?);
    Some(size as usize + 8)
}

fn close_method(e: &AmqpError) -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
        reply_code: e.code(),
        reply_text: e.text.clone().into(),
        class_id: e.class_id,
        method_id: e.method_id,
    }))
}

struct Connection {
    ctx: Ctx,
    channels: FxHashMap<u16, Channel>,
    /// Listed among the broker's connections while this lives.
    _registered: crate::broker::connections::Registered,
    channel_max: u16,
    heartbeat: u16,
    cancel_notify: bool,
    state: State,
    close_reason: String,
    /// Channels with publisher confirms to send at the end of this turn.
    confirms_due: Vec<u16>,
    rx: mpsc::UnboundedReceiver<Outbound>,
    /// The broker's resource alarm: true while publishers must wait.
    alarm: watch::Receiver<bool>,
    /// We stopped reading because this connection published during an alarm.
    blocked: bool,
    /// The client understands `connection.blocked` (and we told it).
    blocked_capable: bool,
    blocked_told: bool,
    /// The client started the close handshake.
    client_closed: bool,
    /// Where `connection.close-ok` ends in the outbound buffer: nothing after it is sent.
    close_ok_end: Option<usize>,
    /// Paused (not reading) while this queue it publishes to is congested...
    throttled_on: Option<Arc<Queue>>,
    /// ...until then at the latest.
    throttled_until: Instant,
    /// The alarm's last value seen (read once per change, not per frame).
    alarm_raised: bool,
    /// False once the alarm's sender is gone (never, while the broker runs).
    alarm_live: bool,
    /// Told the bytes read, which wake the resource monitor (`Alarms::took_in`).
    broker: Arc<Broker>,
    /// Complete frames are waiting in the read buffer for the socket to take
    /// our output first.
    deferred: bool,
    /// Deliveries taken from the outbound queue past the high-water mark.
    held: VecDeque<Outbound>,
    /// How long a delivery may stay unacknowledged (None: forever).
    consumer_timeout: Option<Duration>,
    /// Channels opened so far (each channel's epoch).
    epochs: u64,
    /// Bytes this connection's unfinished messages may hold.
    unfinished_limit: u64,
    /// An answer waiting for the store: no input is processed meanwhile.
    owed: Option<owed::Owed>,
}

impl Connection {
    fn new(
        id: ConnectionId,
        n: Negotiated,
        config: &Config,
        (mut alarm, broker): (watch::Receiver<bool>, Arc<Broker>),
        (tx, rx): (mpsc::UnboundedSender<Outbound>, mpsc::UnboundedReceiver<Outbound>),
    ) -> Self {
        let alarm_raised = *alarm.borrow_and_update();
        let capable = |cap: &str| {
            matches!(n.capabilities.inner().get(cap), Some(amq_protocol::types::AMQPValue::Boolean(true)))
        };
        let cancel_notify = capable("consumer_cancel_notify");
        let blocked_capable = capable("connection.blocked");
        Connection {
            ctx: Ctx {
                vhost: n.vhost,
                conn: id,
                entry: n.registered.entry.clone(),
                user: n.user,
                session: n.session,
                out: OutBuf::default(),
                tx,
                frame_max: n.frame_max,
                max_message_size: config.amqp.max_message_size,
                limits: config.limits,
                router: Router::default(),
                durable_confirms: Vec::new(),
                unfinished: 0,
                wait: None,
                throttle: None,
                now: std::time::Instant::now(),
            },
            channels: FxHashMap::default(),
            _registered: n.registered,
            channel_max: n.channel_max,
            heartbeat: n.heartbeat,
            cancel_notify,
            state: State::Running,
            close_reason: String::new(),
            confirms_due: Vec::new(),
            rx,
            alarm,
            blocked: false,
            blocked_capable,
            blocked_told: false,
            client_closed: false,
            close_ok_end: None,
            throttled_on: None,
            throttled_until: Instant::now(),
            alarm_raised,
            alarm_live: true,
            broker,
            deferred: false,
            held: VecDeque::new(),
            consumer_timeout: (config.amqp.consumer_timeout > 0)
                .then(|| Duration::from_millis(config.amqp.consumer_timeout)),
            epochs: 0,
            unfinished_limit: config.amqp.unfinished_limit(),
            owed: None,
        }
    }

    /// The loop; returns why the connection ended.
    ///
    /// Writes never make it wait: what the socket does not take at once stays
    /// in the buffer while the loop goes on watching heartbeats (and reading,
    /// a little), so a client that stops reading is still noticed when it
    /// also goes silent. Meanwhile no new input is processed and no new
    /// deliveries are taken, so the buffer cannot grow.
    async fn run<S: Socket>(
        mut self,
        stream: S,
        mut buf: BytesMut,
        mut shutdown: watch::Receiver<bool>,
    ) -> String {
        let (mut rd, mut wr) = stream.into_split();
        let hb = Duration::from_secs(u64::from(self.heartbeat.max(1)));
        let mut tick = interval_at(Instant::now() + hb / 2, hb / 2);
        let mut last_read = Instant::now();
        let mut wrote_since_tick = false;
        let mut last_read_len = 0;
        // The largest frame seen begun that did not fit a READ_CHUNK.
        let mut large = 0;
        let mut close_deadline = Instant::now() + Duration::from_secs(3600 * 24 * 365);
        let mut batch = Vec::new();
        let mut run = Vec::new();
        // Bytes at the front of `out` already written.
        let mut written = 0;
        // Checks for deliveries unacknowledged past the consumer timeout.
        let every = self.consumer_timeout.map_or(Duration::from_secs(3600), |t| (t / 2).clamp(MS_50, SECOND));
        let mut overdue = interval_at(Instant::now() + every, every);
        // Frames already buffered during the handshake.
        self.process_input(&mut buf);
        while self.state != State::Done {
            if written < self.ctx.out.len() {
                match self.ctx.out.write_now(&wr, written) {
                    Ok(n) => {
                        written += n;
                        let io = &self.ctx.entry.stats.io;
                        io.send_oct.add(n as u64);
                        io.send_cnt.add(1);
                    }
                    Err(e) => {
                        self.close_reason = format!("write failed: {e}");
                        break;
                    }
                }
                if written == self.ctx.out.len() {
                    written = 0;
                    self.ctx.out.clear();
                    // A connection that went quiet gives back a large buffer; a busy one keeps it.
                    if self.ctx.out.capacity() > OUT_KEEP && self.rx.is_empty() && buf.is_empty() {
                        self.ctx.out = OutBuf::default();
                    }
                    wrote_since_tick = true;
                    if self.state == State::Closing && close_deadline > Instant::now() + CLOSE_TIMEOUT {
                        close_deadline = Instant::now() + CLOSE_TIMEOUT;
                    }
                }
            }
            let stalled = written < self.ctx.out.len();
            if self.state == State::Closing && close_deadline > Instant::now() + STALLED_CLOSE_TIMEOUT {
                // A client that does not even read our close is not waited for long.
                close_deadline = Instant::now() + STALLED_CLOSE_TIMEOUT;
            }
            if !stalled && (!self.held.is_empty() || self.deferred) {
                if self.held.is_empty() {
                    self.deferred = false;
                    self.process_input(&mut buf);
                } else {
                    self.deliver_held(&mut run);
                }
                // A socket that takes everything must not keep this task from yielding.
                tokio::task::consume_budget().await;
                continue;
            }
            let paused = self.blocked || self.throttled_on.is_some() || self.owed.is_some();
            let reading = !paused && (!stalled || buf.len() < STALLED_READ_MAX);
            // A header not yet checked (input deferred) may claim any size:
            // what a chunk is sized for stays within frame_max.
            if let Some(total) = frame_begun(&buf).filter(|&t| t > READ_CHUNK) {
                large = large.max(total.min(self.ctx.frame_max as usize + 8));
            }
            let spare = buf.capacity() - buf.len();
            // Room only for a read about to be made: a paused connection's
            // input is taken first, and its buffer then reused in place.
            if reading && (spare < IDLE_CHUNK || (buf.is_empty() && spare < large)) {
                // Grow to a full chunk only for connections that fill what
                // they have; a new one, with nothing to copy, before a large
                // frame is begun where it would not fit. A new allocation
                // gets as much again as is unread (up to a chunk), so input
                // left over that arrives in small reads is not copied at
                // every read.
                let headroom = buf.len().min(READ_CHUNK);
                make_room(
                    &mut buf,
                    match last_read_len >= IDLE_CHUNK {
                        true => READ_CHUNK.max(large + CHUNK_SLACK),
                        false => IDLE_CHUNK,
                    },
                    headroom,
                );
            }
            tokio::select! {
                r = wr.writable(), if stalled => {
                    if let Err(e) = r {
                        self.close_reason = format!("write failed: {e}");
                        break;
                    }
                }
                r = rd.read_buf(&mut buf), if reading => match r {
                    Ok(0) => {
                        // A half-closed client: what it sent before still counts
                        // (publishes, acks); the answers it was not reading go.
                        written = 0;
                        while std::mem::take(&mut self.deferred) {
                            self.ctx.out.clear();
                            self.process_input(&mut buf);
                        }
                        if self.state == State::Running {
                            self.close_reason = "client closed the socket".into();
                        }
                        break
                    }
                    Err(e) => { self.close_reason = format!("read failed: {e}"); break }
                    Ok(n) => {
                        last_read_len = n;
                        last_read = Instant::now();
                        let io = &self.ctx.entry.stats.io;
                        io.recv_oct.add(n as u64);
                        io.recv_cnt.add(1);
                        self.broker.alarms.took_in(n as u64);
                        if stalled {
                            self.deferred = true;
                        } else {
                            self.process_input(&mut buf);
                        }
                    }
                },
                _ = self.rx.recv_many(&mut batch, OUTBOUND_BATCH), if !stalled && self.held.is_empty() => {
                    // One clock read per batch stamps its deliveries (consumer timeout).
                    self.ctx.now = std::time::Instant::now();
                    self.on_outbound_batch(&mut batch, &mut run);
                    self.flush_confirms();
                }
                ok = owed::answer(&mut self.owed), if self.owed.is_some() => {
                    self.settle_owed(ok);
                    self.resume_input(stalled, &mut buf);
                }
                _ = relieved(self.throttled_on.clone(), self.throttled_until), if self.throttled_on.is_some() => {
                    // Still congested: the pause ran its full time.
                    if let Some(q) = self.throttled_on.take().filter(|q| q.is_congested()) {
                        q.pause_expired(THROTTLE_MAX);
                    }
                    self.resume_input(stalled, &mut buf);
                }
                r = self.alarm.changed(), if self.alarm_live => match r {
                    Err(_) => self.alarm_live = false,
                    Ok(()) => {
                        self.alarm_raised = *self.alarm.borrow_and_update();
                        if self.blocked && !self.alarm_raised {
                            self.unblock();
                            self.resume_input(stalled, &mut buf);
                        }
                    }
                },
                _ = tick.tick(), if self.heartbeat > 0 => {
                    if paused {
                        // A paused client is not read from: its silence is ours
                        // (RabbitMQ, too, does not check a blocked client's heartbeats).
                        last_read = Instant::now();
                    }
                    if last_read.elapsed() > hb * 2 {
                        self.close_reason = format!("missed heartbeats from client, timeout: {}s", self.heartbeat);
                        break;
                    }
                    if !wrote_since_tick && !stalled {
                        encode::heartbeat(&mut self.ctx.out);
                    }
                    wrote_since_tick = false;
                }
                _ = overdue.tick(), if self.consumer_timeout.is_some() && self.state == State::Running => {
                    self.close_overdue_channels();
                }
                _ = shutdown.wait_for(|down| *down), if self.state == State::Running => {
                    self.close_connection(AmqpError::connection_forced(
                        "broker forced connection closure with reason 'shutdown'",
                    ));
                }
                _ = tokio::time::sleep_until(close_deadline), if self.state == State::Closing => {
                    self.close_reason.push_str(" (no close-ok in time)");
                    break;
                }
            }
        }
        self.cleanup();
        if self.state == State::Done {
            // Nothing may follow connection.close-ok, whatever this turn produced after it.
            if let Some(end) = self.close_ok_end {
                self.ctx.out.truncate(end);
            }
            if written < self.ctx.out.len() {
                let _ = timeout(CLOSE_TIMEOUT, wr.write_all(&self.ctx.out.to_vec_from(written))).await;
            }
        }
        if self.client_closed {
            // Like RabbitMQ, let a client that closed close its socket first:
            // closing under it can race its reading of close-ok.
            let _ = timeout(CLOSE_TIMEOUT, async {
                let mut sink = [0u8; 4096];
                while matches!(rd.read(&mut sink).await, Ok(n) if n > 0) {}
            })
            .await;
        }
        let _ = wr.shutdown().await;
        std::mem::take(&mut self.close_reason)
    }

    /// Input may be processed again (a pause ended): now, or once the socket
    /// takes our output.
    fn resume_input(&mut self, stalled: bool, buf: &mut BytesMut) {
        if stalled {
            self.deferred = true;
        } else {
            self.process_input(buf);
        }
    }

    /// Processes the complete frames in `buf`, until the connection pauses or
    /// its outbound buffer reaches the high-water mark (the rest is `deferred`
    /// until the socket has taken that: one client's input must not make the
    /// buffer grow without bound, e.g. basic.get + reject of a big message).
    fn process_input(&mut self, buf: &mut BytesMut) {
        // The clock deliveries are stamped with (consumer timeout): read after waking.
        self.ctx.now = std::time::Instant::now();
        while self.state != State::Done && !self.blocked && self.throttled_on.is_none() && self.owed.is_none()
        {
            if self.ctx.out.len() >= OUT_HIGH_WATER {
                self.deferred = true;
                break;
            }
            match peek(buf, self.ctx.frame_max) {
                Ok(Some(head)) => {
                    // Read in place and then dropped from the buffer (which no
                    // frame then shares), but for a large body that is a whole
                    // message's: kept as it is, split off.
                    let whole_large = head.is_body()
                        && head.payload_len() > COPY_LIMIT
                        && self.channels.get(&head.channel).and_then(Channel::whole_body_due)
                            == Some(head.payload_len() as u64);
                    let handled = if whole_large {
                        let payload = Payload::Shared(head.take(buf));
                        self.on_frame(head.frame(payload))
                    } else {
                        let handled = self.on_frame(head.frame(Payload::Borrowed(head.payload(buf))));
                        buf.advance(head.total());
                        handled
                    };
                    let content = head.is_content();
                    if let Err(e) = handled {
                        self.close_connection(e);
                    }
                    if content {
                        self.bound_unfinished();
                    }
                    // Like RabbitMQ, a publisher is blocked at its next content frame,
                    // half-way through a message or not: what it sends is memory too.
                    if content && self.alarm_raised && self.state == State::Running {
                        self.block();
                    }
                    if let Some(q) = self.ctx.throttle.take() {
                        self.ctx.entry.stats.flow_pauses.add(1);
                        self.throttled_on = Some(q);
                        self.throttled_until = Instant::now() + THROTTLE_MAX;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // The byte stream can no longer be followed: close at once.
                    self.close_connection(e);
                    self.state = State::Done;
                }
            }
        }
        self.await_durable();
        self.flush_confirms();
    }

    /// Closes the connection once its unfinished messages hold more than the
    /// bound: a client must not make the broker buffer without end by starting
    /// big messages on channel after channel and never finishing them.
    fn bound_unfinished(&mut self) {
        let held = self.ctx.unfinished;
        if held > self.unfinished_limit {
            self.close_connection(AmqpError::new(
                ErrorKind::ResourceError,
                format!(
                    "unfinished messages on this connection hold {held} bytes, more than the {} allowed",
                    self.unfinished_limit
                ),
            ));
        }
    }

    /// A publisher during a resource alarm: stop reading its socket.
    fn block(&mut self) {
        self.blocked = true;
        if self.blocked_capable && !self.blocked_told {
            self.blocked_told = true;
            let blocked = connection::Blocked { reason: "low on memory".into() };
            encode::method(
                &mut self.ctx.out,
                0,
                &AMQPClass::Connection(connection::AMQPMethod::Blocked(blocked)),
            );
        }
    }

    fn unblock(&mut self) {
        self.blocked = false;
        if self.blocked_told {
            self.blocked_told = false;
            let unblocked = connection::AMQPMethod::Unblocked(connection::Unblocked {});
            encode::method(&mut self.ctx.out, 0, &AMQPClass::Connection(unblocked));
        }
    }

    fn close_connection(&mut self, e: AmqpError) {
        if self.state != State::Running {
            return;
        }
        warn!("closing connection: {e}");
        self.close_reason = e.to_string();
        encode::method(&mut self.ctx.out, 0, &close_method(&e));
        self.state = State::Closing;
        // Its close-ok must be read, alarm or no alarm: nothing else is processed now.
        self.blocked = false;
        self.throttled_on = None;
        // Nothing more is delivered; what was in flight goes back to queues.
        for ch in self.channels.values_mut() {
            ch.release(&mut self.ctx);
            ch.closing = true;
        }
    }
}

/// Resolves when a congested queue has drained, or at `until` anyway (a
/// fixed time, however often the loop turns): a client that consumes on the
/// connection it publishes on must get its acks read eventually, so the
/// pause is a brake, never a stop.
async fn relieved(queue: Option<Arc<Queue>>, until: Instant) {
    if let Some(q) = queue {
        let _ = tokio::time::timeout_at(until, q.drained()).await;
    }
}
