//! The bus client against hand-written answer frames over an in-memory pipe.

use std::time::Duration;

use meter_io::profile::{Function, Timing};
use meter_io::rtu::crc16;
use meter_io::{Bus, ReadError, ReadRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use crate::unit;

fn timing(retries: u8) -> Timing {
    Timing {
        timeout: Duration::from_millis(100),
        delay: Duration::from_millis(1),
        recovery: Duration::from_millis(10),
        retries,
    }
}

fn request(id: u8, function: Function, address: u16, count: u16, retries: u8) -> ReadRequest {
    ReadRequest {
        unit: unit(id),
        function,
        address,
        count,
        timing: timing(retries),
    }
}

/// Appends the CRC, low byte first.
fn with_crc(mut frame: Vec<u8>) -> Vec<u8> {
    let crc = crc16(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame
}

/// A meter that answers each request (checked against `expect`) with the given bytes.
fn meter_side(
    mut line: DuplexStream,
    script: Vec<(Vec<u8>, Vec<u8>)>,
) -> tokio::task::JoinHandle<DuplexStream> {
    tokio::spawn(async move {
        for (expect, answer) in script {
            let mut request = vec![0u8; expect.len()];
            line.read_exact(&mut request).await.unwrap();
            assert_eq!(request, expect, "request bytes");
            line.write_all(&answer).await.unwrap();
        }
        line
    })
}

#[tokio::test]
async fn request_and_answer_bytes_of_an_sdm120_energy_read() {
    let (client, meter) = tokio::io::duplex(1024);
    // "01 04 00 48 00 02 F1 DD": read 2 input registers at 0x0048 of unit 1. The answer
    // carries 1234.5 kWh as float32 0x449A5000.
    let answer = with_crc(vec![0x01, 0x04, 0x04, 0x44, 0x9A, 0x50, 0x00]);
    let task = meter_side(
        meter,
        vec![(vec![0x01, 0x04, 0x00, 0x48, 0x00, 0x02, 0xF1, 0xDD], answer)],
    );
    let bus = Bus::spawn(client, Duration::from_micros(3646));
    let words = bus
        .read(request(1, Function::Input, 0x48, 2, 0))
        .await
        .unwrap();
    assert_eq!(words, vec![0x449A, 0x5000]);
    task.await.unwrap();
}

#[tokio::test]
async fn noise_then_a_good_answer_in_separate_chunks() {
    let (client, mut meter) = tokio::io::duplex(1024);
    let bus = Bus::spawn(client, Duration::from_micros(3646));
    let read = tokio::spawn({
        let bus = bus.clone();
        async move { bus.read(request(2, Function::Holding, 0x5000, 2, 0)).await }
    });
    let mut request = [0u8; 8];
    meter.read_exact(&mut request).await.unwrap();
    assert_eq!(&request[..6], &[0x02, 0x03, 0x50, 0x00, 0x00, 0x02]);
    meter.write_all(&[0xFF, 0xFF, 0xFF]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    meter
        .write_all(&with_crc(vec![0x02, 0x03, 0x04, 0x00, 0x01, 0x86, 0xA0]))
        .await
        .unwrap();
    assert_eq!(read.await.unwrap().unwrap(), vec![0x0001, 0x86A0]);
}

#[tokio::test]
async fn malformed_answers_are_bad_frames() {
    // Each answer has a valid CRC but is no answer to "unit 1, read 2 input registers".
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "another unit answered",
            with_crc(vec![0x05, 0x04, 0x04, 0, 1, 0, 2]),
        ),
        (
            "wrong register count",
            with_crc(vec![0x01, 0x04, 0x02, 0, 1]),
        ),
        ("odd byte count", with_crc(vec![0x01, 0x04, 0x03, 0, 1, 2])),
        (
            "wrong function",
            with_crc(vec![0x01, 0x03, 0x04, 0, 1, 0, 2]),
        ),
    ];
    for (what, answer) in cases {
        let (client, meter) = tokio::io::duplex(1024);
        let expect = meter_io::rtu::read_request(1, 0x04, 0, 2).to_vec();
        let _task = meter_side(meter, vec![(expect, answer)]);
        let bus = Bus::spawn(client, Duration::from_micros(3646));
        let error = bus
            .read(request(1, Function::Input, 0, 2, 0))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ReadError::BadFrame { unit: 1, .. }),
            "{what}: {error}"
        );
        assert_eq!(bus.stats().meters[&1].bad_frames, 1, "{what}");
    }
}

#[tokio::test]
async fn a_frame_with_a_bad_crc_is_a_crc_error() {
    let (client, meter) = tokio::io::duplex(1024);
    let mut answer = with_crc(vec![0x01, 0x04, 0x04, 0x44, 0x9A, 0x50, 0x00]);
    answer[3] ^= 0x01;
    let expect = meter_io::rtu::read_request(1, 0x04, 0x48, 2).to_vec();
    let _task = meter_side(meter, vec![(expect, answer)]);
    let bus = Bus::spawn(client, Duration::from_micros(3646));
    let error = bus
        .read(request(1, Function::Input, 0x48, 2, 0))
        .await
        .unwrap_err();
    assert!(matches!(error, ReadError::Crc { unit: 1, .. }), "{error}");
}

#[tokio::test]
async fn a_closed_line_is_a_serial_error_for_every_later_request() {
    let (client, meter) = tokio::io::duplex(1024);
    drop(meter);
    let bus = Bus::spawn(client, Duration::from_micros(3646));
    for _ in 0..2 {
        let error = bus
            .read(request(1, Function::Input, 0, 1, 3))
            .await
            .unwrap_err();
        assert!(matches!(error, ReadError::Serial(_)), "{error}");
    }
}

#[tokio::test]
async fn illegal_requests_never_reach_the_line() {
    let (client, _meter) = tokio::io::duplex(1024);
    let bus = Bus::spawn(client, Duration::from_micros(3646));
    for (address, count) in [(0, 0), (0, 126), (0xFFFF, 2)] {
        let error = bus
            .read(request(1, Function::Holding, address, count, 0))
            .await
            .unwrap_err();
        assert!(matches!(error, ReadError::BadRequest(_)), "{error}");
    }
    assert!(bus.stats().meters.is_empty());
}
