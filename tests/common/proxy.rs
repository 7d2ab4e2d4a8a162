//! A TCP relay on 127.0.0.1 in front of the API server, which a test can hold (accept
//! connections and forward nothing yet), open, or cut (close every connection and refuse
//! new ones): how a test makes the API server slow to answer or unreachable for one
//! client while the cluster keeps running for everyone else.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Connections are accepted and wait; nothing is forwarded yet.
    Hold,
    /// Bytes flow both ways.
    Open,
    /// Every connection is closed and new ones are closed as they arrive.
    Cut,
}

pub struct Proxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A relay to `upstream`, starting in `mode`.
    pub async fn start(upstream: SocketAddr, mode: Mode) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (sender, receiver) = watch::channel(mode);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream, receiver.clone()));
            }
        });
        Proxy {
            addr,
            mode: sender,
            task,
        }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.set(Mode::Cut);
        self.task.abort();
    }
}

async fn relay(mut client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let Ok(now) = mode.wait_for(|m| *m != Mode::Hold).await.map(|m| *m) else {
        return;
    };
    if now == Mode::Cut {
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = mode.wait_for(|m| *m == Mode::Cut) => {}
    }
}
