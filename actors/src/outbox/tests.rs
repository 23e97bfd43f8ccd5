//! The outbox's lanes: the cap, the urgent lane, the bulk lane, the shared budget.

use super::*;
use tokio::io::AsyncReadExt;

#[test]
fn push_past_the_cap_fails_whole() {
    let out = Outbox::new(10);
    assert_eq!(out.push(b"12345678"), Ok(()));
    assert_eq!(out.push(b"abc"), Err(Overflow(10)));
    assert_eq!(out.pending(), 8);
    assert_eq!(out.push(b"ab"), Ok(()));
    out.push_urgent(b"past the cap");
    assert_eq!(out.pending(), 23);
    assert_eq!(out.push_line(b"x"), Err(Overflow(10)));
}

#[actix::test]
async fn urgent_lines_overtake_queued_ones_at_a_line_boundary() {
    // A pipe smaller than a chunk: the writer is held in the middle of its first one.
    let (a, mut b) = tokio::io::duplex(4096);
    let out = Outbox::for_link(1 << 20);
    let line = vec![b'x'; 1000];
    for _ in 0..200 {
        out.push_line(&line).unwrap();
    }
    let writer = actix_rt::spawn(out.clone().drain_into(a));
    while out.sent_total() == 0 {
        tokio::task::yield_now().await;
    }
    out.push_urgent(b"PING");
    out.close();
    let mut got = Vec::new();
    b.read_to_end(&mut got).await.unwrap();
    assert!(writer.await.unwrap().is_ok());
    let text = String::from_utf8(got).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 201);
    // Next after the chunk being written, ahead of every line queued behind it, and
    // between two whole lines.
    let ping = lines.iter().position(|l| *l == "PING").unwrap();
    let chunk = LINK_CHUNK / 1001;
    assert!(ping > 0 && ping <= chunk + 1, "PING came {ping}th");
    assert!(lines.iter().all(|l| *l == "PING" || l.len() == 1000));
}

#[actix::test]
async fn bulk_lines_stream_within_the_window_and_all_arrive_in_order() {
    let (a, mut b) = tokio::io::duplex(4096);
    let cap = 64 * 1024;
    let out = Outbox::for_link(cap);
    let lines: Vec<Arc<str>> = (0..100_000)
        .map(|i| Arc::from(format!("AT {i:08}")))
        .collect();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    assert!(bytes > 10 * cap);
    out.push_bulk(lines.clone());
    assert!(
        out.pending() <= cap / 4 + 12,
        "{} queued at once",
        out.pending()
    );
    // Floods still fit under the cap while the bulk waits.
    out.push_line(b"FLOOD x").unwrap();
    let writer = actix_rt::spawn(out.clone().drain_into(a));
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut peak = 0;
    while got.len() < bytes + 8 {
        let n = b.read(&mut buf).await.unwrap();
        got.extend_from_slice(&buf[..n]);
        peak = peak.max(out.pending());
    }
    assert!(peak <= cap / 4 + 4096, "{peak} bytes unsent at the peak");
    let text = String::from_utf8(got).unwrap();
    let want: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let mut got: Vec<String> = text.lines().map(str::to_string).collect();
    // The flood went in after the first window of bulk lines.
    let flood = got.iter().position(|l| l == "FLOOD x").unwrap();
    assert!(
        flood > 0,
        "the flood went ahead of the bulk lines already queued"
    );
    got.remove(flood);
    assert_eq!(got, want);
    writer.abort();
}

#[actix::test]
async fn writer_sends_everything_in_order_then_shuts_down() {
    let (a, mut b) = tokio::io::duplex(4);
    let out = Outbox::new(1 << 20);
    let writer = actix_rt::spawn(out.clone().drain_into(a));
    out.push(b"one\n").unwrap();
    out.push(b"two\n").unwrap();
    out.close();
    let mut got = Vec::new();
    b.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"one\ntwo\n");
    assert!(writer.await.unwrap().is_ok());
    assert_eq!(out.pending(), 0);
}

#[actix::test]
async fn bytes_being_written_count_against_the_cap_until_written() {
    let (a, _b) = tokio::io::duplex(4);
    let out = Outbox::new(8);
    let _writer = actix_rt::spawn(out.clone().drain_into(a));
    out.push(b"12345678").unwrap();
    // Let the writer take the chunk; the pipe takes 4 bytes and is never read.
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    assert_eq!(out.pending(), 4);
    assert_eq!(out.push(b"12345"), Err(Overflow(8)));
}

#[actix::test]
async fn a_shared_budget_counts_unsent_bytes_and_wakes_its_waiters_when_there_is_room() {
    let budget = ReplyBudget::new(8);
    let (a, mut b) = tokio::io::duplex(64);
    let out = Outbox::with_budget(1 << 20, budget.clone());
    out.push(b"0123456789").unwrap();
    assert_eq!(budget.used(), 10);
    let waited = budget.clone();
    let room = actix_rt::spawn(std::future::poll_fn(move |cx| waited.poll_room(cx)));
    let writer = actix_rt::spawn(out.clone().drain_into(a));
    room.await.unwrap();
    let mut got = [0u8; 10];
    b.read_exact(&mut got).await.unwrap();
    assert_eq!(budget.used(), 0);
    assert_eq!(budget.peak(), 10);
    out.push(b"unsent").unwrap();
    writer.abort();
    let _ = writer.await;
    drop(out);
    assert_eq!(budget.used(), 0, "an outbox gives back what it never sent");
}

#[actix::test]
async fn an_overflow_ends_the_writer_with_an_error() {
    let (a, _b) = tokio::io::duplex(4);
    let out = Outbox::new(8);
    let writer = actix_rt::spawn(out.clone().drain_into(a));
    assert!(out.push(b"123456789").is_err());
    let err = writer.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("more than 8 bytes"), "{err}");
}
