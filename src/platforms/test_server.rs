//! A scripted HTTP server on loopback for the platform clients' unit tests,
//! for what the sandbox's emulators cannot be made to do (a given status
//! with a given body on a given path, a paging loop): each path answers from
//! its own queue (the last answer repeats), and every request is recorded as
//! its head (`METHOD /path?query HTTP/1.1` and its headers, lower-case).

use axum::body::Body;
use axum::extract::{Request, State as Shared};
use axum::response::Response;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// One scripted answer.
#[derive(Clone, Debug)]
pub(crate) struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    /// Never answer (to test timeouts).
    hang: bool,
}

impl Answer {
    /// `status` with a JSON content type and `body` as written.
    pub(crate) fn json(status: u16, body: &str) -> Answer {
        Answer {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_owned(),
            hang: false,
        }
    }

    /// This answer with one more header.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// No answer at all: the request waits until the client gives up.
    pub(crate) fn hang() -> Answer {
        Answer {
            status: 200,
            headers: vec![],
            body: String::new(),
            hang: true,
        }
    }
}

#[derive(Default)]
struct Script {
    answers: HashMap<String, VecDeque<Answer>>,
    seen: Vec<String>,
}

/// The server; it runs until the test's runtime ends.
pub(crate) struct Server {
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    script: Arc<Mutex<Script>>,
}

impl Server {
    /// Starts on a free loopback port.
    pub(crate) async fn start() -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let script = Arc::new(Mutex::new(Script::default()));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&script));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Server { base, script }
    }

    /// Queues answers for `path` (the last one repeats).
    pub(crate) fn script(&self, path: &str, answers: Vec<Answer>) {
        self.lock().answers.insert(path.to_owned(), answers.into());
    }

    /// Request heads received, in order.
    pub(crate) fn seen(&self) -> Vec<String> {
        self.lock().seen.clone()
    }

    /// Requests received for `path`.
    pub(crate) fn count(&self, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|head| {
                let target = head.split_whitespace().nth(1).unwrap_or_default();
                target.split('?').next() == Some(path)
            })
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().expect("script lock")
    }
}

/// Records the request and answers it from its path's queue (404 when the
/// path has none).
async fn answer(Shared(script): Shared<Arc<Mutex<Script>>>, request: Request) -> Response {
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method(), request.uri());
    for (name, value) in request.headers() {
        head.push_str(&format!(
            "{name}: {}\r\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    let answer = {
        let mut script = script.lock().expect("script lock");
        script.seen.push(head);
        match script.answers.get_mut(request.uri().path()) {
            Some(queue) if queue.len() > 1 => queue.pop_front(),
            Some(queue) => queue.front().cloned(),
            None => None,
        }
    }
    .unwrap_or_else(|| Answer::json(404, r#"{"error":"no script"}"#));
    if answer.hang {
        std::future::pending::<()>().await;
    }
    let mut response = Response::builder().status(answer.status);
    for (name, value) in &answer.headers {
        response = response.header(name, value);
    }
    response
        .body(Body::from(answer.body))
        .expect("a scripted answer is a valid response")
}
