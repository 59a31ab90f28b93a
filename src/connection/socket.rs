//! The byte streams a connection can run on: a TCP socket (plain AMQP) or
//! one end of a unix socket pair (AMQPS, whose TLS is undone by a proxy task
//! in `server::tls`). May use tokio only.
//!
//! The driver needs more than `AsyncRead + AsyncWrite`: it writes without
//! waiting (`try_write`) and waits for room (`writable`) on an owned write
//! half, so that one turn of its loop coalesces everything into a single
//! write. Both kinds of socket give exactly that, so the code is generic over
//! this trait and monomorphised: the TCP path costs nothing extra.

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{tcp, unix, TcpStream, UnixStream};

/// A connected stream socket the connection code can run on.
pub trait Socket: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    type ReadHalf: AsyncRead + Unpin + Send + 'static;
    type WriteHalf: WriteHalf;

    /// Owned halves, so reads and writes can wait in one `select!`.
    fn into_split(self) -> (Self::ReadHalf, Self::WriteHalf);

    /// Small writes go out at once (Nagle off); a no-op where there is no Nagle.
    fn set_nodelay(&self, on: bool) -> io::Result<()>;
}

/// The writing half of a [`Socket`]: writes that never wait.
pub trait WriteHalf: AsyncWrite + Unpin + Send + 'static {
    /// Writes what the socket takes now; `WouldBlock` when it takes nothing.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;

    /// The same from several buffers in one call (`writev`).
    fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize>;

    /// Resolves once the socket may take more.
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send;
}

impl Socket for TcpStream {
    type ReadHalf = tcp::OwnedReadHalf;
    type WriteHalf = tcp::OwnedWriteHalf;

    #[inline]
    fn into_split(self) -> (Self::ReadHalf, Self::WriteHalf) {
        TcpStream::into_split(self)
    }

    #[inline]
    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        TcpStream::set_nodelay(self, on)
    }
}

impl WriteHalf for tcp::OwnedWriteHalf {
    #[inline]
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        tcp::OwnedWriteHalf::try_write(self, buf)
    }

    #[inline]
    fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        tcp::OwnedWriteHalf::try_write_vectored(self, bufs)
    }

    #[inline]
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
        tcp::OwnedWriteHalf::writable(self)
    }
}

impl Socket for UnixStream {
    type ReadHalf = unix::OwnedReadHalf;
    type WriteHalf = unix::OwnedWriteHalf;

    #[inline]
    fn into_split(self) -> (Self::ReadHalf, Self::WriteHalf) {
        UnixStream::into_split(self)
    }

    fn set_nodelay(&self, _on: bool) -> io::Result<()> {
        Ok(())
    }
}

impl WriteHalf for unix::OwnedWriteHalf {
    #[inline]
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        unix::OwnedWriteHalf::try_write(self, buf)
    }

    #[inline]
    fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        unix::OwnedWriteHalf::try_write_vectored(self, bufs)
    }

    #[inline]
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
        unix::OwnedWriteHalf::writable(self)
    }
}
