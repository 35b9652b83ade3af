#[tokio::test]
async fn pty() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut a, mut b) = tokio_serial::SerialStream::pair().unwrap();
    use tokio_serial::SerialPort;
    println!("{:?} {:?}", a.name(), b.name());
    a.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 5];
    b.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello");
}
