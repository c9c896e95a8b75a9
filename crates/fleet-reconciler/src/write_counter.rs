//! A tower layer for the kube `Client` that records every request the
//! client sends. Tests and benchmarks wrap the controller's client with it
//! to count API writes (anything but GET/HEAD/OPTIONS) and reads
//! independently of the controller's own bookkeeping.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{Method, Request};
use tower::{Layer, Service};

/// `METHOD path` of each request, in order (`?query` for reads, which
/// tells a watch from a list).
#[derive(Debug, Default, Clone)]
pub struct WriteLog {
    inner: Arc<Mutex<Vec<String>>>,
}

fn is_write(entry: &str) -> bool {
    !["GET ", "HEAD ", "OPTIONS "]
        .iter()
        .any(|m| entry.starts_with(m))
}

impl WriteLog {
    /// The writes.
    pub fn entries(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|e| is_write(e))
            .collect()
    }

    /// Every request, reads included.
    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many writes.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&self) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn push(&self, entry: String) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(entry);
    }
}

#[derive(Debug, Clone)]
pub struct WriteCounterLayer {
    pub log: WriteLog,
}

impl<S> Layer<S> for WriteCounterLayer {
    type Service = WriteCounter<S>;
    fn layer(&self, inner: S) -> Self::Service {
        WriteCounter {
            inner,
            log: self.log.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct WriteCounter<S> {
    inner: S,
    log: WriteLog,
}

impl<S, B> Service<Request<B>> for WriteCounter<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let entry = if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
            match req.uri().query() {
                Some(q) => format!("{} {}?{q}", req.method(), req.uri().path()),
                None => format!("{} {}", req.method(), req.uri().path()),
            }
        } else {
            format!("{} {}", req.method(), req.uri().path())
        };
        self.log.push(entry);
        self.inner.call(req)
    }
}

/// A client from the ambient configuration whose writes land in `log`.
pub async fn counting_client(log: &WriteLog) -> Result<kube::Client, kube::Error> {
    let config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    let client = kube::client::ClientBuilder::try_from(config)?
        .with_layer(&WriteCounterLayer { log: log.clone() })
        .build();
    Ok(client)
}
