//! A hyper body passed on frame by frame through a check that may end it with
//! an error: serving's request-body cap, outgoing responses' idle bound.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use wasmtime_wasi_http::Error as HttpError;

/// A hyper body passed on frame by frame, each frame (and each wait for
/// one) first shown to a [`FrameCheck`] that may end the body with an error.
pub(crate) struct CheckedBody<C> {
    pub(crate) inner: Incoming,
    pub(crate) check: C,
}

/// What a [`CheckedBody`] checks as its frames arrive.
pub(crate) trait FrameCheck: Unpin {
    /// Sees each frame before it is passed on.
    fn frame(&mut self, frame: &Frame<Bytes>) -> Result<(), HttpError>;

    /// Called each time no frame is ready yet.
    fn pending(&mut self, _cx: &mut Context<'_>) -> Result<(), HttpError> {
        Ok(())
    }
}

impl<C: FrameCheck> Body for CheckedBody<C> {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner)
            .poll_frame(cx)
            .map_err(HttpError::from);
        let checked = match &polled {
            Poll::Ready(Some(Ok(frame))) => this.check.frame(frame),
            Poll::Ready(_) => Ok(()),
            Poll::Pending => this.check.pending(cx),
        };
        match checked {
            Ok(()) => polled,
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
